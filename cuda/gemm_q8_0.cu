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
//    - q_x tiles (128 rows x 64 bytes): cp.async, 16 bytes per copy (K % 32 == 0 and the
//      workspace's 256-byte base keep every row's chunks 16-byte aligned); d_x by plain loads.
//    - W tiles: q8_0 blocks are 34 bytes, so the 32 int8 of a block start 2 bytes past a 4-byte
//      boundary in every other block, and no block is 16-byte aligned: cp.async (16-byte
//      copies from 16-byte aligned addresses) cannot take them. Each thread loads one block of
//      the tile (row tid / 2, block tid % 2) into registers one tile ahead (overlapping the current tile's mma work) with
//      4-byte loads (load_q8_block, cuda/q8_0_block.cuh: 9 loads per block, whichever of the
//      two alignments it has). The int8 then go to shared memory as 16-byte stores, d_w as f32.
//    - Shared rows are 64 + 16 = 80 bytes, so ldmatrix's 8 row addresses per matrix hit 8
//      different 16-byte bank groups. ldmatrix (b16 view) hands lane (g, t) bytes 4t..4t+3 of
//      row g, which is the s8 fragment layout of both A (x rows) and B (W rows, k contiguous).
#include <cstdint>
#include <string>

#include "ops.h"
#include "q8_0_block.cuh"
#include "quantize_x.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int kQBM = 128, kQBN = 128, kQBK = 64, kQThreads = 256;
constexpr int kQLd = kQBK + 16;  // bytes per shared row
constexpr int kQKb = kQBK / kQ8Block;  // q8_0 blocks per k-tile (2)
// [2] x: q [kQBM][kQLd] bytes, W: q [kQBN][kQLd] bytes, d_x [kQBM][kQKb] f32, d_w [kQBN][kQKb] f32
constexpr size_t kQSmemBytes = size_t(2) * ((kQBM + kQBN) * kQLd + (kQBM + kQBN) * kQKb * sizeof(float));

// ---- 2. the GEMM -------------------------------------------------------------------------------

static_assert(kQBN * kQKb == kQThreads && kQBM * kQKb == kQThreads, "a W block and a d_x per thread");

// This thread's W block of a tile (row n0 + tid / 2, block kb0 + tid % 2), zero outside [N, K).
struct WBlock {
  float d;
  uint32_t q[8];
};

__device__ __forceinline__ void load_w_block(WBlock& r, const uint8_t* w, int64_t nb, int64_t N, int64_t n0, int64_t kb0) {
  const int64_t n = n0 + threadIdx.x / kQKb, kb = kb0 + threadIdx.x % kQKb;
  if (n < N && kb < nb) {
    load_q8_block(w + (n * nb + kb) * kQ8BlockBytes, r.d, r.q);
  } else {
    r.d = 0.f;
    for (int j = 0; j < 8; j++) r.q[j] = 0;
  }
}

__device__ __forceinline__ void store_w_block(uint8_t* Wq, float* Wd, const WBlock& r) {
  const int row = int(threadIdx.x) / kQKb, i = int(threadIdx.x) % kQKb;
  uint8_t* dst = Wq + row * kQLd + i * kQ8Block;
  smem_bounds_check(dst, kQ8Block);
  reinterpret_cast<uint4*>(dst)[0] = make_uint4(r.q[0], r.q[1], r.q[2], r.q[3]);
  reinterpret_cast<uint4*>(dst)[1] = make_uint4(r.q[4], r.q[5], r.q[6], r.q[7]);
  Wd[row * kQKb + i] = r.d;
}

// The x tile's int8 (128 rows x 4 chunks of 16 bytes, 2 per thread) by cp.async, zero-filled
// outside [T, K), and this thread's d_x (row tid / 2, block tid % 2; 0 outside).
__device__ __forceinline__ float issue_x_tile(uint8_t* Xq, const int8_t* q, const float* d, int64_t T, int64_t K,
                                              int64_t m0, int64_t k0) {
  for (int i = 0; i < 2; i++) {
    const int c = int(threadIdx.x) + kQThreads * i;
    const int64_t m = m0 + c / 4, k = k0 + 16 * (c % 4);
    const bool valid = m < T && k < K;
    uint8_t* dst = Xq + (c / 4) * kQLd + 16 * (c % 4);
    smem_bounds_check(dst, 16);
    cp_async_16_zfill(dst, valid ? q + m * K + k : q, valid);
  }
  const int64_t m = m0 + threadIdx.x / 2, kb = k0 / kQ8Block + threadIdx.x % 2;
  return m < T && kb < K / kQ8Block ? d[m * (K / kQ8Block) + kb] : 0.f;
}

