// transpose: a column slice of a matrix, transposed (a load-time layout change).
#pragma once
#include "op.h"

namespace fuselm {

// out[c, r] = x[r, col0 + c]   x [R, C], out [Cout, R], col0 + Cout <= C: a column slice
// transposed (the weight layout change of GPT-2's Conv1D at load; col0 splits its fused q/k/v).
// Elements are moved as they are: elem_size 4 (f32) or 2 (f16, bf16). The whole of x,
// whatever the run's n.
struct TransposeArgs { void* out; const void* x; int64_t R, C, col0, Cout, elem_size; };
void transpose_cpu(const TransposeArgs& a, const Exec& e);

namespace transpose_op {
enum Role { out, x };
enum Param { col0 };
inline TransposeArgs args(const Step& s) {
  const Tensor& X = s.t(x);
  return {s.data<void>(out), s.data<void>(x), X.shape[0], X.shape[1], s.node.i(col0), s.t(out).shape[0],
          X.dtype == DType::F32 ? 4 : 2};
}
inline const OpDef def = [] {
  OpDef d{
      "transpose",
      {{"out", Access::Out}, {"x", Access::In}},
      {{"col0", ParamType::Int, false, 0}},
      [](const Check& c) {
        const Tensor& X = c.tensor(x);
        const Tensor& O = c.tensor(out);
        if (X.dtype != DType::F32 && X.dtype != DType::F16 && X.dtype != DType::BF16)
          c.fail("x must be f32, f16 or bf16, got " + X.describe());
        c.same_dtype(out, x);
        const int64_t c0 = c.node.i(col0);
        if (X.shape.size() != 2 || O.shape.size() != 2 || O.shape[1] != X.shape[0] || c0 < 0 || c0 + O.shape[0] > X.shape[1])
          c.fail("out must be the transpose of x's columns col0 .. col0 + out rows: x " + X.describe() + ", out " +
                 O.describe() + ", col0 " + std::to_string(c0));
        if (c.node.t[out] == c.node.t[x]) c.fail("out must not alias x");
      },
  };
  d.no_cuda = "transpose is a load-time layout change (GPT-2's Conv1D weights), run on the CPU before upload";
  return d;
}();
}  // namespace transpose_op

}  // namespace fuselm
