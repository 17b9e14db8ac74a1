// moe_matmul: the expert projections of a mixture-of-experts FFN. Each token t was routed to k
// experts (ids[t, 0..k-1], moe_route); slot j multiplies its input by expert ids[t, j]'s matrix
// of a stacked weight [E, N, K] (llama.cpp's ffn_{gate,up,down}_exps, any matmul weight dtype,
// as stored). Without weights each slot's result is written to its own columns of out (gate and
// up: [T, k * N]); with weights the slots are summed, each times its router weight, and ADDED to
// out (down: out += sum_j weights[t, j] * y[t, j], the scatter-add into the residual stream).
// Only the chosen experts' weights are read; the fast path multiplies each expert once over
// all the rows routed to it (native/cpu/moe_matmul.cc).
#pragma once
#include <string>

#include "op.h"

namespace fuselm {

// y_j[t] = x_j[t] · W[ids[t, j]]ᵀ, x_j[t] = x[t] (x [T, K]) or x[t, jK .. jK + K) (x [T, k * K]);
// weights null: out[t, jN .. jN + N) = y_j[t]; else out[t] += sum over j (in order) of
// weights[t, j] * y_j[t].      w [E, N, K] (a 2-D [N, K] is one expert), ids i32 [T, k]
struct MoeMatmulArgs {
  float* out;
  const float* x;
  const void* w;
  DType w_dtype;
  const int32_t* ids;
  const float* weights;  // null: one output per slot
  int64_t T, K, N, E, k;
  bool x_per_slot;
};
void moe_matmul_cpu(const MoeMatmulArgs& a, const Exec& e);

namespace moe_matmul_op {
enum Role { out, x, w, ids, weights };
inline int64_t experts_of(const Tensor& W) { return W.shape.size() == 3 ? W.shape[0] : 1; }
inline int64_t rows_of(const Tensor& W) { return W.shape.size() == 3 ? W.shape[1] : W.rows(); }
inline MoeMatmulArgs args(const Step& s) {
  const Tensor& W = s.t(w);
  const int64_t k = s.t(ids).cols(), K = W.cols();
  return {s.data(out), s.data(x), s.data<void>(w), W.dtype, s.data<int32_t>(ids), s.node.t[weights] ? s.data(weights) : nullptr,
          s.n, K, rows_of(W), experts_of(W), k, s.t(x).cols() != K};
}
inline const OpDef def{
    "moe_matmul",
    {{"out", Access::InOut}, {"x", Access::In}, {"w", Access::In}, {"ids", Access::In}, {"weights", Access::In, false}},
    {},
    [](const Check& c) {
      const Tensor& W = c.tensor(w);
      if (W.dtype == DType::I32) c.fail("w must be f32, f16, bf16, q8_0 or a block format, got " + W.describe());
      if (W.shape.size() != 2 && W.shape.size() != 3) c.fail("w must be [experts, N, K] or [N, K], got " + W.describe());
      const Tensor& I = c.tensor(ids);
      if (I.dtype != DType::I32) c.fail("ids must be i32, got " + I.describe());
      const int64_t k = I.cols(), K = W.cols(), N = rows_of(W);
      c.rows(ids, c.max_rows);
      const Tensor& X = c.f32(x);
      if (X.cols() != K && X.cols() != k * K)
        c.fail("x must have K = " + std::to_string(K) + " or k * K = " + std::to_string(k * K) + " columns, got " + X.describe());
      c.rows(x, c.max_rows);
      c.f32(out);
      c.rows(out, c.max_rows);
      if (c.has(weights)) {
        c.f32(weights);
        c.cols(weights, k);
        c.rows(weights, c.max_rows);
        c.cols(out, N);
      } else {
        c.cols(out, k * N);
      }
    },
};
}  // namespace moe_matmul_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
// error: the graph's error word; an expert id outside 0 .. E-1 is recorded there, never read.
// Calls of 8 tokens or more (kMoeGemmMinTokens) with gemm_quant's block formats run the grouped GEMM,
// in the workspace (moe_matmul_gemm_workspace bytes)
void moe_matmul_cuda(const MoeMatmulArgs& a, int32_t* error, void* workspace, size_t workspace_bytes, cudaStream_t stream);  // cuda/moe_matmul.cu
// The grouped tensor-core GEMM (cuda/moe_matmul_gemm.cu): false, running nothing, where the call
// is not one it takes; its workspace for calls of up to max_T tokens (0: it takes none)
bool moe_matmul_gemm_cuda(const MoeMatmulArgs& a, int32_t* error, void* workspace, size_t workspace_bytes, cudaStream_t stream);
size_t moe_matmul_gemm_workspace(DType w_dtype, int64_t max_T, int64_t K, int64_t N, int64_t E, int64_t k, bool weighted);
FUSELM_CUDA_NAMESPACE_END
#endif
