// moe_matmul_gemm: moe_matmul's prefill on tensor cores (MoeMatmulArgs, native/ops/moe_matmul.h),
// for weights in the GGUF block formats gemm_quant.cu takes (q4_0 .. q6_k, iq4_*): each expert's
// matmul runs once over the tokens routed to it, as the CPU's grouped path does, in one launch
// for all the experts. q8_0 stays on the warp kernel: its device layout is becoming an int8 and a
// scale plane (branch cuda23), which load_w_unit's stored-block decode would not follow.
//
// 1. moe_group_kernel (one block) sorts the T * k slots by expert into the workspace: `order`
//    holds each expert's slots in slot order, expert after expert, and `tiles` cuts each
//    expert's run into tiles of at most 64 slots (expert, first index into order, count).
//    Deterministic: no atomics decide an order. An expert id outside 0 .. E-1 is recorded in
//    the error word and its slot left out (the graph throws after the step).
// 2. moe_gemm_kernel: grid (row tiles of 128, tiles); a block takes its tile's expert's weights,
//    gathers its slots' x rows (load_x_tile with a row map) and runs gemm_quant.cu's loop
//    (cuda/gemm_tile.cuh: W units dequantized to f16 in shared memory one k-tile ahead, mma
//    m16n8k16 with f32 accumulation), scattering each slot's row of y back to its place: out
//    [T * k, N] when unweighted, the workspace's y [T * k, N] when weighted. Blocks past the
//    tile count return at once (the grid is sized for the most tiles any routing makes).
// 3. Weighted: moe_combine_kernel adds sum_j weights[t, j] * y[t * k + j] to out[t], slots in
//    order, as the CPU's combine does.
//
// Error against f32: weights and x rounded to f16, as gemm_quant.cu says; the warp kernel
// (moe_matmul.cu) keeps x in f32 and runs decode and small batches.
#include <cstdint>
#include <string>

#include "gemm_tile.cuh"
#include "ops.h"
#include "ops/moe_matmul.h"

FUSELM_CUDA_NAMESPACE_BEGIN

