// Shared SIMD helpers for the CPU kernels: target attributes, a vectorized exp and
// horizontal reductions. The project compiles for baseline x86-64; each helper carries its own
// target attribute and is inlined into kernels with the same (or a wider) target.
//
// exp: the single-precision exp llama.cpp's CPU backend vectorizes (its ggml_v_expf for AVX-512,
// the algorithm of Arm's optimized-routines expf), so silu and softmax inputs round as llama.cpp's:
// n = round(x log2 e) by adding and subtracting 1.5 * 2^23, b = x - n ln2 in two fnmadds (ln2
// split hi/lo), e^b by a degree-5 polynomial evaluated as two fma pairs in b and b^2, then
// scaled by 2^n (vscalef: one rounding, IEEE underflow); |n| > 192 gives inf (n > 0) or 0.
// Measured through silu(g) = g / (1 + e^-g) on a dense grid over [-80, 80]
// (test/ops/swiglu.test.ts) within 1e-6 relative of float64. NaN stays NaN.
// The AVX2 version computes the same operations, 2^n applied as two in-range factors (one
// rounding at the end, as vscalef), so both levels give the same bits.
#pragma once

#if defined(__x86_64__)
#include "cpu/x86.h"

namespace fuselm {
namespace vec {

// the shift that rounds to an integer, log2 e, ln 2 in two parts, the polynomial's coefficients
constexpr float kShift = 0x1.8p23f, kLog2e = 0x1.715476p+0f, kLn2Hi = 0x1.62e4p-1f, kLn2Lo = 0x1.7f7d1cp-20f;
constexpr float kC4 = 0x1.0e4020p-7f, kC3 = 0x1.573e2ep-5f, kC2 = 0x1.555e66p-3f, kC1 = 0x1.fffdb6p-2f, kC0 = 0x1.ffffecp-1f;

// ---- AVX-512 ----

FUSELM_AVX512 static inline __m512 exp512(__m512 x) {
  const __m512 shift = _mm512_set1_ps(kShift);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(kLog2e), shift), shift);
  const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x));
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 hi = _mm512_fmadd_ps(_mm512_set1_ps(kC4), b, _mm512_set1_ps(kC3));
  const __m512 mid = _mm512_fmadd_ps(_mm512_set1_ps(kC2), b, _mm512_set1_ps(kC1));
  const __m512 lo = _mm512_fmadd_ps(_mm512_set1_ps(kC0), b, _mm512_set1_ps(1.0f));
  const __m512 res = _mm512_scalef_ps(_mm512_fmadd_ps(_mm512_fmadd_ps(hi, u, mid), u, lo), n);
  const __mmask16 far = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
  if (!far) return res;
  const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ), _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
  return _mm512_mask_blend_ps(far, res, alt);
}

FUSELM_AVX512 static inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }
FUSELM_AVX512 static inline float hmax512(__m512 v) { return _mm512_reduce_max_ps(v); }

// Sixteen vectors in, one out: lane j holds the sum of the lanes of a[j]. About two shuffles
// and one add per input, much cheaper than sixteen separate horizontal sums.
FUSELM_AVX512 static inline __m512 transpose_sum16(const __m512* a) {
  __m512 b[8], c[4];
  for (int k = 0; k < 8; k++)  // per 128-bit lane: [x0+x2, y0+y2, x1+x3, y1+y3]
    b[k] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * k], a[2 * k + 1]), _mm512_unpackhi_ps(a[2 * k], a[2 * k + 1]));
  for (int k = 0; k < 4; k++) {  // per 128-bit lane L: the lane-L partial sums of a[4k .. 4k+3]
    __m512d x = _mm512_castps_pd(b[2 * k]), y = _mm512_castps_pd(b[2 * k + 1]);
    c[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  __m512 d0 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xDD));
  __m512 d1 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], 0x88), _mm512_shuffle_f32x4(c[2], c[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(d0, d1, 0x88), _mm512_shuffle_f32x4(d0, d1, 0xDD));
}

// ---- AVX2 ----

FUSELM_AVX2 static inline __m256 pow2i256(__m256i k) {  // 2^k for k in [-126, 127]
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

FUSELM_AVX2 static inline __m256 exp256(__m256 x) {
  const __m256 shift = _mm256_set1_ps(kShift);
  const __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(kLog2e), shift), shift);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 hi = _mm256_fmadd_ps(_mm256_set1_ps(kC4), b, _mm256_set1_ps(kC3));
  const __m256 mid = _mm256_fmadd_ps(_mm256_set1_ps(kC2), b, _mm256_set1_ps(kC1));
  const __m256 lo = _mm256_fmadd_ps(_mm256_set1_ps(kC0), b, _mm256_set1_ps(1.0f));
  const __m256 j = _mm256_fmadd_ps(_mm256_fmadd_ps(hi, u, mid), u, lo);
  // |n| <= 192 here: 2^n as two factors of at most 2^96 each, one rounding at the end
  const __m256 nc = _mm256_min_ps(_mm256_max_ps(n, _mm256_set1_ps(-192)), _mm256_set1_ps(192));
  const __m256i ni = _mm256_cvtps_epi32(nc);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256 res = _mm256_mul_ps(_mm256_mul_ps(j, pow2i256(n1)), pow2i256(_mm256_sub_epi32(ni, n1)));
  const __m256 far = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n), _mm256_set1_ps(192), _CMP_GT_OQ);
  const __m256 alt = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_GT_OQ), _mm256_set1_ps(INFINITY));
  return _mm256_blendv_ps(res, alt, far);
}

FUSELM_AVX2 static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

FUSELM_AVX2 static inline float hmax256(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Eight vectors in, one out: lane j holds the sum of the lanes of a[j].
FUSELM_AVX2 static inline __m256 transpose_sum8(const __m256* a) {
  __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));  // [a..d low half | a..d high half]
  __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Lane mask for _mm256_maskload_ps / _mm256_maskstore_ps: the first n (0..8) lanes on.
FUSELM_AVX2 static inline __m256i first_lanes256(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

}  // namespace vec
}  // namespace fuselm

#endif  // __x86_64__
