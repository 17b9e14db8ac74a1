// gemm: the prefill-shaped matmul y[t, n] = sum_k x[t, k] * w[n, k] (MatmulArgs, native/ops/matmul.h;
// CPU twin native/cpu/matmul.cc), x f32 [T, K], w [N, K] in f16, bf16 or f32, y f32 [T, N].
// The tokens are the GEMM's M dimension, the weight rows its N.
//
// f16/bf16 weights, K % 8 == 0 and w 16-byte aligned: tensor cores (mma m16n8k16, f32
// accumulate). A block of 4 warps computes a 64 (tokens) x 128 (rows) tile of y, each warp a
// 32 x 64 piece (2 x 8 mma tiles, 64 f32 accumulators per lane), walking K in steps of 32:
// - W tiles (128 rows x 32 halves) go global -> shared by cp.async, 16 bytes per copy, issued
//   one tile ahead into the other half of a double buffer; rows past N and chunks past K are
//   zero-filled.
// - x tiles (64 x 32) are read as f32 into registers one tile ahead too, rounded to the
//   weight's 16-bit type, and stored to shared memory after the current tile's mma work, so
//   the global latency hides behind it. The rounding is the only loss against f32 x: products
//   of two 16-bit values are exact in f32 and the sums are f32.
// - Fragments come from shared memory by ldmatrix: x row-major as the A operand, W as stored
//   ([n][k], k contiguous) is exactly B "col-major", so neither needs a transpose. Rows are
//   padded from 64 to 80 bytes: the 8 row addresses of one 8x8 ldmatrix matrix then fall on 8
//   different 16-byte bank groups (80 / 16 = 5 is odd), so each phase is conflict-free.
//
// f32 weights (and f16/bf16 with K % 8 != 0 or a misaligned w): a SIMT GEMM on CUDA cores with
// exact f32 products (fmaf), so f32 models keep f32 accuracy. 256 threads compute a 64 x 64
// tile, 4 x 4 outputs per thread (rows and columns strided by 16, so the shared-memory reads
// are broadcasts or consecutive words), K in steps of 16 staged through shared memory with
// bounds-checked scalar loads (any alignment, any K).
#include <cstdint>
#include <string>

#include "convert.cuh"
#include "gemm_tile.cuh"
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

// ---- tensor cores, f16/bf16 ------------------------------------------------------------------

// A W tile (128 rows x 4 chunks of 8 halves) by cp.async: 4 chunks per thread.
__device__ __forceinline__ void issue_w_tile(uint16_t* Ws, const uint16_t* w, int64_t K, int64_t N, int64_t n0,
                                             int64_t k0) {
  for (int i = 0; i < 4; i++) {
    const int c = int(threadIdx.x) + kTcThreads * i;
    const int64_t n = n0 + c / 4, k = k0 + 8 * (c % 4);
    const bool valid = n < N && k < K;
    uint16_t* dst = Ws + (c / 4) * kTcLd + 8 * (c % 4);
    smem_bounds_check(dst, 16);
    cp_async_16_zfill(dst, valid ? w + n * K + k : w, valid);
  }
}

template <bool BF16>
static __global__ void __launch_bounds__(kTcThreads)
    gemm_tc_kernel(float* y, const float* x, const uint16_t* w, int64_t T, int64_t K, int64_t N, bool x_vec) {
  uint16_t* As = dynamic_smem<uint16_t>();      // [2][kTcBM][kTcLd]
  uint16_t* Ws = As + 2 * kTcBM * kTcLd;        // [2][kTcBN][kTcLd]
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t m0 = int64_t(blockIdx.y) * kTcBM, n0 = int64_t(blockIdx.x) * kTcBN;
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 64;  // this warp's piece of the tile

  float acc[2][8][4];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 8; j++)
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

  const int ktiles = int((K + kTcBK - 1) / kTcBK);
  XChunks xr;
  issue_w_tile(Ws, w, K, N, n0, 0);
  cp_async_commit();
  load_x_tile(xr, x, T, K, m0, 0, x_vec);
  store_x_tile<BF16>(As, xr);
  for (int kt = 0; kt < ktiles; kt++) {
    const int buf = kt & 1;
    const bool next = kt + 1 < ktiles;
    if (next) {
      issue_w_tile(Ws + (buf ^ 1) * kTcBN * kTcLd, w, K, N, n0, int64_t(kt + 1) * kTcBK);
      load_x_tile(xr, x, T, K, m0, int64_t(kt + 1) * kTcBK, x_vec);
    }
    cp_async_commit();   // (an empty group on the last tile keeps the wait count uniform)
    cp_async_wait<1>();  // this tile's W has landed
    __syncthreads();     // ... for every thread, and this tile's x is stored
    mma_tile<BF16>(acc, As + buf * kTcBM * kTcLd, Ws + buf * kTcBN * kTcLd, wm, wn, lane);
    if (next) store_x_tile<BF16>(As + (buf ^ 1) * kTcBM * kTcLd, xr);  // its last reader was tile kt - 1
    __syncthreads();  // this tile's buffers are free for tile kt + 2
  }

  store_acc(y, acc, T, N, m0 + wm, n0 + wn, lane);
}

// ---- CUDA cores, any weight dtype but q8_0 ----------------------------------------------------

