// softcap: out = cap * tanh(x / cap) elementwise (Gemma-2's final logit soft-capping). The
// reference evaluates tanh in double. The fast path evaluates in float over chunks split across
// threads: tanh(u) = sign(u) (1 - t) / (1 + t), t = exp(-2|u|) (one vector exp; saturates to
// +-1, never NaN, for large |u|), and below |u| = 0.3, where 1 - t would cancel, the odd Taylor
// series u - u^3/3 + 2u^5/15 - 17u^7/315 + 62u^9/2835 (truncation < 2e-8 there): max relative
// error about 2e-7 in both ranges, so out is within a few ulp of cap * tanh.
#include <algorithm>
#include <cmath>

#include "ops/softcap.h"
#include "cpu/vec_math.h"

namespace fuselm {

static void softcap_reference(const SoftcapArgs& a) {
  for (int64_t i = 0; i < a.T * a.D; i++) a.out[i] = float(double(a.cap) * std::tanh(double(a.x[i]) / a.cap));
}

namespace {
constexpr int64_t kChunk = 16384;  // elements per task
constexpr float kSeries = 0.3f;    // below: the Taylor series
constexpr float kT3 = -1.0f / 3, kT5 = 2.0f / 15, kT7 = -17.0f / 315, kT9 = 62.0f / 2835;

using SpanFn = void (*)(float* out, const float* x, int64_t n, float cap);

float tanh_scalar(float u) {
  const float a = std::fabs(u);
  if (a < kSeries) {
    const float u2 = u * u;
    return u + u * u2 * (kT3 + u2 * (kT5 + u2 * (kT7 + u2 * kT9)));
  }
  const float t = std::exp(-2.0f * a);
  return std::copysign((1.0f - t) / (1.0f + t), u);
}

void softcap_portable(float* out, const float* x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; i++) out[i] = cap * tanh_scalar(x[i] * inv);
}

#if defined(__x86_64__)

FUSELM_AVX512 void softcap_avx512(float* out, const float* x, int64_t n, float cap) {
  const __m512 one = _mm512_set1_ps(1.0f), m2 = _mm512_set1_ps(-2.0f), sign = _mm512_set1_ps(-0.0f);
  const __m512 vcap = _mm512_set1_ps(cap), inv = _mm512_set1_ps(1.0f / cap), lim = _mm512_set1_ps(kSeries);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mk = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 u = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), inv);
    const __m512 a = _mm512_andnot_ps(sign, u);
    const __m512 t = vec::exp512(_mm512_mul_ps(m2, a));
    const __m512 big = _mm512_or_ps(_mm512_div_ps(_mm512_sub_ps(one, t), _mm512_add_ps(one, t)), _mm512_and_ps(sign, u));
    const __m512 u2 = _mm512_mul_ps(u, u);
    __m512 p = _mm512_fmadd_ps(u2, _mm512_set1_ps(kT9), _mm512_set1_ps(kT7));
    p = _mm512_fmadd_ps(u2, p, _mm512_set1_ps(kT5));
    p = _mm512_fmadd_ps(u2, p, _mm512_set1_ps(kT3));
    const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(u, u2), p, u);
    const __m512 th = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, lim, _CMP_LT_OQ), big, small);
    _mm512_mask_storeu_ps(out + i, mk, _mm512_mul_ps(vcap, th));
  }
}

FUSELM_AVX2 void softcap_avx2(float* out, const float* x, int64_t n, float cap) {
  const __m256 one = _mm256_set1_ps(1.0f), m2 = _mm256_set1_ps(-2.0f), sign = _mm256_set1_ps(-0.0f);
  const __m256 vcap = _mm256_set1_ps(cap), inv = _mm256_set1_ps(1.0f / cap), lim = _mm256_set1_ps(kSeries);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 u = _mm256_mul_ps(_mm256_loadu_ps(x + i), inv);
    const __m256 a = _mm256_andnot_ps(sign, u);
    const __m256 t = vec::exp256(_mm256_mul_ps(m2, a));
    const __m256 big = _mm256_or_ps(_mm256_div_ps(_mm256_sub_ps(one, t), _mm256_add_ps(one, t)), _mm256_and_ps(sign, u));
    const __m256 u2 = _mm256_mul_ps(u, u);
    __m256 p = _mm256_fmadd_ps(u2, _mm256_set1_ps(kT9), _mm256_set1_ps(kT7));
    p = _mm256_fmadd_ps(u2, p, _mm256_set1_ps(kT5));
    p = _mm256_fmadd_ps(u2, p, _mm256_set1_ps(kT3));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(u, u2), p, u);
    const __m256 th = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, lim, _CMP_LT_OQ));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(vcap, th));
  }
  softcap_portable(out + i, x + i, n - i, cap);
}

#endif  // __x86_64__

}  // namespace

void softcap_cpu(const SoftcapArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return softcap_reference(a);
  SpanFn span = softcap_portable;
#if defined(__x86_64__)
  if (e.impl == Impl::kAvx512) span = softcap_avx512;
  else if (e.impl == Impl::kAvx2) span = softcap_avx2;
#endif
  const int64_t n = a.T * a.D, tasks = (n + kChunk - 1) / kChunk;
  e.pool->run(tasks, [&](int64_t c, int) {
    const int64_t i0 = c * kChunk;
    span(a.out + i0, a.x + i0, std::min(kChunk, n - i0), a.cap);
  }, n * 8);
}

FUSELM_CPU_OP(softcap_op::def, [](const Step& s, const Exec& e) { softcap_cpu(softcap_op::args(s), e); });

}  // namespace fuselm
