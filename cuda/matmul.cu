// matmul: the CUDA backend's matmul entry point (MatmulArgs, native/ops/matmul.h), picking the
// kernel by the weight's dtype and the number of tokens T:
// - T <= kGemvMaxTokens, decode: f32/f16/bf16 weights by the GEMV (cuda/gemv.cu), one warp per
//   (row, token). Decode is bound by reading W once; the GEMV spreads N rows over N / 4 blocks,
//   where the GEMM's 64 x 128 tiles would give only N / 128 blocks (32 for N = 4096, fewer than
//   an H200's 132 SMs) and waste most of each tensor-core tile on absent tokens. Each extra
//   token re-reads W, mostly from L2; 8 is where that re-reading is still cheap (a guess to be
//   replaced by a measured crossover). Block formats (q8_0 and the GGUF quants) by the dp4a
//   GEMV (cuda/gemv_quant.cu): x quantized to int8 into `workspace`, the tokens looped inside
//   the kernel so W is read once.
// - else the GEMM for the weight's dtype: tensor cores for f16/bf16 (cuda/gemm.cu), W8A8 for
//   q8_0 (cuda/gemm_q8_0.cu, x quantized into `workspace`), f16 tiles dequantized from the other
//   block formats (cuda/gemm_quant.cu), CUDA cores for f32.
// Block formats thus see int8 activations in decode (as the CPU's fast paths and llama.cpp) and,
// but for q8_0, f16 ones in prefill: the two differ by that rounding (~0.4% of |y|).
// A matmul on the x the previous one quantized into the workspace (QuantizedX, cuda_op.h: the
// q, k and v projections, gate and up) skips quantizing it again; in decode such a run of
// matmuls goes as one launch of the dp4a GEMV (matmul_group_cuda, which the CUDA graph uses),
// and gate and up followed by SwiGLU as one launch that writes only the SwiGLU (matmul_swiglu_cuda).
#include <cstdint>

#include "ops.h"
#include "quantize_x.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int64_t kGemvMaxTokens = 8;

size_t matmul_cuda_workspace(DType w_dtype, int64_t max_T, int64_t K) {
  if (!is_block_dtype(w_dtype) || max_T <= 0 || K <= 0) return 0;
  // q8_0's GEMM quantizes every token; the other formats only decode's few
  const int64_t T = w_dtype == DType::Q8_0 ? max_T : (max_T < kGemvMaxTokens ? max_T : kGemvMaxTokens);
  return quantize_x_q8_bytes(T, K);
}

bool matmul_gemv_takes_quantized_x(DType w_dtype, int64_t T) {
  return T > 0 && T <= kGemvMaxTokens && gemv_quant_supports(w_dtype);
}

// Whether a y of T x N floats overlaps the x of T x K (then x is not intact after the matmul).
static bool y_over_x(const MatmulArgs& a) {
  const uintptr_t x0 = reinterpret_cast<uintptr_t>(a.x), y0 = reinterpret_cast<uintptr_t>(a.y);
  return y0 < x0 + uintptr_t(a.T * a.K) * 4 && x0 < y0 + uintptr_t(a.T * a.N) * 4;
}

void matmul_cuda(const MatmulArgs& a, void* workspace, cudaStream_t stream, QuantizedX* qx) {
  // whether the kernel takes x quantized into the workspace, and whether it is there already
  const bool gemv = a.T <= kGemvMaxTokens;
  const bool int8_x = gemv ? gemv_quant_supports(a.w_dtype) : a.w_dtype == DType::Q8_0;
  const bool ready = int8_x && qx && qx->x == a.x && qx->T == a.T && qx->K == a.K && a.T > 0 && a.K > 0;
  if (gemv && int8_x) matmul_gemv_quant_cuda(a, workspace, stream, ready);
  else if (gemv) matmul_gemv_cuda(a, stream);
  else if (int8_x) matmul_gemm_q8_0_cuda(a, workspace, stream, ready);
  else if (gemm_quant_supports(a.w_dtype)) matmul_gemm_quant_cuda(a, stream);
  else matmul_gemm_cuda(a, stream);
  // (kept only while x is intact: not if y was written over it)
  if (qx) *qx = int8_x && a.T > 0 && a.K > 0 && a.N > 0 && !y_over_x(a) ? QuantizedX{a.x, a.T, a.K} : QuantizedX{};
}

bool matmul_group_cuda(const MatmulArgs* m, int count, void* workspace, cudaStream_t stream, QuantizedX* qx) {
  const MatmulArgs& a = m[0];
  if (a.T > kGemvMaxTokens || !gemv_quant_supports(a.w_dtype)) return false;
  const bool ready = qx && qx->x == a.x && qx->T == a.T && qx->K == a.K && a.T > 0 && a.K > 0;
  matmul_gemv_quant_group_cuda(m, count, workspace, stream, ready);
  bool intact = a.T > 0 && a.K > 0;
  for (int j = 0; j < count; j++) intact = intact && !y_over_x(m[j]);
  if (qx) *qx = intact ? QuantizedX{a.x, a.T, a.K} : QuantizedX{};
  return true;
}

bool matmul_swiglu_cuda(const MatmulArgs& gate, const MatmulArgs& up, float* out, void* workspace, cudaStream_t stream,
                        QuantizedX* qx) {
  if (gate.T > kGemvMaxTokens || !gemv_quant_supports(gate.w_dtype)) return false;
  const bool ready = qx && qx->x == gate.x && qx->T == gate.T && qx->K == gate.K && gate.T > 0 && gate.K > 0;
  matmul_swiglu_gemv_quant_cuda(gate, up, out, workspace, stream, ready);
  if (qx) *qx = gate.T > 0 && gate.K > 0 && !y_over_x({out, gate.x, nullptr, gate.w_dtype, gate.T, gate.K, gate.N}) ? QuantizedX{gate.x, gate.T, gate.K} : QuantizedX{};
  return true;
}

FUSELM_CUDA_OP(
    matmul_op::def,
    [](const Step& s, const CudaExec& x) { matmul_cuda(matmul_op::args(s), x.workspace, x.stream, x.quantized_x); },
    [](const Node& n, int64_t max_rows) {
      return matmul_cuda_workspace(n.t[matmul_op::w]->dtype, max_rows, n.t[matmul_op::x]->cols());
    });

FUSELM_CUDA_NAMESPACE_END
