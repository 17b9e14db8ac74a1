// matmul: out[t] = x[t] · wᵀ, weights in f32, f16, bf16, q8_0 or a GGUF block format as stored
// (all of them on the CPU: native/cpu/matmul_quant.h).
#pragma once
#include "op.h"

namespace fuselm {

// y[t, n] = sum_k x[t, k] * w[n, k]       x f32 [T, K], w [N, K] in f32/f16/bf16/q8_0/..., y f32 [T, N]
// gemv_order: Q4_K sums every token in the order of llama.cpp's repacked GEMV, as its MUL_MAT_ID
// (moe_matmul) does, not only a call's last T % 4 tokens (native/cpu/matmul_q4_k.cc).
struct MatmulArgs { float* y; const float* x; const void* w; DType w_dtype; int64_t T, K, N; bool gemv_order = false; };
void matmul_cpu(const MatmulArgs& a, const Exec& e);
// x [K] (K a multiple of 32) quantized per block of 32 as the q8_0 fast path does (and
// llama.cpp): q = round-to-even(x / (max|x| / 127)), d[b] = max|x| / 127 rounded to f16
// (native/cpu/matmul.cc). The CUDA W8A8 GEMM's tests hold its quantized activations to this
// bit for bit.
void quantize_row_q8_cpu(const float* x, int64_t K, int8_t* q, float* d);

namespace matmul_op {
enum Role { out, x, w };
// lastRows > 0: only x's last lastRows rows (n - lastRows .. n - 1), written to out's rows 0 ..
// lastRows - 1 (the logits of a prompt's last token, or of each sequence's last row in a step
// of several); 0: all n rows.
enum Param { last_rows };
inline MatmulArgs args(const Step& s) {
  const int64_t K = s.t(x).cols(), last = s.node.i(last_rows);
  return {s.data(out), s.data(x) + (last ? (s.n - last) * K : 0), s.data<void>(w), s.t(w).dtype, last ? last : s.n, K, s.t(w).rows()};
}
inline const OpDef def = [] {
  OpDef d{
      "matmul",
      {{"out", Access::Out, true, true}, {"x", Access::In}, {"w", Access::In}},
      {{"lastRows", ParamType::Int, false, 0}},
      [](const Check& c) {
        c.f32(out);
        c.f32(x);
        const Tensor& W = c.tensor(w);
        if (W.dtype == DType::I32) c.fail("w must be f32, f16, bf16, q8_0 or a block format, got " + W.describe());
        c.cols(x, W.cols());
        c.cols(out, W.rows());
        c.rows(x, c.max_rows);
        const int64_t last = c.node.i(last_rows);
        if (last < 0 || last > c.max_rows) c.fail("lastRows must be 0.." + std::to_string(c.max_rows) + ", got " + std::to_string(last));
        c.rows(out, last ? last : c.max_rows);
      },
  };
  d.rows_written = [](const Node& n, int64_t rows) -> int64_t { return n.i(last_rows) ? n.i(last_rows) : rows; };
  d.check_run = [](const Node& n, int64_t rows, int64_t) {
    if (n.i(last_rows) > rows)
      throw Error("E_INVALID_ARG", "matmul: lastRows is " + std::to_string(n.i(last_rows)) + " but the run has " + std::to_string(rows) + " rows");
  };
  return d;
}();
}  // namespace matmul_op

}  // namespace fuselm
