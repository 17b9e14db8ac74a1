// rms_norm: out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w over [T, D] f32.
// The reference sums the squares in double. The fast path sums them in float with several
// SIMD accumulators (64 partial sums with AVX-512, so each partial sum holds D/64 terms and
// the rounding error stays ~1e-7 relative), then writes (x * scale) * w in the reference's
// order, so out differs from the reference only through the scale. Rows split across threads.
#include <cmath>

#include "ops/rms_norm.h"
#include "cpu/vec_math.h"

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

namespace {

float rms_scale(float ss, int64_t D, float eps) { return float(1.0 / std::sqrt(double(ss) / double(D) + double(eps))); }

using RowFn = void (*)(float* out, const float* x, const float* w, int64_t D, float eps);

void row_portable(float* out, const float* x, const float* w, int64_t D, float eps) {
  float part[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= D; i += 16)
    for (int u = 0; u < 16; u++) part[u] += x[i + u] * x[i + u];
  for (; i < D; i++) part[0] += x[i] * x[i];
  float ss = 0;
  for (int u = 0; u < 16; u++) ss += part[u];
  const float scale = rms_scale(ss, D, eps);
  for (int64_t j = 0; j < D; j++) out[j] = x[j] * scale * w[j];
}

#if defined(__x86_64__)

FUSELM_AVX512 void row_avx512(float* out, const float* x, const float* w, int64_t D, float eps) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 64 <= D; i += 64) {
    const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
    const __m512 c = _mm512_loadu_ps(x + i + 32), d = _mm512_loadu_ps(x + i + 48);
    s0 = _mm512_fmadd_ps(a, a, s0);
    s1 = _mm512_fmadd_ps(b, b, s1);
    s2 = _mm512_fmadd_ps(c, c, s2);
    s3 = _mm512_fmadd_ps(d, d, s3);
  }
  for (; i < D; i += 16) {
    const __mmask16 mk = D - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (D - i)) - 1);
    const __m512 a = _mm512_maskz_loadu_ps(mk, x + i);
    s0 = _mm512_fmadd_ps(a, a, s0);
  }
  const float ss = vec::hsum512(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  const __m512 sc = _mm512_set1_ps(rms_scale(ss, D, eps));
  for (i = 0; i < D; i += 16) {
    const __mmask16 mk = D - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (D - i)) - 1);
    const __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), sc), _mm512_maskz_loadu_ps(mk, w + i));
    _mm512_mask_storeu_ps(out + i, mk, y);
  }
}

FUSELM_AVX2 void row_avx2(float* out, const float* x, const float* w, int64_t D, float eps) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= D; i += 32) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    const __m256 c = _mm256_loadu_ps(x + i + 16), d = _mm256_loadu_ps(x + i + 24);
    s0 = _mm256_fmadd_ps(a, a, s0);
    s1 = _mm256_fmadd_ps(b, b, s1);
    s2 = _mm256_fmadd_ps(c, c, s2);
    s3 = _mm256_fmadd_ps(d, d, s3);
  }
  for (; i + 8 <= D; i += 8) {
    const __m256 a = _mm256_loadu_ps(x + i);
    s0 = _mm256_fmadd_ps(a, a, s0);
  }
  float ss = vec::hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < D; i++) ss += x[i] * x[i];
  const float scale = rms_scale(ss, D, eps);
  const __m256 sc = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= D; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sc), _mm256_loadu_ps(w + i)));
  for (; i < D; i++) out[i] = x[i] * scale * w[i];
}

#endif  // __x86_64__

}  // namespace

void rms_norm_cpu(const RmsNormArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return rms_norm_reference(a);
  RowFn row = row_portable;
#if defined(__x86_64__)
  if (e.impl == Impl::kAvx512) row = row_avx512;
  else if (e.impl == Impl::kAvx2) row = row_avx2;
#endif
  e.pool->run(a.T, [&](int64_t t, int) { row(a.out + t * a.D, a.x + t * a.D, a.w, a.D, a.eps); }, a.T * a.D);
}

FUSELM_CPU_OP(rms_norm_op::def, [](const Step& s, const Exec& e) { rms_norm_cpu(rms_norm_op::args(s), e); });

}  // namespace fuselm
