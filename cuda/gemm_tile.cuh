// The f16/bf16 tensor-core GEMM's tile geometry and its x-tile staging, shared by the GEMMs that
// feed mma m16n8k16 from f32 activations: gemm.cu (f16/bf16 weights), gemm_quant.cu (GGUF
// block formats, dequantized to f16 tile by tile) and moe_matmul_gemm.cu (the same, over each
// expert's gathered tokens). A block of 4 warps computes a 64 (tokens) x
// 128 (rows) tile of y, K in steps of 32; shared rows are padded from 64 to 80 bytes so the 8
// row addresses of an ldmatrix matrix fall on 8 different 16-byte bank groups.
#pragma once
#include <cstdint>

#include "common.cuh"
#include "quant_unit.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

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

// x_row (a gathered tile, moe_matmul's grouped GEMM): token m is row x_row[m] of x, zero where
// it is < 0; null: row m.
__device__ __forceinline__ void load_x_tile(XChunks& r, const float* x, int64_t T, int64_t K, int64_t m0, int64_t k0,
                                            bool x_vec, const int32_t* x_row = nullptr) {
  for (int i = 0; i < 2; i++) {
    const int c = int(threadIdx.x) + kTcThreads * i;
    const int64_t m = m0 + c / 4, k = k0 + 8 * (c % 4);
    const int64_t row = m < T && x_row ? x_row[m] : m;
    if (m < T && row >= 0 && k < K) {  // K % 8 == 0: a chunk is all in or all out
      const float* p = x + row * K + k;
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

// A warp's 32 x 64 piece of the block tile over one k-tile of 32: fragments from shared memory
// by ldmatrix (x row-major as the A operand; W as stored, [n][k] with k contiguous, which is
// exactly B "col-major", so neither needs a transpose), 2 x 8 mma tiles into acc. A and B are
// this k-tile's x and W tiles ([kTcBM][kTcLd], [kTcBN][kTcLd] halves), (wm, wn) the warp's piece.
template <bool BF16>
__device__ __forceinline__ void mma_tile(float (&acc)[2][8][4], const uint16_t* A, const uint16_t* B, int wm, int wn,
                                         int lane) {
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
}

// The warp's accumulators to y [T, N]; (m0, n0) is the warp's first token and row. Accumulator
// e of tile (i, j): row g (+8 for e >= 2), columns 2 * t4 and 2 * t4 + 1. y_row (a scattered
// tile): token m goes to row y_row[m] of y, nowhere where it is < 0; null: row m.
__device__ __forceinline__ void store_acc(float* y, const float (&acc)[2][8][4], int64_t T, int64_t N, int64_t m0,
                                          int64_t n0, int lane, const int32_t* y_row = nullptr) {
  const int g = lane >> 2, t4 = lane & 3;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 8; j++)
      for (int e = 0; e < 4; e++) {
        const int64_t m = m0 + 16 * i + g + 8 * (e >> 1), n = n0 + 8 * j + 2 * t4 + (e & 1);
        const int64_t row = m < T && y_row ? y_row[m] : m;
        if (m < T && n < N && row >= 0) y[row * N + n] = acc[i][j][e];
      }
}

// ---- block-format W tiles (gemm_quant.cu, moe_matmul_gemm.cu): thread tid decodes row n0 + tid's
// 32-value unit of a k-tile (one unit of every format, cuda/quant_unit.cuh) and stores it as f16

// This thread's weight row (n0 + tid) for k-tile kt, zero outside [N).
template <DType DT>
__device__ __forceinline__ void load_w_unit(QUnitVals& u, const uint8_t* w, int64_t row_bytes, int64_t N, int64_t n0,
                                            int kt) {
  using F = QUnit<DT>;
  constexpr int kUnits = F::kValues / 32;
  const int64_t n = n0 + threadIdx.x;
  if (n < N) {
    F::decode(w + n * row_bytes + int64_t(kt / kUnits) * F::kBytes, kt % kUnits, u);
  } else {
    for (int j = 0; j < 8; j++) u.q[j] = 0;
    set_scales(u, 0.f, 0.f, 0.f, 0.f);
  }
}

__device__ __forceinline__ void store_w_unit(uint16_t* Ws, const QUnitVals& u) {
  uint16_t* dst = Ws + threadIdx.x * kTcLd;
  smem_bounds_check(dst, 64);
  for (int c = 0; c < 4; c++) {  // 8 weights per 16-byte store
    uint32_t h[4];
    for (int p = 0; p < 4; p++) {
      const int i = 8 * c + 2 * p, half = i >> 4;
      const uint32_t word = u.q[i >> 2];
      const float w0 = u.a[half] * float(int8_t(word >> (8 * (i & 3)))) + u.b[half];
      const float w1 = u.a[half] * float(int8_t(word >> (8 * ((i + 1) & 3)))) + u.b[half];
      h[p] = f32x2_to_half2_bits<false>(w0, w1);
    }
    reinterpret_cast<uint4*>(dst)[c] = make_uint4(h[0], h[1], h[2], h[3]);
  }
}


// A block-format tile's k loop (gemm_quant.cu, moe_matmul_gemm.cu): x tokens [m0, m0 + kTcBM) of
// T (through x_row when given) and W rows [n0, n0 + kTcBN) into acc, double-buffered in As and Ws.
template <DType DT>
__device__ __forceinline__ void quant_tile_k_loop(float (&acc)[2][8][4], uint16_t* As, uint16_t* Ws, const float* x,
                                                  int64_t T, int64_t K, int64_t m0, bool x_vec, const int32_t* x_row,
                                                  const uint8_t* w, int64_t N, int64_t n0, int wm, int wn, int lane) {
  const int64_t row_bytes = K / QUnit<DT>::kValues * QUnit<DT>::kBytes;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 8; j++)
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;
  const int ktiles = int(K / kTcBK);  // K % 32 == 0: whole units
  XChunks xr;
  QUnitVals wu;
  load_x_tile(xr, x, T, K, m0, 0, x_vec, x_row);
  load_w_unit<DT>(wu, w, row_bytes, N, n0, 0);
  store_x_tile<false>(As, xr);
  store_w_unit(Ws, wu);
  for (int kt = 0; kt < ktiles; kt++) {
    const int buf = kt & 1;
    const bool next = kt + 1 < ktiles;
    if (next) {
      load_x_tile(xr, x, T, K, m0, int64_t(kt + 1) * kTcBK, x_vec, x_row);
      load_w_unit<DT>(wu, w, row_bytes, N, n0, kt + 1);
    }
    __syncthreads();  // this tile's x and W are stored by every thread
    mma_tile<false>(acc, As + buf * kTcBM * kTcLd, Ws + buf * kTcBN * kTcLd, wm, wn, lane);
    if (next) {  // the other buffers' last readers were in tile kt - 1, before the barrier above
      store_x_tile<false>(As + (buf ^ 1) * kTcBM * kTcLd, xr);
      store_w_unit(Ws + (buf ^ 1) * kTcBN * kTcLd, wu);
    }
  }
}

FUSELM_CUDA_NAMESPACE_END