constexpr int kSimtBM = 64, kSimtBN = 64, kSimtBK = 16, kSimtThreads = 256;
constexpr int kSimtLd = kSimtBM + 1;  // odd stride: the transposing stores hit distinct banks
constexpr size_t kSimtSmemBytes = size_t(2) * kSimtBK * kSimtLd * sizeof(float);

template <DType DT>
__device__ __forceinline__ float weight_at(const void* w, int64_t i) {
  if (DT == DType::F16) return f16_bits_to_f32(static_cast<const uint16_t*>(w)[i]);
  if (DT == DType::BF16) return bf16_bits_to_f32(static_cast<const uint16_t*>(w)[i]);
  return static_cast<const float*>(w)[i];
}

template <DType DT>
static __global__ void __launch_bounds__(kSimtThreads)
    gemm_simt_kernel(float* y, const float* x, const void* w, int64_t T, int64_t K, int64_t N) {
  float* Xs = dynamic_smem<float>();   // [kSimtBK][kSimtLd]: x tile, transposed (k major)
  float* Ws = Xs + kSimtBK * kSimtLd;  // [kSimtBK][kSimtLd]: w tile, transposed
  const int tid = int(threadIdx.x), tx = tid & 15, ty = tid >> 4;
  const int64_t m0 = int64_t(blockIdx.y) * kSimtBM, n0 = int64_t(blockIdx.x) * kSimtBN;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kSimtBK) {
    for (int i = 0; i < 4; i++) {  // 64 x 16 of each: consecutive threads walk k (coalesced)
      const int e = tid + kSimtThreads * i, r = e / kSimtBK, c = e % kSimtBK;
      const int64_t k = k0 + c, m = m0 + r, n = n0 + r;
      Xs[c * kSimtLd + r] = m < T && k < K ? x[m * K + k] : 0.0f;
      Ws[c * kSimtLd + r] = n < N && k < K ? weight_at<DT>(w, n * K + k) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < kSimtBK; kk++) {
      float xv[4], wv[4];
      for (int i = 0; i < 4; i++) xv[i] = Xs[kk * kSimtLd + ty + 16 * i];
      for (int j = 0; j < 4; j++) wv[j] = Ws[kk * kSimtLd + tx + 16 * j];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(xv[i], wv[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      const int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < T && n < N) y[m * N + n] = acc[i][j];
    }
}

// ---- launcher ------------------------------------------------------------------------------------


template <DType DT>
static void launch_simt(const MatmulArgs& a, cudaStream_t stream, const char* name) {
  const dim3 grid(unsigned((a.N + kSimtBN - 1) / kSimtBN), unsigned((a.T + kSimtBM - 1) / kSimtBM));
  launch_kernel(name, gemm_simt_kernel<DT>, grid, dim3(kSimtThreads), kSimtSmemBytes, stream, a.y, a.x, a.w, a.T, a.K,
                a.N);
}

void matmul_gemm_cuda(const MatmulArgs& a, cudaStream_t stream) {
  if (a.T <= 0 || a.N <= 0) return;
  if ((a.T + kSimtBM - 1) / kSimtBM > 65535) throw Error("E_INVALID_ARG", "matmul_gemm_cuda: too many tokens (grid.y)");
  if (a.K <= 0) {
    CUDA_CHECK(cudaMemsetAsync(a.y, 0, size_t(a.T * a.N) * sizeof(float), stream));
    return;
  }
  const bool tc = a.K % 8 == 0 && aligned16(a.w);  // cp.async needs 16-byte aligned rows
  switch (a.w_dtype) {
    case DType::F16:
    case DType::BF16: {
      const bool bf16 = a.w_dtype == DType::BF16;
      if (!tc) {
        if (bf16) launch_simt<DType::BF16>(a, stream, "gemm_simt_bf16_kernel");
        else launch_simt<DType::F16>(a, stream, "gemm_simt_f16_kernel");
        return;
      }
      const dim3 grid(unsigned((a.N + kTcBN - 1) / kTcBN), unsigned((a.T + kTcBM - 1) / kTcBM));
      const uint16_t* w = static_cast<const uint16_t*>(a.w);
      const bool x_vec = aligned16(a.x);  // K % 8 == 0 keeps every row's chunks aligned too
      if (bf16)
        launch_kernel("gemm_tc_bf16_kernel", gemm_tc_kernel<true>, grid, dim3(kTcThreads), kTcSmemBytes, stream, a.y,
                      a.x, w, a.T, a.K, a.N, x_vec);
      else
        launch_kernel("gemm_tc_f16_kernel", gemm_tc_kernel<false>, grid, dim3(kTcThreads), kTcSmemBytes, stream, a.y,
                      a.x, w, a.T, a.K, a.N, x_vec);
      return;
    }
    case DType::F32:
      launch_simt<DType::F32>(a, stream, "gemm_simt_f32_kernel");
      return;
    case DType::Q8_0:
      throw Error("E_INVALID_ARG", "matmul_gemm_cuda: q8_0 weights go through matmul_gemm_q8_0_cuda (it needs a workspace)");
    default:
      throw Error("E_INVALID_ARG", std::string("matmul_gemm_cuda: unsupported weight dtype ") + dtype_name(a.w_dtype));
  }
}

FUSELM_CUDA_NAMESPACE_END
