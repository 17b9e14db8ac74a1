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
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

// ---- tensor cores, f16/bf16 ------------------------------------------------------------------

constexpr int kTcBM = 64, kTcBN = 128, kTcBK = 32, kTcThreads = 128;
constexpr int kTcLd = kTcBK + 8;  // halves per shared row (80 bytes: see the header)
constexpr size_t kTcSmemBytes = size_t(2) * (kTcBM + kTcBN) * kTcLd * sizeof(uint16_t);

template <bool BF16>
__device__ __forceinline__ uint32_t f32x2_to_half2_bits(float lo, float hi) {
  uint16_t l, h;
  if (BF16) {
    l = __bfloat16_as_ushort(__float2bfloat16_rn(lo));
    h = __bfloat16_as_ushort(__float2bfloat16_rn(hi));
  } else {
    l = __half_as_ushort(__float2half_rn(lo));
    h = __half_as_ushort(__float2half_rn(hi));
  }
  return uint32_t(l) | uint32_t(h) << 16;
}

// One thread's share of an x tile: 2 chunks of 8 consecutive values (tile row c / 4, columns
// 8 * (c % 4) .. + 7 for c = tid, tid + 128), zero outside [T, K).
struct XChunks {
  float v[2][8];
};

__device__ __forceinline__ void load_x_tile(XChunks& r, const float* x, int64_t T, int64_t K, int64_t m0, int64_t k0,
                                            bool x_vec) {
  for (int i = 0; i < 2; i++) {
    const int c = int(threadIdx.x) + kTcThreads * i;
    const int64_t m = m0 + c / 4, k = k0 + 8 * (c % 4);
    if (m < T && k < K) {  // K % 8 == 0: a chunk is all in or all out
      const float* p = x + m * K + k;
      if (x_vec) {
        const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
        r.v[i][0] = a.x, r.v[i][1] = a.y, r.v[i][2] = a.z, r.v[i][3] = a.w;
        r.v[i][4] = b.x, r.v[i][5] = b.y, r.v[i][6] = b.z, r.v[i][7] = b.w;
      } else {
        for (int j = 0; j < 8; j++) r.v[i][j] = p[j];
      }
    } else {
      for (int j = 0; j < 8; j++) r.v[i][j] = 0.0f;
    }
  }
}

template <bool BF16>
__device__ __forceinline__ void store_x_tile(uint16_t* As, const XChunks& r) {
  for (int i = 0; i < 2; i++) {
    const int c = int(threadIdx.x) + kTcThreads * i;
    uint16_t* dst = As + (c / 4) * kTcLd + 8 * (c % 4);
    smem_bounds_check(dst, 16);
    *reinterpret_cast<uint4*>(dst) =
        make_uint4(f32x2_to_half2_bits<BF16>(r.v[i][0], r.v[i][1]), f32x2_to_half2_bits<BF16>(r.v[i][2], r.v[i][3]),
                   f32x2_to_half2_bits<BF16>(r.v[i][4], r.v[i][5]), f32x2_to_half2_bits<BF16>(r.v[i][6], r.v[i][7]));
  }
}

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
  const int g = lane >> 2, t4 = lane & 3;
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
    const uint16_t* A = As + buf * kTcBM * kTcLd;
    const uint16_t* B = Ws + buf * kTcBN * kTcLd;
    for (int kk = 0; kk < kTcBK; kk += 16) {
      uint32_t a[2][4];
      for (int i = 0; i < 2; i++)  // matrices: rows 0-7 | 8-15 of k 0-7, then of k 8-15
        ldmatrix_x4(a[i], A + (wm + 16 * i + (lane & 15)) * kTcLd + kk + 8 * (lane >> 4));
      for (int jp = 0; jp < 4; jp++) {  // two n8 tiles per ldmatrix: (n 0-7: k 0-7, k 8-15), (n 8-15: ...)
        uint32_t b[4];
        ldmatrix_x4(b, B + (wn + 16 * jp + (lane & 7) + 8 * (lane >> 4)) * kTcLd + kk + 8 * ((lane >> 3) & 1));
        const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
        for (int i = 0; i < 2; i++) {
          if (BF16) {
            mma_m16n8k16_bf16f32(acc[i][2 * jp], a[i], b0, acc[i][2 * jp]);
            mma_m16n8k16_bf16f32(acc[i][2 * jp + 1], a[i], b1, acc[i][2 * jp + 1]);
          } else {
            mma_m16n8k16_f16f32(acc[i][2 * jp], a[i], b0, acc[i][2 * jp]);
            mma_m16n8k16_f16f32(acc[i][2 * jp + 1], a[i], b1, acc[i][2 * jp + 1]);
          }
        }
      }
    }
    if (next) store_x_tile<BF16>(As + (buf ^ 1) * kTcBM * kTcLd, xr);  // its last reader was tile kt - 1
    __syncthreads();  // this tile's buffers are free for tile kt + 2
  }

  // Accumulator e of tile (i, j): row g (+8 for e >= 2), columns 2 * t4 and 2 * t4 + 1.
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 8; j++)
      for (int e = 0; e < 4; e++) {
        const int64_t m = m0 + wm + 16 * i + g + 8 * (e >> 1), n = n0 + wn + 8 * j + 2 * t4 + (e & 1);
        if (m < T && n < N) y[m * N + n] = acc[i][j][e];
      }
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
