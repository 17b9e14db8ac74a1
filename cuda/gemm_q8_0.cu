// gemm_q8_0: the prefill-shaped matmul with q8_0 weights as W8A8 on tensor cores,
// y[t, n] = sum over 32-blocks b of d_w[n, b] * d_x[t, b] * sum_j q_w[n, 32b + j] * q_x[t, 32b + j]
// (MatmulArgs, native/ops/matmul.h), the same arithmetic as the CPU's fast path (native/cpu/matmul.cc):
//
// 1. quantize_x_q8_kernel (cuda/quantize_x.cuh): x f32 [T, K] -> the workspace, one warp per block of 32 values:
//    amax = max|x| (the max taken over the f32 bit patterns with the sign cleared, as the CPU
//    does, so a NaN wins), q = x * (127 / amax) rounded to nearest even, clamped to +-127,
//    NaN -> 0, d = amax / 127 rounded to f16 (llama.cpp's block_q8_0 scale), kept as f32.
//    Each step is the CPU's own IEEE operation (the multiply and the rounding adds spelled _rn so
//    nvcc cannot fuse them), so q and d equal the CPU's bit for bit.
//    Workspace layout: q int8 [T, K] at 0, then d f32 [T, K / 32] at the next 256-byte boundary.
// 2. gemm_q8_0_kernel: a block of 8 warps computes a 128 (tokens) x 128 (rows) tile of y, each
//    warp 32 x 64 (2 x 8 mma tiles), K in steps of 64 (two q8_0 blocks). The 128-token tile
//    reads each W tile for twice the tokens of a 64-token one (W is the bigger operand). For each block of 32,
//    one mma m16n8k32 s8 per tile gives the exact int32 dot product of the block; it is
//    converted to f32 and scaled by d_w * d_x into f32 accumulators (float(int) is exact: a
//    block's |sum| <= 32 * 128 * 127 < 2^24).
//    - Both operands' int8 tiles (128 rows x 64 bytes each) by cp.async, 16 bytes per copy, 4
//      per thread, zero-filled outside [T or N, K), in a 3-stage ring (kQStages): tiles kt + 1
//      and kt + 2 are in flight while tile kt is multiplied. W comes from the device's q8_0
//      planes (cuda/q8_0_planes.cuh: the int8 rows at w + n K, 16-byte aligned as K % 32 == 0),
//      x from the workspace (256-byte base). Neither copy goes through registers.
//    - The scales (d_x f32 from the workspace, d_w f16 from the scale plane; one of each per
//      thread per tile: row tid / 2, block tid % 2) by plain loads into registers when their
//      tile is issued, stored to the tile's stage after this tile's mma work (0 outside).
//    - Shared rows are 64 + 16 = 80 bytes, so ldmatrix's 8 row addresses per matrix hit 8
//      different 16-byte bank groups. ldmatrix (b16 view) hands lane (g, t) bytes 4t..4t+3 of
//      row g, which is the s8 fragment layout of both A (x rows) and B (W rows, k contiguous).
//    - 3 stages are 66 KiB of shared memory (the opt-in above 48 KiB is set once).
#include <cstdint>
#include <string>

#include "ops.h"
#include "q8_0_planes.cuh"
#include "quantize_x.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int kQBM = 128, kQBN = 128, kQBK = 64, kQThreads = 256, kQStages = 3;
constexpr int kQLd = kQBK + 16;  // bytes per shared row
constexpr int kQKb = kQBK / kQ8Block;  // q8_0 blocks per k-tile (2)
// per stage: x q [kQBM][kQLd] bytes, W q [kQBN][kQLd] bytes, d_x [kQBM][kQKb] f32, d_w [kQBN][kQKb] f32
constexpr size_t kQStageQBytes = size_t(kQBM + kQBN) * kQLd;
constexpr size_t kQStageBytes = kQStageQBytes + size_t(kQBM + kQBN) * kQKb * sizeof(float);
constexpr size_t kQSmemBytes = kQStages * kQStageBytes;

// ---- 2. the GEMM -------------------------------------------------------------------------------

static_assert(kQBN * kQKb == kQThreads && kQBM * kQKb == kQThreads, "a d_x and a d_w per thread");
static_assert(kQBM * kQBK / 16 == 2 * kQThreads && kQBN * kQBK / 16 == 2 * kQThreads, "two 16-byte copies per operand per thread");

