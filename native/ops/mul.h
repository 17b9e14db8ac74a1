// mul: out = a * b, elementwise (the gate of a GELU-gated MLP: Gemma's GeGLU is gelu(gate) * up).
#pragma once
#include "op.h"

namespace fuselm {

// out[t, :] = a[t, :] * b[t, :]          f32 [T, D]; out may alias a or b
struct MulArgs { float* out; const float* a; const float* b; int64_t T, D; };
void mul_cpu(const MulArgs& a, const Exec& e);

namespace mul_op {
enum Role { out, a, b };
inline MulArgs args(const Step& s) { return {s.data(out), s.data(a), s.data(b), s.n, s.t(out).cols()}; }
inline const OpDef def{
    "mul",
    {{"out", Access::Out}, {"a", Access::In}, {"b", Access::In}},
    {},
    [](const Check& c) { c.activations({out, a, b}, c.tensor(out).cols()); },
};
}  // namespace mul_op

}  // namespace fuselm
