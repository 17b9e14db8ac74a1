// swiglu: out = silu(gate) * up, elementwise over [T, D] f32; silu(x) = x / (1 + exp(-x)).
// The reference evaluates in double. The fast path uses the vectorized exp of vec_math.h and a
// true division; for gate -> -inf, exp(-gate) = inf and silu = gate / inf = -0, for gate ->
// +inf, exp(-gate) = 0 and silu = gate, so large |gate| never makes a NaN. Elements split
// across threads in chunks (a decode row of a few thousand values stays on one thread).
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

constexpr int64_t kChunk = 16384;  // elements per task

using SpanFn = void (*)(float* out, const float* g, const float* u, int64_t n);

void span_portable(float* out, const float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

#if defined(__x86_64__)

FUSELM_AVX512 void span_avx512(float* out, const float* g, const float* u, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mk = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 gv = _mm512_maskz_loadu_ps(mk, g + i);
    const __m512 e = vec::exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
    const __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(out + i, mk, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(mk, u + i)));
  }
}

FUSELM_AVX2 void span_avx2(float* out, const float* g, const float* u, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 e = vec::exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
  }
  if (i < n) {
    const __m256i mk = vec::first_lanes256(int(n - i));
    const __m256 gv = _mm256_maskload_ps(g + i, mk);
    const __m256 e = vec::exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv));
    _mm256_maskstore_ps(out + i, mk, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_maskload_ps(u + i, mk)));
  }
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
  const int64_t n = a.T * a.D;
  e.pool->run((n + kChunk - 1) / kChunk, [&](int64_t task, int) {
    const int64_t i0 = task * kChunk;
    span(a.out + i0, a.gate + i0, a.up + i0, std::min(kChunk, n - i0));
  });
}

FUSELM_CPU_OP(swiglu_op::def, [](const Step& s, const Exec& e) { swiglu_cpu(swiglu_op::args(s), e); });

}  // namespace fuselm