namespace {

constexpr int kGroupThreads = 256;

// The most tiles S slots over E experts make: each expert's ceil(count / 64) <= count / 64 + 1.
int64_t max_tiles(int64_t S, int64_t E) { return S / kTcBM + (E < S ? E : S) + 1; }

struct Groups {
  int32_t* order;    // [S]
  int32_t* tiles;    // [max_tiles][3]: expert, first index into order, slots (1..64)
  int32_t* n_tiles;  // [1]
  float* y;          // [S, N], weighted calls only
};

Groups groups_in(void* workspace, int64_t S, int64_t E) {
  int32_t* p = static_cast<int32_t*>(workspace);
  const int64_t ints = S + 3 * max_tiles(S, E) + 1;
  // y after the ints, 16-byte aligned
  return {p, p + S, p + S + 3 * max_tiles(S, E), reinterpret_cast<float*>(p + (ints + 3) / 4 * 4)};
}

size_t workspace_bytes(int64_t S, int64_t E, int64_t N, bool weighted) {
  const int64_t ints = S + 3 * max_tiles(S, E) + 1;
  return size_t((ints + 3) / 4 * 4) * 4 + (weighted ? size_t(S * N) * sizeof(float) : 0);
}

// Shared: count[E], then start[E]
__global__ void __launch_bounds__(kGroupThreads)
    moe_group_kernel(Groups g, const int32_t* ids, int64_t S, int64_t E, int64_t k, int32_t* error) {
  int32_t* count = dynamic_smem<int32_t>();
  int32_t* start = count + E;
  const int tid = int(threadIdx.x);
  for (int64_t s = tid; s < S; s += kGroupThreads) {
    const int32_t id = ids[s];
    if ((id < 0 || id >= E) && error && atomicCAS(&error[0], 0, int32_t(s / k) + 1) == 0) error[1] = id;
  }
  for (int64_t e = tid; e < E; e += kGroupThreads) {  // each thread counts its experts' slots
    int32_t c = 0;
    for (int64_t s = 0; s < S; s++) c += ids[s] == e;
    count[e] = c;
  }
  __syncthreads();
  if (tid == 0) {
    int32_t at = 0, nt = 0;
    for (int64_t e = 0; e < E; e++) {
      start[e] = at;
      for (int32_t r = 0; r < count[e]; r += kTcBM) {
        g.tiles[3 * nt] = int32_t(e);
        g.tiles[3 * nt + 1] = at + r;
        g.tiles[3 * nt + 2] = count[e] - r < kTcBM ? count[e] - r : kTcBM;
        nt++;
      }
      at += count[e];
    }
    *g.n_tiles = nt;
  }
  __syncthreads();
  for (int64_t e = tid; e < E; e += kGroupThreads) {
    int32_t at = start[e];
    for (int64_t s = 0; s < S; s++)
      if (ids[s] == e) g.order[at++] = int32_t(s);
  }
}

// Shared after the tiles: the tile's x rows and y rows, [kTcBM] each
constexpr size_t kGemmSmemBytes = kTcSmemBytes + 2 * kTcBM * sizeof(int32_t);

template <DType DT>
__global__ void __launch_bounds__(kTcThreads)
    moe_gemm_kernel(float* y, const float* x, const uint8_t* w, Groups g, int64_t K, int64_t N, int64_t k,
                    bool x_per_slot, bool x_vec) {
  if (int(blockIdx.y) >= *g.n_tiles) return;  // the whole block: no barrier is split
  const int32_t* tile = g.tiles + 3 * blockIdx.y;
  const int64_t expert = tile[0], first = tile[1], rows = tile[2];
  uint16_t* As = dynamic_smem<uint16_t>();  // [2][kTcBM][kTcLd]
  uint16_t* Ws = As + 2 * kTcBM * kTcLd;    // [2][kTcBN][kTcLd]
  int32_t* x_row = reinterpret_cast<int32_t*>(Ws + 2 * kTcBN * kTcLd);
  int32_t* y_row = x_row + kTcBM;
  if (threadIdx.x < kTcBM) {
    const int32_t s = int(threadIdx.x) < rows ? g.order[first + threadIdx.x] : -1;
    x_row[threadIdx.x] = s < 0 ? -1 : x_per_slot ? s : int32_t(s / k);
    y_row[threadIdx.x] = s;
  }
  __syncthreads();
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t n0 = int64_t(blockIdx.x) * kTcBN;
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 64;
  const uint8_t* we = w + size_t(expert) * size_t(N) * size_t(K / QUnit<DT>::kValues * QUnit<DT>::kBytes);
  float acc[2][8][4];
  quant_tile_k_loop<DT>(acc, As, Ws, x, rows, K, 0, x_vec, x_row, we, N, n0, wm, wn, lane);
  store_acc(y, acc, rows, N, wm, n0 + wn, lane, y_row);
}

// out[t, n] += sum_j weights[t, j] * y[t * k + j, n], j in order
__global__ void moe_combine_kernel(float* out, const float* y, const float* weights, int64_t T, int64_t N, int64_t k) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= T * N) return;
  const int64_t t = i / N, n = i % N;
  float o = out[i];
  for (int64_t j = 0; j < k; j++) o += weights[t * k + j] * y[(t * k + j) * N + n];
  out[i] = o;
}

// Fewer tokens take the warp kernel: a 64-token tile would be mostly empty, and decode reads
// each chosen expert's rows once either way.
constexpr int64_t kMoeGemmMinTokens = 8;

bool grouped(DType w_dtype, int64_t T, int64_t K) {
  return T >= kMoeGemmMinTokens && K % kTcBK == 0 && gemm_quant_supports(w_dtype);
}

