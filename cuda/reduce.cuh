// Warp and block reductions for the kernels (shuffles with full masks: blocks are whole warps).
#pragma once
#include "common.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

// Sum over the 32 lanes; every lane gets the total (butterfly, so all lanes agree bit for bit).
__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// scratch: 32 floats of shared memory, free again when this returns. Every thread must call it.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float s = lane < n_warps ? scratch[lane] : 0.0f;
  s = warp_sum(s);
  __syncthreads();  // scratch is reusable after this
  return s;
}

FUSELM_CUDA_NAMESPACE_END
