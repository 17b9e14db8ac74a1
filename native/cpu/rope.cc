// rope: rotary position embedding, in place, llama (adjacent pairs) or NeoX (split halves) layout.
#include <cmath>

#include "backend.h"

namespace fuselm {

// Rotates one head of one token. Angles are computed in double, as the reference.
static void rope_head_ref(float* h, int64_t n_rot, double pos, double theta_base, double freq_scale, bool neox) {
  for (int64_t i = 0; i < n_rot / 2; i++) {
    double theta = pos * freq_scale * std::pow(theta_base, -2.0 * double(i) / double(n_rot));
    double c = std::cos(theta), s = std::sin(theta);
    int64_t i0 = neox ? i : 2 * i;
    int64_t i1 = neox ? i + n_rot / 2 : 2 * i + 1;
    double x0 = h[i0], x1 = h[i1];
    h[i0] = float(x0 * c - x1 * s);
    h[i1] = float(x0 * s + x1 * c);
  }
}

static void rope_reference(const RopeArgs& a) {
  for (int64_t t = 0; t < a.T; t++)
    for (int64_t h = 0; h < a.n_heads; h++)
      rope_head_ref(a.x + (t * a.n_heads + h) * a.head_dim, a.n_rot, double(a.pos0 + t), a.theta_base,
                    a.freq_scale, a.neox);
}

void rope_cpu(const RopeArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return rope_reference(a);
  // Per token: the cos/sin table is computed once and shared by all heads.
  e.pool->run(a.T, [&](int64_t t, int) {
    constexpr int64_t kMaxPairs = 512;
    float cs[kMaxPairs], sn[kMaxPairs];
    int64_t pairs = a.n_rot / 2;
    double pos = double(a.pos0 + t) * a.freq_scale;
    for (int64_t i = 0; i < pairs; i++) {
      double theta = pos * std::pow(double(a.theta_base), -2.0 * double(i) / double(a.n_rot));
      cs[i] = float(std::cos(theta));
      sn[i] = float(std::sin(theta));
    }
    for (int64_t h = 0; h < a.n_heads; h++) {
      float* x = a.x + (t * a.n_heads + h) * a.head_dim;
      for (int64_t i = 0; i < pairs; i++) {
        int64_t i0 = a.neox ? i : 2 * i;
        int64_t i1 = a.neox ? i + pairs : 2 * i + 1;
        float x0 = x[i0], x1 = x[i1];
        x[i0] = x0 * cs[i] - x1 * sn[i];
        x[i1] = x0 * sn[i] + x1 * cs[i];
      }
    }
  });
}

}  // namespace fuselm