template <DType DT>
void launch_gemm(const char* name, const MoeMatmulArgs& a, const Groups& g, float* y, int64_t tiles, cudaStream_t stream) {
  // every expert's rows start at a multiple of the row's bytes, whole blocks
  if (QUnit<DT>::kAlign4 ? reinterpret_cast<uintptr_t>(a.w) % 4 : reinterpret_cast<uintptr_t>(a.w) % 2)
    throw Error("E_INVALID_ARG", std::string(name) + ": weights misaligned for their block format");
  const dim3 grid(unsigned((a.N + kTcBN - 1) / kTcBN), unsigned(tiles));
  launch_kernel(name, moe_gemm_kernel<DT>, grid, dim3(kTcThreads), kGemmSmemBytes, stream, y, a.x, static_cast<const uint8_t*>(a.w),
                g, a.K, a.N, a.k, a.x_per_slot, aligned16(a.x));
}

}  // namespace

size_t moe_matmul_gemm_workspace(DType w_dtype, int64_t max_T, int64_t K, int64_t N, int64_t E, int64_t k, bool weighted) {
  return grouped(w_dtype, max_T, K) ? workspace_bytes(max_T * k, E, N, weighted) : 0;
}

bool moe_matmul_gemm_cuda(const MoeMatmulArgs& a, int32_t* error, void* workspace, size_t bytes, cudaStream_t stream) {
  if (!grouped(a.w_dtype, a.T, a.K)) return false;
  const int64_t S = a.T * a.k, tiles = max_tiles(S, a.E);
  const size_t need = workspace_bytes(S, a.E, a.N, a.weights != nullptr);
  if (!workspace || bytes < need || reinterpret_cast<uintptr_t>(workspace) % 16)
    throw Error("E_INVALID_ARG", "moe_matmul_gemm_cuda: workspace of " + std::to_string(bytes) + " bytes, this call needs " +
                                     std::to_string(need) + " (moe_matmul_gemm_workspace), 16-byte aligned");
  if (tiles > 65535) throw Error("E_INVALID_ARG", "moe_matmul_gemm_cuda: too many slots (grid.y)");
  const Groups g = groups_in(workspace, S, a.E);
  launch_kernel("moe_group_kernel", moe_group_kernel, dim3(1), dim3(kGroupThreads), size_t(2 * a.E) * sizeof(int32_t), stream, g,
                a.ids, S, a.E, a.k, error);
  float* y = a.weights ? g.y : a.out;
  switch (a.w_dtype) {
#define FUSELM_MOE_GEMM_CASE(DT, name) \
  case DType::DT: launch_gemm<DType::DT>("moe_gemm_kernel<" name ">", a, g, y, tiles, stream); break;
    FUSELM_MOE_GEMM_CASE(Q4_0, "q4_0")
    FUSELM_MOE_GEMM_CASE(Q4_1, "q4_1")
    FUSELM_MOE_GEMM_CASE(Q5_0, "q5_0")
    FUSELM_MOE_GEMM_CASE(Q5_1, "q5_1")
    FUSELM_MOE_GEMM_CASE(IQ4_NL, "iq4_nl")
    FUSELM_MOE_GEMM_CASE(Q2_K, "q2_k")
    FUSELM_MOE_GEMM_CASE(Q3_K, "q3_k")
    FUSELM_MOE_GEMM_CASE(Q4_K, "q4_k")
    FUSELM_MOE_GEMM_CASE(Q5_K, "q5_k")
    FUSELM_MOE_GEMM_CASE(Q6_K, "q6_k")
    FUSELM_MOE_GEMM_CASE(IQ4_XS, "iq4_xs")
#undef FUSELM_MOE_GEMM_CASE
    default:
      return false;  // grouped() admits none other
  }
  if (a.weights) {
    const int64_t n = a.T * a.N;
    launch_kernel("moe_combine_kernel", moe_combine_kernel, dim3(unsigned((n + 255) / 256)), dim3(256), 0, stream, a.out, g.y,
                  a.weights, a.T, a.N, a.k);
  }
  return true;
}

FUSELM_CUDA_NAMESPACE_END
