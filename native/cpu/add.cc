// add: out = a + b, elementwise over [T, D] f32.
#include "ops/add.h"

namespace fuselm {

static void add_reference(const AddArgs& a) {
  for (int64_t i = 0; i < a.T * a.D; i++) a.out[i] = a.a[i] + a.b[i];
}

void add_cpu(const AddArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return add_reference(a);
  // Bandwidth-bound: the compiler vectorizes this loop; threads split rows.
  e.pool->run(a.T, [&](int64_t t, int) {
    float* o = a.out + t * a.D;
    const float* x = a.a + t * a.D;
    const float* y = a.b + t * a.D;
    for (int64_t i = 0; i < a.D; i++) o[i] = x[i] + y[i];
  }, a.T * a.D);
}

FUSELM_CPU_OP(add_op::def, [](const Step& s, const Exec& e) { add_cpu(add_op::args(s), e); });

}  // namespace fuselm
