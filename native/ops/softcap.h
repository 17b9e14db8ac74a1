// softcap: out = cap * tanh(x / cap), elementwise: Gemma-2's soft-capping of the final logits
// (final_logit_softcapping, 30) that keeps them within (-cap, cap).
#pragma once
#include <algorithm>

#include "op.h"

namespace fuselm {

// out[t, :] = cap * tanh(x[t, :] / cap)    f32 x,out [T, D]; out may alias x
struct SoftcapArgs { float* out; const float* x; int64_t T, D; float cap; };
void softcap_cpu(const SoftcapArgs& a, const Exec& e);

namespace softcap_op {
enum Role { out, x };
enum Param { cap };
// the rows of x a run covers: n, or all of x when it has fewer (the logits of a prompt's last token)
inline int64_t covered(const Node& n, int64_t rows) { return std::min(rows, n.t[x]->rows()); }
inline SoftcapArgs args(const Step& s) { return {s.data(out), s.data(x), covered(s.node, s.n), s.t(x).cols(), s.node.f(cap)}; }
inline const OpDef def = [] {
  OpDef d{
      "softcap",
      {{"out", Access::Out, true, true}, {"x", Access::In}},
      {{"cap", ParamType::Float, true, 0}},
      [](const Check& c) {
        c.f32(x);
        c.f32(out);
        c.cols(out, c.tensor(x).cols());
        c.rows(out, std::min(c.max_rows, c.tensor(x).rows()));
        if (!(c.node.p[cap] > 0)) c.fail("cap must be > 0");
      },
  };
  d.rows_written = &covered;
  return d;
}();
}  // namespace softcap_op

}  // namespace fuselm
