// layer_norm: out[t] = (x[t] - mean) / sqrt(var + eps) * w + b over [T, D] f32 (GPT-2, BERT).
// The reference computes mean and variance in double, two passes. The fast path does the same
// two passes in float with 16 independent partial sums (vectorizable, each sum holds D/16
// terms), then writes (x - mean) * scale * w + b in the reference's order. Rows split across
// threads.
#include <cmath>

#include "ops/layer_norm.h"

namespace fuselm {

static void layer_norm_reference(const LayerNormArgs& a) {
  for (int64_t t = 0; t < a.T; t++) {
    const float* x = a.x + t * a.D;
    float* out = a.out + t * a.D;
    double mean = 0;
    for (int64_t i = 0; i < a.D; i++) mean += x[i];
    mean /= double(a.D);
    double var = 0;
    for (int64_t i = 0; i < a.D; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= double(a.D);
    const double scale = 1.0 / std::sqrt(var + double(a.eps));
    for (int64_t i = 0; i < a.D; i++) out[i] = float((x[i] - mean) * scale * a.w[i] + a.b[i]);
  }
}

namespace {
float sum16(const float* x, int64_t D) {
  float part[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= D; i += 16)
    for (int u = 0; u < 16; u++) part[u] += x[i + u];
  for (; i < D; i++) part[0] += x[i];
  float s = 0;
  for (int u = 0; u < 16; u++) s += part[u];
  return s;
}

void row_fast(float* out, const float* x, const float* w, const float* b, int64_t D, float eps) {
  const float mean = sum16(x, D) / float(D);
  float part[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= D; i += 16)
    for (int u = 0; u < 16; u++) {
      const float d = x[i + u] - mean;
      part[u] += d * d;
    }
  for (; i < D; i++) part[0] += (x[i] - mean) * (x[i] - mean);
  float ss = 0;
  for (int u = 0; u < 16; u++) ss += part[u];
  const float scale = float(1.0 / std::sqrt(double(ss) / double(D) + double(eps)));
  for (int64_t j = 0; j < D; j++) out[j] = (x[j] - mean) * scale * w[j] + b[j];
}
}  // namespace

void layer_norm_cpu(const LayerNormArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return layer_norm_reference(a);
  e.pool->run(a.T, [&](int64_t t, int) { row_fast(a.out + t * a.D, a.x + t * a.D, a.w, a.b, a.D, a.eps); }, a.T * a.D);
}

FUSELM_CPU_OP(layer_norm_op::def, [](const Step& s, const Exec& e) { layer_norm_cpu(layer_norm_op::args(s), e); });

}  // namespace fuselm
