// matmul: the CUDA backend's matmul entry point (MatmulArgs, native/ops/matmul.h), picking the
// kernel by the number of tokens T:
// - T <= kGemvMaxTokens: the GEMV (cuda/gemv.cu), one warp per (row, token). Decode is bound by
//   reading W once; the GEMV spreads N rows over N / 4 blocks, where the GEMM's 64 x 128 tiles
//   would give only N / 128 blocks (32 for N = 4096, fewer than an H200's 132 SMs) and waste
//   most of each tensor-core tile on absent tokens. Each extra token re-reads W, mostly from L2;
//   8 is where that re-reading is still cheap (a guess to be replaced by a measured crossover).
// - else the GEMM for the weight's dtype: tensor cores for f16/bf16 (cuda/gemm.cu), W8A8 for
//   q8_0 (cuda/gemm_q8_0.cu, with x quantized into `workspace`), CUDA cores for f32.
// Note for q8_0: the GEMV multiplies f32 x by the int8 weights, the GEMM quantizes x to 8 bits
// as the CPU does, so the two sides differ by that rounding (~0.4% of |y|).
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int64_t kGemvMaxTokens = 8;

void matmul_cuda(const MatmulArgs& a, void* workspace, cudaStream_t stream) {
  if (a.T <= kGemvMaxTokens) return matmul_gemv_cuda(a, stream);
  if (a.w_dtype == DType::Q8_0) return matmul_gemm_q8_0_cuda(a, workspace, stream);
  matmul_gemm_cuda(a, stream);
}

FUSELM_CUDA_OP(
    matmul_op::def, [](const Step& s, const CudaExec& x) { matmul_cuda(matmul_op::args(s), x.workspace, x.stream); },
    [](const Node& n, int64_t max_rows) {
      return matmul_cuda_workspace(n.t[matmul_op::w]->dtype, max_rows, n.t[matmul_op::x]->cols());
    });

FUSELM_CUDA_NAMESPACE_END
