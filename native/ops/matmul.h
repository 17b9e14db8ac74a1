// matmul: out[t] = x[t] · wᵀ, weights in f32, f16, bf16, q8_0 or a GGUF block format as stored
// (all of them on the CPU: native/cpu/matmul_quant.h).
#pragma once
#include "op.h"

namespace fuselm {

// y[t, n] = sum_k x[t, k] * w[n, k]       x f32 [T, K], w [N, K] in f32/f16/bf16/q8_0/..., y f32 [T, N]
struct MatmulArgs { float* y; const float* x; const void* w; DType w_dtype; int64_t T, K, N; };
void matmul_cpu(const MatmulArgs& a, const Exec& e);
// x [K] (K a multiple of 32) quantized per block of 32 as the q8_0 fast path does (and
// llama.cpp): q = round-to-even(x / (max|x| / 127)), d[b] = max|x| / 127 rounded to f16
// (native/cpu/matmul.cc). The CUDA W8A8 GEMM's tests hold its quantized activations to this
// bit for bit.
void quantize_row_q8_cpu(const float* x, int64_t K, int8_t* q, float* d);

namespace matmul_op {
enum Role { out, x, w };
// lastRow: only x's row n - 1, written to out's row 0 (the logits of a prompt's last token)
enum Param { last_row };
inline MatmulArgs args(const Step& s) {
  const int64_t K = s.t(x).cols();
  const bool last = s.node.b(last_row);
  return {s.data(out), s.data(x) + (last ? (s.n - 1) * K : 0), s.data<void>(w), s.t(w).dtype, last ? 1 : s.n, K, s.t(w).rows()};
}
inline const OpDef def = [] {
  OpDef d{
      "matmul",
      {{"out", Access::Out, true, true}, {"x", Access::In}, {"w", Access::In}},
      {{"lastRow", ParamType::Bool, false, 0}},
      [](const Check& c) {
        c.f32(out);
        c.f32(x);
        const Tensor& W = c.tensor(w);
        if (W.dtype == DType::I32) c.fail("w must be f32, f16, bf16, q8_0 or a block format, got " + W.describe());
        c.cols(x, W.cols());
        c.cols(out, W.rows());
        c.rows(x, c.max_rows);
        c.rows(out, c.node.b(last_row) ? 1 : c.max_rows);
      },
  };
  d.rows_written = [](const Node& n, int64_t rows) -> int64_t { return n.b(last_row) ? 1 : rows; };
  return d;
}();
}  // namespace matmul_op

}  // namespace fuselm
