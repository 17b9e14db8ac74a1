// gelu: out = gelu(x) elementwise. tanh_approx (GPT-2's gelu_new):
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); otherwise the exact 0.5 x (1 + erf(x/sqrt 2))
// (BERT). The reference evaluates in double. The fast path evaluates in float with the C
// library's tanhf / erff over chunks split across threads (tanhf saturates to +-1, so large
// |x| gives x or -0, never NaN).
#include <algorithm>
#include <cmath>

#include "backend.h"

namespace fuselm {

static void gelu_reference(const GeluArgs& a) {
  const double k = std::sqrt(2.0 / M_PI);
  for (int64_t i = 0; i < a.n; i++) {
    const double x = a.x[i];
    a.out[i] = float(a.tanh_approx ? 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)))
                                   : 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))));
  }
}

namespace {
constexpr int64_t kChunk = 16384;  // elements per task

void span_tanh(float* out, const float* x, int64_t n) {
  const float k = 0.7978845608028654f;
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    out[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}
void span_erf(float* out, const float* x, int64_t n) {
  const float r = 0.7071067811865476f;
  for (int64_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * r));
}
}  // namespace

void gelu_cpu(const GeluArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return gelu_reference(a);
  const auto span = a.tanh_approx ? span_tanh : span_erf;
  const int64_t tasks = (a.n + kChunk - 1) / kChunk;
  e.pool->run(tasks, [&](int64_t c, int) {
    const int64_t i0 = c * kChunk;
    span(a.out + i0, a.x + i0, std::min(kChunk, a.n - i0));
  }, a.n * 8);
}

}  // namespace fuselm
