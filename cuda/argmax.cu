// argmax: ids[t] = the index of the largest of x[t, 0 .. V-1] (ArgmaxArgs, cuda/ops.h): greedy
// decoding on the GPU, so only T ids cross to the host instead of T * V logits. Ties go to
// the lowest index; NaN never wins (it is skipped, as if absent); -inf is an ordinary value
// (a row of -inf gives 0, its lowest index). A row of NaN only has no candidate and gives 0.
// +0 and -0 compare equal, so the lower index of the two wins.
//
// One block per row. Each thread scans its strided part of the row (float4 loads when x is
// 16-byte aligned and V % 4 == 0, so every row starts aligned), keeping the best (value,
// index); within a thread indices only grow, so a strict > keeps the first of equal values.
// The block then combines the pairs: shuffles within each warp, one pair per warp through
// shared memory, shuffles again in the first warp. The combine takes the larger value, the
// lower index on equal values, and ignores lanes without a candidate (index -1), so the order
// of combination cannot change the result: the output equals a sequential scan bit for bit.
#include <cstdint>
#include <string>

#include "ops.h"
#include "ops/argmax.h"

FUSELM_CUDA_NAMESPACE_BEGIN

// Combining two threads' results: (v, i) replaces (best, best_i) when it is a candidate and
// is larger, or equal with a lower index. An index of -1: no candidate (yet).
__device__ __forceinline__ void argmax_take(float& best, int& best_i, float v, int i) {
  if (i >= 0 && (best_i < 0 || v > best || (v == best && i < best_i))) best = v, best_i = i;
}

// The warp's best pair, in every lane (butterfly).
__device__ __forceinline__ void argmax_warp(float& best, int& best_i) {
  for (int off = 16; off > 0; off >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best, off);
    const int i = __shfl_xor_sync(0xffffffffu, best_i, off);
    argmax_take(best, best_i, v, i);
  }
}

// One more element of a thread's own scan, whose indices only grow: v == v skips NaN, and
// the strict > keeps the first of equal values.
__device__ __forceinline__ void argmax_scan(float& best, int& best_i, float v, int i) {
  if (v == v && (best_i < 0 || v > best)) best = v, best_i = i;
}

template <int VEC>
static __global__ void argmax_f32_kernel(int32_t* ids, const float* x, int64_t V) {
  float* warp_best = dynamic_smem<float>();                    // [32]
  int* warp_best_i = reinterpret_cast<int*>(warp_best + 32);  // [32]
  const float* row = x + int64_t(blockIdx.x) * V;
  float best = 0.0f;
  int best_i = -1;
  if (VEC == 4) {
    const float4* rv = reinterpret_cast<const float4*>(row);
    for (int64_t c = threadIdx.x; c < V / 4; c += blockDim.x) {
      const float4 q = rv[c];
      const int i = int(4 * c);
      argmax_scan(best, best_i, q.x, i);
      argmax_scan(best, best_i, q.y, i + 1);
      argmax_scan(best, best_i, q.z, i + 2);
      argmax_scan(best, best_i, q.w, i + 3);
    }
  } else {
    for (int64_t c = threadIdx.x; c < V; c += blockDim.x) argmax_scan(best, best_i, row[c], int(c));
  }
  argmax_warp(best, best_i);
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  if (lane == 0) warp_best[warp] = best, warp_best_i[warp] = best_i;
  __syncthreads();
  if (warp == 0) {
    best = lane < n_warps ? warp_best[lane] : 0.0f;
    best_i = lane < n_warps ? warp_best_i[lane] : -1;
    argmax_warp(best, best_i);
    if (lane == 0) ids[blockIdx.x] = best_i < 0 ? 0 : best_i;
  }
}

void argmax_cuda(const ArgmaxArgs& a, cudaStream_t stream) {
  if (a.T <= 0) return;
  if (a.V <= 0 || a.V > INT32_MAX)
    throw Error("E_INVALID_ARG", "argmax_cuda: V = " + std::to_string(a.V) + " (must be in 1 .. 2^31 - 1)");
  const bool vec = a.V % 4 == 0 && reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
  const int64_t items = vec ? a.V / 4 : a.V;
  // Whole warps, enough to give each thread a few loads of a vocabulary-sized row (one block
  // per row: at T = 1 one SM reads it all), at most 1024.
  int64_t threads = (items / 4 + 31) / 32 * 32;
  threads = threads < 32 ? 32 : threads > 1024 ? 1024 : threads;
  const size_t smem = 32 * sizeof(float) + 32 * sizeof(int);
  if (vec)
    launch_kernel("argmax_f32_kernel<4>", argmax_f32_kernel<4>, dim3(unsigned(a.T)), dim3(unsigned(threads)), smem,
                  stream, a.ids, a.x, a.V);
  else
    launch_kernel("argmax_f32_kernel<1>", argmax_f32_kernel<1>, dim3(unsigned(a.T)), dim3(unsigned(threads)), smem,
                  stream, a.ids, a.x, a.V);
}

FUSELM_CUDA_OP(argmax_op::def, [](const Step& s, const CudaExec& x) { argmax_cuda(argmax_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