// One operand's int8 tile (rows r0.., bytes k0.. of rows of K bytes at q) into dst by cp.async,
// zero-filled outside [rows, K).
__device__ __forceinline__ void issue_q_tile(uint8_t* dst, const int8_t* q, int64_t rows, int64_t K, int64_t r0, int64_t k0) {
  for (int i = 0; i < 2; i++) {
    const int c = int(threadIdx.x) + kQThreads * i;
    const int64_t r = r0 + c / 4, k = k0 + 16 * (c % 4);
    const bool valid = r < rows && k < K;
    uint8_t* d = dst + (c / 4) * kQLd + 16 * (c % 4);
    smem_bounds_check(d, 16);
    cp_async_16_zfill(d, valid ? q + r * K + k : q, valid);
  }
}

struct TileScales {
  float x, w;  // this thread's d_x (row tid / 2, block tid % 2 of the x tile) and d_w (same of the W tile)
};

// Tile kt's int8 tiles into stage `st` (cp.async, not committed here) and this thread's scales of it.
__device__ __forceinline__ TileScales issue_tile(uint8_t* st, const int8_t* xq, const float* xd, const Q8Planes& w, int64_t T,
                                                 int64_t K, int64_t N, int64_t m0, int64_t n0, int kt) {
  const int64_t k0 = int64_t(kt) * kQBK, nb = K / kQ8Block;
  issue_q_tile(st, xq, T, K, m0, k0);
  issue_q_tile(st + kQBM * kQLd, w.q, N, K, n0, k0);
  const int64_t r = threadIdx.x / kQKb, kb = k0 / kQ8Block + threadIdx.x % kQKb;
  TileScales s;
  s.x = m0 + r < T && kb < nb ? xd[(m0 + r) * nb + kb] : 0.f;
  s.w = n0 + r < N && kb < nb ? f16_bits_to_f32(w.d[(n0 + r) * nb + kb]) : 0.f;
  return s;
}

__device__ __forceinline__ void store_scales(uint8_t* st, const TileScales& s) {
  float* d = reinterpret_cast<float*>(st + kQStageQBytes);  // [kQBM][kQKb] x, then [kQBN][kQKb] W
  d[threadIdx.x] = s.x;
  d[kQBM * kQKb + threadIdx.x] = s.w;
}

static __global__ void __launch_bounds__(kQThreads)
    gemm_q8_0_kernel(float* y, const int8_t* xq, const float* xd, const uint8_t* w, int64_t T, int64_t K, int64_t N) {
  uint8_t* smem = dynamic_smem<uint8_t>();  // [kQStages][kQStageBytes]
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int64_t m0 = int64_t(blockIdx.y) * kQBM, n0 = int64_t(blockIdx.x) * kQBN;
  const Q8Planes planes = q8_planes(w, N * (K / kQ8Block));
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 64;

  float acc[2][8][4];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 8; j++)
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

  const int ktiles = int((K + kQBK - 1) / kQBK);
  for (int s = 0; s < kQStages - 1; s++) {  // (a group per stage, empty past the last tile: uniform wait counts)
    if (s < ktiles) store_scales(smem + s * kQStageBytes, issue_tile(smem + s * kQStageBytes, xq, xd, planes, T, K, N, m0, n0, s));
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; kt++) {
    cp_async_wait<kQStages - 2>();  // tile kt has landed
    __syncthreads();                // ... for every thread, its scales are stored, and tile kt - 1's readers are done
    const int nt = kt + kQStages - 1;
    uint8_t* const next = smem + (nt % kQStages) * kQStageBytes;  // tile kt - 1's stage
    TileScales sc{0.f, 0.f};
    if (nt < ktiles) sc = issue_tile(next, xq, xd, planes, T, K, N, m0, n0, nt);
    cp_async_commit();
    const uint8_t* st = smem + (kt % kQStages) * kQStageBytes;
    const uint8_t* A = st;
    const uint8_t* B = st + kQBM * kQLd;
    const float* Ad = reinterpret_cast<const float*>(st + kQStageQBytes);
    const float* Bd = Ad + kQBM * kQKb;
    for (int kb = 0; kb < kQKb; kb++) {
      const int kk = kb * kQ8Block;
      uint32_t a[2][4];
      float da[2][2];
      for (int i = 0; i < 2; i++) {  // matrices: rows 0-7 | 8-15 of bytes 0-15, then of 16-31
        ldmatrix_x4(a[i], A + (wm + 16 * i + (lane & 15)) * kQLd + kk + 16 * (lane >> 4));
        da[i][0] = Ad[(wm + 16 * i + g) * kQKb + kb];
        da[i][1] = Ad[(wm + 16 * i + g + 8) * kQKb + kb];
      }
      for (int jp = 0; jp < 4; jp++) {  // two n8 tiles per ldmatrix: (n 0-7: bytes 0-15, 16-31), (n 8-15: ...)
        uint32_t b[4];
        ldmatrix_x4(b, B + (wn + 16 * jp + (lane & 7) + 8 * (lane >> 4)) * kQLd + kk + 16 * ((lane >> 3) & 1));
        for (int h = 0; h < 2; h++) {
          const int j = 2 * jp + h;
          const uint32_t bj[2] = {b[2 * h], b[2 * h + 1]};
          const float dw0 = Bd[(wn + 8 * j + 2 * t4) * kQKb + kb], dw1 = Bd[(wn + 8 * j + 2 * t4 + 1) * kQKb + kb];
          for (int i = 0; i < 2; i++) {
            const int32_t zero[4] = {0, 0, 0, 0};
            int32_t s[4];
            mma_m16n8k32_s8s32(s, a[i], bj, zero);
            acc[i][j][0] += float(s[0]) * (dw0 * da[i][0]);
            acc[i][j][1] += float(s[1]) * (dw1 * da[i][0]);
            acc[i][j][2] += float(s[2]) * (dw0 * da[i][1]);
            acc[i][j][3] += float(s[3]) * (dw1 * da[i][1]);
          }
        }
      }
    }
    // (the next stage's last readers were in tile kt - 1, before this iteration's barrier; its
    // readers come after the barrier of tile nt)
    if (nt < ktiles) store_scales(next, sc);
  }
  cp_async_wait<0>();  // (only empty groups remain; none left pending at exit)

  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 8; j++)
      for (int e = 0; e < 4; e++) {
        const int64_t m = m0 + wm + 16 * i + g + 8 * (e >> 1), n = n0 + wn + 8 * j + 2 * t4 + (e & 1);
        if (m < T && n < N) y[m * N + n] = acc[i][j][e];
      }
}

