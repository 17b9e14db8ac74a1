// swiglu: out = silu(gate) * up, elementwise over [T, D] f32; silu(x) = x / (1 + exp(-x)).
#include <cmath>

#include "backend.h"

namespace fuselm {

static void swiglu_reference(const SwigluArgs& a) {
  for (int64_t i = 0; i < a.T * a.D; i++) {
    float g = a.gate[i];
    a.out[i] = g / (1.0f + std::exp(-g)) * a.up[i];
  }
}

void swiglu_cpu(const SwigluArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return swiglu_reference(a);
  e.pool->run(a.T, [&](int64_t t, int) {
    const float* g = a.gate + t * a.D;
    const float* u = a.up + t * a.D;
    float* o = a.out + t * a.D;
    for (int64_t i = 0; i < a.D; i++) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  });
}

}  // namespace fuselm
