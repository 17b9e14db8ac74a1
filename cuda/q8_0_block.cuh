// Reading GGUF q8_0 blocks (34 bytes: f16 scale d, then 32 int8) in device code with 4-byte
// loads. A block's address is only 2-byte aligned: blocks alternate between starting on a 4-byte
// boundary (the int8 then start 2 bytes past one) and 2 bytes past one (the int8 aligned), and
// none is 16-byte aligned, so neither 16-byte loads nor cp.async apply to the raw layout.
#pragma once
#include <cstdint>

#include "convert.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

// The block at p (2-byte aligned): its scale, and its 32 int8 as 8 little-endian words. Aligned
// block: 8 words from p and its last 2 bytes as a u16, each int8 word then rebuilt from two
// neighbours by a 16-bit shift (d is the low half of the first word). Otherwise: d as a u16, the
// int8 as 8 aligned words. 9 loads either way, nothing read outside the block.
__device__ __forceinline__ void load_q8_block(const uint8_t* p, float& d, uint32_t (&q)[8]) {
  if ((reinterpret_cast<uintptr_t>(p) & 3) == 0) {
    const uint32_t* w4 = reinterpret_cast<const uint32_t*>(p);
    uint32_t v[9];
    for (int j = 0; j < 8; j++) v[j] = w4[j];
    v[8] = *reinterpret_cast<const uint16_t*>(p + 32);
    d = f16_bits_to_f32(uint16_t(v[0] & 0xffffu));
    for (int j = 0; j < 8; j++) q[j] = (v[j] >> 16) | (v[j + 1] << 16);
  } else {
    d = f16_bits_to_f32(*reinterpret_cast<const uint16_t*>(p));
    const uint32_t* w4 = reinterpret_cast<const uint32_t*>(p + 2);
    for (int j = 0; j < 8; j++) q[j] = w4[j];
  }
}

FUSELM_CUDA_NAMESPACE_END
