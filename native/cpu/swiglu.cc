// swiglu: out = silu(gate) * up, elementwise over [T, D] f32; silu(x) = x / (1 + exp(-x)).
// The reference evaluates in double. The fast paths compute llama.cpp's bits (its CPU swiglu,
// so the 8-bit activations of the down projection round as its do): per row, 16 (AVX-512) or 8
// (AVX2) values at a time with the vectorized exp of vec_math.h (llama.cpp's) and a true
// division, the row's last D % 16 values with the C library's expf; for gate -> -inf,
// exp(-gate) = inf and silu = gate / inf = -0, for gate -> +inf, exp(-gate) = 0 and silu =
// gate, so large |gate| never makes a NaN. Rows split across threads.
#include <algorithm>
#include <cmath>

#include "ops/swiglu.h"
#include "cpu/vec_math.h"

namespace fuselm {

static void swiglu_reference(const SwigluArgs& a) {
  for (int64_t i = 0; i < a.T * a.D; i++) {
    const double g = a.gate[i];
    a.out[i] = float(g / (1.0 + std::exp(-g)) * double(a.up[i]));
  }
}

namespace {

using SpanFn = void (*)(float* out, const float* g, const float* u, int64_t n);

void span_portable(float* out, const float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

#if defined(__x86_64__)

FUSELM_AVX512 void span_avx512(float* out, const float* g, const float* u, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gv = _mm512_loadu_ps(g + i);
    const __m512 e = vec::exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(one, e)), _mm512_loadu_ps(u + i)));
  }
  span_portable(out + i, g + i, u + i, n - i);
}

// Eight values at a time, and the rest of each 16 too, so the row's tail is AVX-512's.
FUSELM_AVX2 void span_avx2(float* out, const float* g, const float* u, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 e = vec::exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
  }
  span_portable(out + i, g + i, u + i, n - i);
}

#endif  // __x86_64__

}  // namespace

void swiglu_cpu(const SwigluArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return swiglu_reference(a);
  SpanFn span = span_portable;
#if defined(__x86_64__)
  if (e.impl == Impl::kAvx512) span = span_avx512;
  else if (e.impl == Impl::kAvx2) span = span_avx2;
#endif
  e.pool->run(a.T, [&](int64_t t, int) { span(a.out + t * a.D, a.gate + t * a.D, a.up + t * a.D, a.D); }, a.T * a.D);
}

FUSELM_CPU_OP(swiglu_op::def, [](const Step& s, const Exec& e) { swiglu_cpu(swiglu_op::args(s), e); });

}  // namespace fuselm
