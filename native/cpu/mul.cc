// mul: out = a * b, elementwise over [T, D] f32. One f32 multiply per element: every level
// gives the reference's bits.
#include "ops/mul.h"

namespace fuselm {

static void mul_reference(const MulArgs& a) {
  for (int64_t i = 0; i < a.T * a.D; i++) a.out[i] = a.a[i] * a.b[i];
}

void mul_cpu(const MulArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return mul_reference(a);
  // Bandwidth-bound: the compiler vectorizes this loop; threads split rows.
  e.pool->run(a.T, [&](int64_t t, int) {
    float* o = a.out + t * a.D;
    const float* x = a.a + t * a.D;
    const float* y = a.b + t * a.D;
    for (int64_t i = 0; i < a.D; i++) o[i] = x[i] * y[i];
  }, a.T * a.D);
}

FUSELM_CPU_OP(mul_op::def, [](const Step& s, const Exec& e) { mul_cpu(mul_op::args(s), e); });

}  // namespace fuselm
