// scale: out = x * s, elementwise, s a constant (Gemma's embeddings times sqrt(hidden size)).
#pragma once
#include <cmath>

#include "op.h"

namespace fuselm {

// out[t, :] = x[t, :] * s                f32 [T, D]; out may alias x
struct ScaleArgs { float* out; const float* x; int64_t T, D; float s; };
void scale_cpu(const ScaleArgs& a, const Exec& e);

namespace scale_op {
enum Role { out, x };
enum Param { s };
inline ScaleArgs args(const Step& st) { return {st.data(out), st.data(x), st.n, st.t(x).cols(), st.node.f(s)}; }
inline const OpDef def{
    "scale",
    {{"out", Access::Out}, {"x", Access::In}},
    {{"s", ParamType::Float, true, 0}},
    [](const Check& c) {
      c.activations({out, x}, c.tensor(x).cols());
      if (!std::isfinite(c.node.p[s])) c.fail("s must be finite");
    },
};
}  // namespace scale_op

}  // namespace fuselm
