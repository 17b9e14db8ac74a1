// rms_norm: out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w over [T, D] f32.
#include <cmath>

#include "backend.h"

namespace fuselm {

static void rms_norm_row(float* out, const float* x, const float* w, int64_t D, float eps) {
  double ss = 0;  // double: the reference sets the bar for accuracy
  for (int64_t i = 0; i < D; i++) ss += double(x[i]) * x[i];
  float scale = float(1.0 / std::sqrt(ss / double(D) + double(eps)));
  for (int64_t i = 0; i < D; i++) out[i] = x[i] * scale * w[i];
}

static void rms_norm_reference(const RmsNormArgs& a) {
  for (int64_t t = 0; t < a.T; t++) rms_norm_row(a.out + t * a.D, a.x + t * a.D, a.w, a.D, a.eps);
}

void rms_norm_cpu(const RmsNormArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return rms_norm_reference(a);
  e.pool->run(a.T, [&](int64_t t, int) {
    const float* x = a.x + t * a.D;
    float* o = a.out + t * a.D;
    float ss = 0;
    for (int64_t i = 0; i < a.D; i++) ss += x[i] * x[i];
    float scale = 1.0f / std::sqrt(ss / float(a.D) + a.eps);
    for (int64_t i = 0; i < a.D; i++) o[i] = x[i] * scale * a.w[i];
  });
}

}  // namespace fuselm
