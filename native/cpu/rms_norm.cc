// rms_norm: out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w over [T, D] f32.
// Every level computes llama.cpp's arithmetic (its CPU rms_norm, then its mul by w), so that the
// 8-bit activations quantized from the output round as llama.cpp's do (one flipped rounding moves
// a small model's logits by ~1e-2; BENCHMARKS.md, perplexity): each square rounded to f32 and
// summed in double, mean = f32(sum / D), scale = 1.0f / sqrtf(mean + eps) in f32, out = (x * scale) * w.
// The reference sums in order; the fast paths sum in double lanes (a double sum's order changes
// the f32 mean only when it lands within ~1e-16 of a rounding boundary). Rows split across threads.
#include <cmath>

#include "ops/rms_norm.h"
#include "cpu/vec_math.h"

namespace fuselm {

static float rms_scale(double sum_sq, int64_t D, float eps) {
  const float mean = float(sum_sq / double(D));
  return 1.0f / std::sqrt(mean + eps);
}

static void rms_norm_row(float* out, const float* x, const float* w, int64_t D, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < D; i++) ss += double(x[i] * x[i]);
  const float scale = rms_scale(ss, D, eps);
  for (int64_t i = 0; i < D; i++) out[i] = x[i] * scale * w[i];
}

static void rms_norm_reference(const RmsNormArgs& a) {
  for (int64_t t = 0; t < a.T; t++) rms_norm_row(a.out + t * a.D, a.x + t * a.D, a.w, a.D, a.eps);
}

namespace {

using RowFn = void (*)(float* out, const float* x, const float* w, int64_t D, float eps);

void row_portable(float* out, const float* x, const float* w, int64_t D, float eps) {
  double part[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= D; i += 8)
    for (int u = 0; u < 8; u++) part[u] += double(x[i + u] * x[i + u]);
  for (; i < D; i++) part[0] += double(x[i] * x[i]);
  double ss = 0;
  for (int u = 0; u < 8; u++) ss += part[u];
  const float scale = rms_scale(ss, D, eps);
  for (int64_t j = 0; j < D; j++) out[j] = x[j] * scale * w[j];
}

#if defined(__x86_64__)

FUSELM_AVX512 void row_avx512(float* out, const float* x, const float* w, int64_t D, float eps) {
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  for (int64_t i = 0; i < D; i += 16) {
    const __mmask16 mk = D - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (D - i)) - 1);
    const __m512 a = _mm512_maskz_loadu_ps(mk, x + i);
    const __m512 sq = _mm512_mul_ps(a, a);  // rounded to f32 first, as llama.cpp's
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sq), 1))));
  }
  const __m512 sc = _mm512_set1_ps(rms_scale(_mm512_reduce_add_pd(_mm512_add_pd(s0, s1)), D, eps));
  for (int64_t i = 0; i < D; i += 16) {
    const __mmask16 mk = D - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (D - i)) - 1);
    const __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), sc), _mm512_maskz_loadu_ps(mk, w + i));
    _mm512_mask_storeu_ps(out + i, mk, y);
  }
}

FUSELM_AVX2 void row_avx2(float* out, const float* x, const float* w, int64_t D, float eps) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  int64_t i = 0;
  for (; i + 8 <= D; i += 8) {
    const __m256 a = _mm256_loadu_ps(x + i);
    const __m256 sq = _mm256_mul_ps(a, a);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
  double ss = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
  for (; i < D; i++) ss += double(x[i] * x[i]);
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
