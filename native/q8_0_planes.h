// q8_0 tensors in device memory: the CUDA backend keeps them as two planes instead of GGUF's
// 34-byte blocks (which are only 2-byte aligned, so no 16-byte load or cp.async can take them):
//
//   bytes [0, 32 B)       the int8 values of all B blocks in stored order (row n of K values at n * K)
//   bytes [32 B, 34 B)    the blocks' f16 scales in stored order (row n's at 2 * n * K / 32)
//
// The same nbytes as the stored blocks, so a device q8_0 tensor costs what its file does. The
// planes live only on the device: Tensor::read_bytes / write_bytes translate any byte range of
// the stored layout to and from them (native/tensor.cc), so uploads, read-backs and device to
// device copies see GGUF's bytes. Kernels reach the planes of a tensor of B blocks from its base
// pointer: values at base, scales at base + 32 B (cuda/q8_0_planes.cuh).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "quant_blocks.h"

namespace fuselm {

// Byte offset of the scale plane in a q8_0 device tensor of `nbytes` stored bytes.
inline size_t q8_0_scales_at(size_t nbytes) { return nbytes / sizeof(BlockQ8_0) * 32; }

// Blocks [0, n) at `blocks` (stored layout) -> values q[32 n] and scales d[2 n] bytes.
inline void q8_0_split(const uint8_t* blocks, size_t n, uint8_t* q, uint8_t* d) {
  for (size_t b = 0; b < n; b++) {
    const uint8_t* p = blocks + b * sizeof(BlockQ8_0);
    std::memcpy(d + 2 * b, p, 2);
    std::memcpy(q + 32 * b, p + 2, 32);
  }
}

// The inverse: values and scales of n blocks -> the stored layout.
inline void q8_0_join(const uint8_t* q, const uint8_t* d, size_t n, uint8_t* blocks) {
  for (size_t b = 0; b < n; b++) {
    uint8_t* p = blocks + b * sizeof(BlockQ8_0);
    std::memcpy(p, d + 2 * b, 2);
    std::memcpy(p + 2, q + 32 * b, 32);
  }
}

}  // namespace fuselm
