// argmax: ids[t] = the index of the largest of x[t, 0 .. V-1] (ArgmaxArgs, cuda/ops.h): greedy
// decoding on the GPU, so only T ids cross to the host instead of T * V logits. Ties go to
// the lowest index; NaN never wins (it is skipped, as if absent); -inf is an ordinary value
// (a row of -inf gives 0, its lowest index). A row of NaN only has no candidate and gives 0.
// +0 and -0 compare equal, so the lower index of the two wins.
//
// Each row is cut into S slices, one block each (S = 1 for many rows; at decode's T = 1 about
// 64 slices, so a vocabulary-sized row is read by 64 SMs rather than one). Each thread scans
// its strided part of the slice (float4 loads when x is 16-byte aligned and V % 4 == 0, so
// every row and slice starts aligned), keeping the best (value, index); within a thread
// indices only grow, so a strict > keeps the first of equal values. The block then combines
// the pairs: shuffles within each warp, one pair per warp through shared memory, shuffles again
// in the first warp. With S = 1 it writes the id; otherwise its pair goes to the workspace and
// argmax_merge_kernel combines a row's S pairs in one warp. The combine takes the larger value,
// the lower index on equal values, and ignores pairs without a candidate (index -1), so the
// order of combination cannot change the result: the output equals a sequential scan bit for bit.
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

constexpr int64_t kArgmaxTargetBlocks = 128;  // blocks to aim for when rows are few (~1 per SM)
constexpr int64_t kArgmaxMinSlice = 2048;      // fewest values worth a block of their own

// The block's best pair (in warp 0's lanes) from each thread's own.
__device__ __forceinline__ void argmax_block(float& best, int& best_i) {
  float* warp_best = dynamic_smem<float>();                    // [32]
  int* warp_best_i = reinterpret_cast<int*>(warp_best + 32);  // [32]
  argmax_warp(best, best_i);
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  if (lane == 0) warp_best[warp] = best, warp_best_i[warp] = best_i;
  __syncthreads();
  if (warp == 0) {
    best = lane < n_warps ? warp_best[lane] : 0.0f;
    best_i = lane < n_warps ? warp_best_i[lane] : -1;
    argmax_warp(best, best_i);
  }
}

// Block (s, t) scans slice s, values [s * slice_len, (s + 1) * slice_len) of row t (slice_len
// a multiple of 4 when VEC = 4), and writes ids[t] (one slice) or its pair to part_v/part_i [T, S].
template <int VEC>
static __global__ void argmax_f32_kernel(int32_t* ids, float* part_v, int* part_i, const float* x, int64_t V,
                                         int64_t slice_len) {
  const int64_t t = blockIdx.y, s = blockIdx.x, S = gridDim.x;
  const float* row = x + t * V;
  const int64_t lo = s * slice_len, hi = lo + slice_len < V ? lo + slice_len : V;
  float best = 0.0f;
  int best_i = -1;
  if (VEC == 4) {
    const float4* rv = reinterpret_cast<const float4*>(row);
    for (int64_t c = lo / 4 + threadIdx.x; c < hi / 4; c += blockDim.x) {
      const float4 q = rv[c];
      const int i = int(4 * c);
      argmax_scan(best, best_i, q.x, i);
      argmax_scan(best, best_i, q.y, i + 1);
      argmax_scan(best, best_i, q.z, i + 2);
      argmax_scan(best, best_i, q.w, i + 3);
    }
  } else {
    for (int64_t c = lo + threadIdx.x; c < hi; c += blockDim.x) argmax_scan(best, best_i, row[c], int(c));
  }
  argmax_block(best, best_i);
  if (threadIdx.x != 0) return;
  if (S == 1) ids[t] = best_i < 0 ? 0 : best_i;
  else part_v[t * S + s] = best, part_i[t * S + s] = best_i;
}

// One warp per row: the row's S slice pairs combined.
static __global__ void argmax_merge_kernel(int32_t* ids, const float* part_v, const int* part_i, int64_t S) {
  const int64_t t = blockIdx.x;
  float best = 0.0f;
  int best_i = -1;
  for (int64_t s = threadIdx.x; s < S; s += 32) argmax_take(best, best_i, part_v[t * S + s], part_i[t * S + s]);
  argmax_warp(best, best_i);
  if (threadIdx.x == 0) ids[t] = best_i < 0 ? 0 : best_i;
}