void matmul_gemm_q8_0_cuda(const MatmulArgs& a, void* workspace, cudaStream_t stream, bool x_ready) {
  if (a.w_dtype != DType::Q8_0)
    throw Error("E_INVALID_ARG", std::string("matmul_gemm_q8_0_cuda: weights are ") + dtype_name(a.w_dtype));
  if (a.T <= 0 || a.N <= 0) return;
  if (a.K <= 0) {
    CUDA_CHECK(cudaMemsetAsync(a.y, 0, size_t(a.T * a.N) * sizeof(float), stream));
    return;
  }
  if (a.K % kQ8Block) throw Error("E_INVALID_ARG", "matmul_gemm_q8_0_cuda: q8_0 rows must hold whole 32-value blocks");
  if (!workspace || reinterpret_cast<uintptr_t>(workspace) % 256)
    throw Error("E_INVALID_ARG", "matmul_gemm_q8_0_cuda: needs a 256-byte aligned workspace (matmul_cuda_workspace)");
  if (reinterpret_cast<uintptr_t>(a.w) % 16)
    throw Error("E_INVALID_ARG", "matmul_gemm_q8_0_cuda: q8_0 weights (planes) must be 16-byte aligned");
  if ((a.T + kQBM - 1) / kQBM > 65535) throw Error("E_INVALID_ARG", "matmul_gemm_q8_0_cuda: too many tokens (grid.y)");
  int8_t* xq;
  float* xd;
  if (x_ready) quantized_x_q8_at(a.T, a.K, workspace, xq, xd);
  else quantize_x_q8_cuda(a.x, a.T, a.K, workspace, xq, xd, stream);
  // once, not per launch: the attribute stays with the function (a failed call leaves the static
  // unset, so the next launch tries again)
  static const bool raised =
      (CUDA_CHECK(cudaFuncSetAttribute(gemm_q8_0_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kQSmemBytes))), true);
  (void)raised;
  const dim3 grid(unsigned((a.N + kQBN - 1) / kQBN), unsigned((a.T + kQBM - 1) / kQBM));
  launch_kernel("gemm_q8_0_kernel", gemm_q8_0_kernel, grid, dim3(kQThreads), kQSmemBytes, stream, a.y,
                static_cast<const int8_t*>(xq), static_cast<const float*>(xd), static_cast<const uint8_t*>(a.w), a.T,
                a.K, a.N);
}

FUSELM_CUDA_NAMESPACE_END