static __global__ void __launch_bounds__(kQThreads)
    gemm_q8_0_kernel(float* y, const int8_t* xq, const float* xd, const uint8_t* w, int64_t T, int64_t K, int64_t N) {
  uint8_t* Xq = dynamic_smem<uint8_t>();                     // [2][kQBM][kQLd]
  uint8_t* Wq = Xq + 2 * kQBM * kQLd;                        // [2][kQBN][kQLd]
  float* Xd = reinterpret_cast<float*>(Wq + 2 * kQBN * kQLd);  // [2][kQBM][kQKb]
  float* Wd = Xd + 2 * kQBM * kQKb;                          // [2][kQBN][kQKb]
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int64_t m0 = int64_t(blockIdx.y) * kQBM, n0 = int64_t(blockIdx.x) * kQBN;
  const int64_t nb = K / kQ8Block;
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 64;

  float acc[2][8][4];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 8; j++)
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

  const int ktiles = int((K + kQBK - 1) / kQBK);
  WBlock wr;
  float xd_next = issue_x_tile(Xq, xq, xd, T, K, m0, 0);
  cp_async_commit();
  load_w_block(wr, w, nb, N, n0, 0);
  store_w_block(Wq, Wd, wr);
  Xd[threadIdx.x] = xd_next;  // [row tid / 2][block tid % 2]
  for (int kt = 0; kt < ktiles; kt++) {
    const int buf = kt & 1;
    const bool next = kt + 1 < ktiles;
    if (next) {
      const int64_t k0 = int64_t(kt + 1) * kQBK;
      xd_next = issue_x_tile(Xq + (buf ^ 1) * kQBM * kQLd, xq, xd, T, K, m0, k0);
      load_w_block(wr, w, nb, N, n0, k0 / kQ8Block);
    }
    cp_async_commit();   // (an empty group on the last tile keeps the wait count uniform)
    cp_async_wait<1>();  // this tile's x has landed
    __syncthreads();     // ... for every thread, and this tile's W and scales are stored
    const uint8_t* A = Xq + buf * kQBM * kQLd;
    const uint8_t* B = Wq + buf * kQBN * kQLd;
    const float* Ad = Xd + buf * kQBM * kQKb;
    const float* Bd = Wd + buf * kQBN * kQKb;
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
    if (next) {  // the other buffers' last readers were in tile kt - 1
      store_w_block(Wq + (buf ^ 1) * kQBN * kQLd, Wd + (buf ^ 1) * kQBN * kQKb, wr);
      Xd[(buf ^ 1) * kQBM * kQKb + threadIdx.x] = xd_next;
    }
    __syncthreads();
  }

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
  if (reinterpret_cast<uintptr_t>(a.w) % 2)
    throw Error("E_INVALID_ARG", "matmul_gemm_q8_0_cuda: q8_0 weights must be 2-byte aligned");
  if ((a.T + kQBM - 1) / kQBM > 65535) throw Error("E_INVALID_ARG", "matmul_gemm_q8_0_cuda: too many tokens (grid.y)");
  int8_t* xq;
  float* xd;
  if (x_ready) quantized_x_q8_at(a.T, a.K, workspace, xq, xd);
  else quantize_x_q8_cuda(a.x, a.T, a.K, workspace, xq, xd, stream);
  const dim3 grid(unsigned((a.N + kQBN - 1) / kQBN), unsigned((a.T + kQBM - 1) / kQBM));
  launch_kernel("gemm_q8_0_kernel", gemm_q8_0_kernel, grid, dim3(kQThreads), kQSmemBytes, stream, a.y,
                static_cast<const int8_t*>(xq), static_cast<const float*>(xd), static_cast<const uint8_t*>(a.w), a.T,
                a.K, a.N);
}

FUSELM_CUDA_NAMESPACE_END
