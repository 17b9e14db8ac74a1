// Exact widening of 16-bit floats held as raw bits (how weights and tables sit in device
// memory), for the kernels: f16 through the hardware conversion, bf16 by a 16-bit shift.
#pragma once
#include <cstdint>

#include "common.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

__device__ __forceinline__ float f16_bits_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }

// The two 16-bit values packed in a 32-bit word (low one first), widened.
template <bool BF16>
__device__ __forceinline__ float2 half2_bits_to_f32(uint32_t w) {
  const uint16_t lo = uint16_t(w & 0xffffu), hi = uint16_t(w >> 16);
  return BF16 ? make_float2(bf16_bits_to_f32(lo), bf16_bits_to_f32(hi))
              : make_float2(f16_bits_to_f32(lo), f16_bits_to_f32(hi));
}

FUSELM_CUDA_NAMESPACE_END
