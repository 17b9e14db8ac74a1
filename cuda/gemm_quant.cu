// gemm_quant: the prefill-shaped matmul y[t, n] = sum_k x[t, k] * w[n, k] with weights in a GGUF
// block format other than q8_0 (q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k .. q6_k, iq4_xs; q8_0 has
// its W8A8 GEMM, cuda/gemm_q8_0.cu), on tensor cores in f16: the weights are dequantized tile
// by tile into shared memory and fed to mma m16n8k16 with f32 accumulation, the f16 GEMM's
// tiling (cuda/gemm_tile.cuh: 64 tokens x 128 rows per block of 4 warps, K in steps of 32).
//
// A k-tile of 32 is exactly one 32-value unit of every format (cuda/quant_unit.cuh), so thread
// tid decodes row n0 + tid's unit for the next k-tile into registers while the current tile's
// mma work runs (the weights' global latency hides behind it), then writes its 32 weights,
// a * q + b rounded to f16, as 4 16-byte stores. The x tile is staged as in gemm.cu (f32 read one
// tile ahead, rounded to f16). Reading each unit's super-block header (scales) once per unit
// repeats a few bytes 8 times per k-quant super-block, from L1.
//
// Error against f32: each weight and each x value rounded to f16 (2^-11 relative); products and
// sums in f32. Weights beyond f16's range (|w| > 65504) would overflow: GGUF scales are f16, so
// only q2_k/q4_k/q5_k's d * sc * q can exceed them, which no real model's weights do.
#include <cstdint>
#include <string>

#include "gemm_tile.cuh"
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

template <DType DT>
static __global__ void __launch_bounds__(kTcThreads)
    gemm_quant_kernel(float* y, const float* x, const uint8_t* w, int64_t T, int64_t K, int64_t N, bool x_vec) {
  uint16_t* As = dynamic_smem<uint16_t>();  // [2][kTcBM][kTcLd]
  uint16_t* Ws = As + 2 * kTcBM * kTcLd;    // [2][kTcBN][kTcLd]
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t m0 = int64_t(blockIdx.y) * kTcBM, n0 = int64_t(blockIdx.x) * kTcBN;
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 64;
  float acc[2][8][4];
  quant_tile_k_loop<DT>(acc, As, Ws, x, T, K, m0, x_vec, nullptr, w, N, n0, wm, wn, lane);
  store_acc(y, acc, T, N, m0 + wm, n0 + wn, lane);
}

bool gemm_quant_supports(DType t) {
  switch (t) {
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::IQ4_NL:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: case DType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

template <DType DT>
static void launch_gemm_quant(const char* name, const MatmulArgs& a, cudaStream_t stream) {
  if (QUnit<DT>::kAlign4 ? reinterpret_cast<uintptr_t>(a.w) % 4 : reinterpret_cast<uintptr_t>(a.w) % 2)
    throw Error("E_INVALID_ARG", std::string(name) + ": weights misaligned for their block format");
  const dim3 grid(unsigned((a.N + kTcBN - 1) / kTcBN), unsigned((a.T + kTcBM - 1) / kTcBM));
  launch_kernel(name, gemm_quant_kernel<DT>, grid, dim3(kTcThreads), kTcSmemBytes, stream, a.y, a.x,
                static_cast<const uint8_t*>(a.w), a.T, a.K, a.N, aligned16(a.x));
}

void matmul_gemm_quant_cuda(const MatmulArgs& a, cudaStream_t stream) {
  if (!quant_matmul_prologue(a, gemm_quant_supports(a.w_dtype), "matmul_gemm_quant_cuda", stream)) return;
  if ((a.T + kTcBM - 1) / kTcBM > 65535) throw Error("E_INVALID_ARG", "matmul_gemm_quant_cuda: too many tokens (grid.y)");
  switch (a.w_dtype) {
#define FUSELM_GEMM_QUANT_CASE(DT, name) \
  case DType::DT: return launch_gemm_quant<DType::DT>("gemm_quant_kernel<" name ">", a, stream);
    FUSELM_GEMM_QUANT_CASE(Q4_0, "q4_0")
    FUSELM_GEMM_QUANT_CASE(Q4_1, "q4_1")
    FUSELM_GEMM_QUANT_CASE(Q5_0, "q5_0")
    FUSELM_GEMM_QUANT_CASE(Q5_1, "q5_1")
    FUSELM_GEMM_QUANT_CASE(IQ4_NL, "iq4_nl")
    FUSELM_GEMM_QUANT_CASE(Q2_K, "q2_k")
    FUSELM_GEMM_QUANT_CASE(Q3_K, "q3_k")
    FUSELM_GEMM_QUANT_CASE(Q4_K, "q4_k")
    FUSELM_GEMM_QUANT_CASE(Q5_K, "q5_k")
    FUSELM_GEMM_QUANT_CASE(Q6_K, "q6_k")
    FUSELM_GEMM_QUANT_CASE(IQ4_XS, "iq4_xs")
#undef FUSELM_GEMM_QUANT_CASE
    default:
      return;
  }
}

FUSELM_CUDA_NAMESPACE_END