// Values per slice for T rows of V (a multiple of 4 so float4 slices stay aligned; V when one
// slice).
static int64_t argmax_slice_len(int64_t T, int64_t V) {
  int64_t S = (kArgmaxTargetBlocks + T - 1) / T;
  if (S > V / kArgmaxMinSlice) S = V / kArgmaxMinSlice;
  if (S <= 1) return V;
  return ((V + S - 1) / S + 3) / 4 * 4;
}
static int64_t argmax_slices(int64_t T, int64_t V) {
  const int64_t len = argmax_slice_len(T, V);
  return (V + len - 1) / len;
}
static size_t argmax_partials_bytes(int64_t T, int64_t V) {
  const int64_t S = argmax_slices(T, V);
  return S > 1 ? size_t(T * S) * (sizeof(float) + sizeof(int)) : 0;
}

size_t argmax_cuda_workspace(int64_t max_T, int64_t V) {
  size_t most = 0;  // the split shrinks as rows grow: past kArgmaxTargetBlocks rows there is none
  for (int64_t T = 1; T <= max_T && T <= kArgmaxTargetBlocks; T++) {
    const size_t b = argmax_partials_bytes(T, V);
    if (b > most) most = b;
  }
  return most;
}

void argmax_cuda(const ArgmaxArgs& a, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (a.T <= 0) return;
  if (a.V <= 0 || a.V > INT32_MAX)
    throw Error("E_INVALID_ARG", "argmax_cuda: V = " + std::to_string(a.V) + " (must be in 1 .. 2^31 - 1)");
  if (a.T > 65535) throw Error("E_INVALID_ARG", "argmax_cuda: at most 65535 rows (grid.y), got " + std::to_string(a.T));
  const int64_t slice_len = argmax_slice_len(a.T, a.V), S = (a.V + slice_len - 1) / slice_len;
  const size_t need = argmax_partials_bytes(a.T, a.V);
  if (need && (!workspace || workspace_bytes < need || reinterpret_cast<uintptr_t>(workspace) % 4))
    throw Error("E_INVALID_ARG", "argmax_cuda: workspace of " + std::to_string(workspace_bytes) + " bytes, this call needs " +
                                     std::to_string(need) + " (argmax_cuda_workspace), 4-byte aligned");
  float* part_v = static_cast<float*>(workspace);
  int* part_i = S > 1 ? reinterpret_cast<int*>(part_v + a.T * S) : nullptr;
  const bool vec = a.V % 4 == 0 && reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
  const int64_t items = vec ? slice_len / 4 : slice_len;
  // Whole warps, enough to give each thread a few loads of its slice, at most 1024.
  int64_t threads = (items / 4 + 31) / 32 * 32;
  threads = threads < 32 ? 32 : threads > 1024 ? 1024 : threads;
  const size_t smem = 32 * sizeof(float) + 32 * sizeof(int);
  const dim3 grid(unsigned(S), unsigned(a.T));
  if (vec)
    launch_kernel("argmax_f32_kernel<4>", argmax_f32_kernel<4>, grid, dim3(unsigned(threads)), smem, stream, a.ids, part_v,
                  part_i, a.x, a.V, slice_len);
  else
    launch_kernel("argmax_f32_kernel<1>", argmax_f32_kernel<1>, grid, dim3(unsigned(threads)), smem, stream, a.ids, part_v,
                  part_i, a.x, a.V, slice_len);
  if (S > 1)
    launch_kernel("argmax_merge_kernel", argmax_merge_kernel, dim3(unsigned(a.T)), dim3(32), 0, stream, a.ids,
                  static_cast<const float*>(part_v), static_cast<const int*>(part_i), S);
}

FUSELM_CUDA_OP(
    argmax_op::def,
    [](const Step& s, const CudaExec& x) { argmax_cuda(argmax_op::args(s), x.workspace, x.workspace_bytes, x.stream); },
    [](const Node& n, int64_t max_rows) {
      return argmax_cuda_workspace(argmax_op::covered(n, max_rows), n.t[argmax_op::x]->cols());
    });

FUSELM_CUDA_NAMESPACE_END
