// q8_0 weights in device memory as two planes (native/q8_0_planes.h): the int8 values of a
// tensor of B blocks at its base, row-major (block b's 32 at 32 b, 16-byte aligned whenever the
// base is), then the f16 scales at base + 32 B. Every device reader of q8_0 goes through these.
#pragma once
#include <cstdint>

#include "convert.cuh"
#include "q8_0_planes.h"

FUSELM_CUDA_NAMESPACE_BEGIN

struct Q8Planes {
  const int8_t* q;    // [B * 32]
  const uint16_t* d;  // [B] f16
};

// The planes of a q8_0 tensor of `blocks` blocks at w.
__host__ __device__ __forceinline__ Q8Planes q8_planes(const void* w, int64_t blocks) {
  const int8_t* q = static_cast<const int8_t*>(w);
  return {q, reinterpret_cast<const uint16_t*>(q + 32 * blocks)};
}

// Block b: its scale, and its 32 int8 as 8 little-endian words by two 16-byte loads.
__device__ __forceinline__ void load_q8_plane_block(const Q8Planes& p, int64_t b, float& d, uint32_t (&q)[8]) {
  const uint4* v = reinterpret_cast<const uint4*>(p.q + 32 * b);
  const uint4 lo = v[0], hi = v[1];
  q[0] = lo.x, q[1] = lo.y, q[2] = lo.z, q[3] = lo.w, q[4] = hi.x, q[5] = hi.y, q[6] = hi.z, q[7] = hi.w;
  d = f16_bits_to_f32(p.d[b]);
}

FUSELM_CUDA_NAMESPACE_END
