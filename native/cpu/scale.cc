// scale: out = x * s, elementwise over [T, D] f32. One f32 multiply per element: every level
// gives the reference's bits.
#include "ops/scale.h"

namespace fuselm {

static void scale_reference(const ScaleArgs& a) {
  for (int64_t i = 0; i < a.T * a.D; i++) a.out[i] = a.x[i] * a.s;
}

void scale_cpu(const ScaleArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return scale_reference(a);
  // Bandwidth-bound: the compiler vectorizes this loop; threads split rows.
  e.pool->run(a.T, [&](int64_t t, int) {
    float* o = a.out + t * a.D;
    const float* x = a.x + t * a.D;
    for (int64_t i = 0; i < a.D; i++) o[i] = x[i] * a.s;
  }, a.T * a.D);
}

FUSELM_CPU_OP(scale_op::def, [](const Step& s, const Exec& e) { scale_cpu(scale_op::args(s), e); });

}  // namespace fuselm
