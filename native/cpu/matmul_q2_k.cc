// Q2_K and Q3_K weights against Q8_K activations (see matmul_quant.h for the lane scheme).
//
// Both hold 16 sub-blocks of 16 values, 2 bits each in qs (value 128n + 32c + l: bits 2c of
// qs[32n + l]), sub-block j = value / 16.
//   Q2_K: q unsigned 0..3, a 4-bit scale and min per sub-block (scales[j]: low nibble scale, high
//         nibble min): x · w = dx * (d * sum_j sc[j] (q_j · x_j) - dmin * sum_j mn[j] bsums[j]).
//   Q3_K: q = the 2 bits - 4 unless bit 4n + c of hmask[l] is set (-4..3), 6-bit signed scales:
//         x · w = dx * d * sum_j sc[j] (q_j · x_j).
// Lane l: s_l = sum over the 8 vectors v of 32 values of sc[2v + l / 4] * (bytes 4l..4l+3 of
// q_v · x_v); for Q2_K m_l = mn[2l] bsums[2l] + mn[2l+1] bsums[2l+1]. acc_l += (dx d) s_l
// (+ (dx (-dmin)) m_l). AVX2: maddubs (Q3_K: |q| times x with q's sign) then madd by a vector
// holding two sub-blocks' scales; AVX-512 VNNI: 64 values per step, vpdpwssd.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {
namespace {

template <bool Three>
using BlockOf = std::conditional_t<Three, BlockQ3_K, BlockQ2_K>;

// The 16 scales (and Q2_K's mins) of a superblock.
template <bool Three>
inline void scales_of(const BlockOf<Three>& b, int8_t sc[16], int8_t mn[16]) {
  if constexpr (Three) {
    q3k_scales(b.scales, sc);
  } else {
    for (int j = 0; j < 16; j++) {
      sc[j] = int8_t(b.scales[j] & 0x0f);
      mn[j] = int8_t(b.scales[j] >> 4);
    }
  }
}

template <bool Three>
void tile_ref(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  float acc[4][8] = {};
  for (int64_t i = 0; i < nb; i++) {
    const BlockOf<Three>& b = reinterpret_cast<const BlockOf<Three>*>(w)[i];
    int8_t sc[16], mn[16] = {};
    scales_of<Three>(b, sc, mn);
    int32_t q[kQK];
    for (int n = 0; n < 2; n++)
      for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
          int v = (b.qs[32 * n + l] >> (2 * c)) & 3;
          if constexpr (Three) v -= (b.hmask[l] >> (4 * n + c)) & 1 ? 0 : 4;
          q[128 * n + 32 * c + l] = v;
        }
    const float d = f16_to_f32(b.d);
    float dmin = 0;
    if constexpr (!Three) dmin = f16_to_f32(b.dmin);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      const float dd = x.d * d, dm = -(x.d * dmin);
      for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int v = 0; v < 8; v++) {
          int32_t p = 0;
          for (int e = 32 * v + 4 * l; e < 32 * v + 4 * l + 4; e++) p += q[e] * int32_t(x.qs[e]);
          s += int32_t(sc[2 * v + l / 4]) * p;
        }
        acc[t][l] = std::fma(dd, float(s), acc[t][l]);
        if constexpr (!Three) {
          const int32_t m = int32_t(mn[2 * l]) * x.bsums[2 * l] + int32_t(mn[2 * l + 1]) * x.bsums[2 * l + 1];
          acc[t][l] = std::fma(dm, float(m), acc[t][l]);
        }
      }
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = lanes_sum(acc[t]);
}

#if defined(__x86_64__)

// The 8 vectors of 32 values (Q2_K unsigned 0..3, Q3_K signed -4..3).
template <bool Three>
FUSELM_AVX2 FUSELM_INLINE void unpack(const BlockOf<Three>& b, __m256i q[8]) {
  const __m256i m3 = _mm256_set1_epi8(3);
  [[maybe_unused]] __m256i hm, one, four;
  if constexpr (Three) {
    hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.hmask));
    one = _mm256_set1_epi8(1);
    four = _mm256_set1_epi8(4);
  }
  for (int n = 0; n < 2; n++) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * n));
    for (int c = 0; c < 4; c++) {
      // 16-bit shifts bring the neighbour byte's bits into the top, the masks keep each byte's own
      __m256i u = _mm256_and_si256(_mm256_srli_epi16(v, 2 * c), m3);
      if constexpr (Three) {
        const __m256i h = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * n + c), one);  // 1: no offset
        u = _mm256_sub_epi8(u, _mm256_andnot_si256(_mm256_cmpeq_epi8(h, one), four));
      }
      q[4 * n + c] = u;
    }
  }
}

// Vector v's two scales (sub-blocks 2v, 2v + 1), one per 128-bit half, as int16.
FUSELM_AVX2 FUSELM_INLINE __m256i pair_scales(const int8_t* sc, int v) {
  return _mm256_setr_m128i(_mm_set1_epi16(sc[2 * v]), _mm_set1_epi16(sc[2 * v + 1]));
}

template <bool Three, int TT>
FUSELM_AVX2 void tile_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockOf<Three>& b = reinterpret_cast<const BlockOf<Three>*>(w)[i];
    alignas(16) int8_t sc[16], mn[16] = {};
    scales_of<Three>(b, sc, mn);
    __m256i q[8], aq[8], scv[8];
    unpack<Three>(b, q);
    for (int v = 0; v < 8; v++) {
      aq[v] = Three ? _mm256_sign_epi8(q[v], q[v]) : q[v];
      scv[v] = pair_scales(sc, v);
    }
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d));
    [[maybe_unused]] __m256 ndmin;
    [[maybe_unused]] __m256i mn16;
    if constexpr (!Three) {
      ndmin = _mm256_set1_ps(-_cvtsh_ss(b.dmin));
      mn16 = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(mn)));
    }
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      __m256i s = _mm256_setzero_si256();
      for (int v = 0; v < 8; v++) {
        __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * v));
        if constexpr (Three) xv = _mm256_sign_epi8(xv, q[v]);
        s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(aq[v], xv), scv[v]));
      }
      const __m256 dx = _mm256_broadcast_ss(&x.d);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, d), _mm256_cvtepi32_ps(s), acc[t]);
      if constexpr (!Three) {
        const __m256i m = _mm256_madd_epi16(mn16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)));
        acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, ndmin), _mm256_cvtepi32_ps(m), acc[t]);
      }
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(acc[t]);
}

template <bool Three, int TT>
FUSELM_AVX512VNNI void tile_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockOf<Three>& b = reinterpret_cast<const BlockOf<Three>*>(w)[i];
    alignas(16) int8_t sc[16], mn[16] = {};
    scales_of<Three>(b, sc, mn);
    __m256i q8[8];
    unpack<Three>(b, q8);
    __m512i q[4], aq[4], scv[4];
    for (int c = 0; c < 4; c++) {  // 64 values: sub-blocks 4c .. 4c + 3, one scale per 128 bits
      q[c] = _mm512_inserti64x4(_mm512_castsi256_si512(q8[2 * c]), q8[2 * c + 1], 1);
      aq[c] = Three ? _mm512_abs_epi8(q[c]) : q[c];
      scv[c] = _mm512_inserti64x4(_mm512_castsi256_si512(pair_scales(sc, 2 * c)), pair_scales(sc, 2 * c + 1), 1);
    }
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d));
    [[maybe_unused]] __m256 ndmin;
    [[maybe_unused]] __m256i mn16;
    if constexpr (!Three) {
      ndmin = _mm256_set1_ps(-_cvtsh_ss(b.dmin));
      mn16 = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(mn)));
    }
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      __m512i s = _mm512_setzero_si512();
      for (int c = 0; c < 4; c++) {
        __m512i xv = _mm512_loadu_si512(x.qs + 64 * c);
        if constexpr (Three) xv = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(q[c]), _mm512_setzero_si512(), xv);
        s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(aq[c], xv), scv[c]);
      }
      const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
      const __m256 dx = _mm256_broadcast_ss(&x.d);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, d), _mm256_cvtepi32_ps(s8), acc[t]);
      if constexpr (!Three) {
        const __m256i m = _mm256_madd_epi16(mn16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)));
        acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, ndmin), _mm256_cvtepi32_ps(m), acc[t]);
      }
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(acc[t]);
}

using TileFn = void (*)(const uint8_t*, const uint8_t*, size_t, int64_t, float*, int64_t);

template <bool Three, bool Vnni>
void tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  static constexpr TileFn avx2[4] = {&tile_avx2<Three, 1>, &tile_avx2<Three, 2>, &tile_avx2<Three, 3>, &tile_avx2<Three, 4>};
  static constexpr TileFn vnni[4] = {&tile_vnni<Three, 1>, &tile_vnni<Three, 2>, &tile_vnni<Three, 3>, &tile_vnni<Three, 4>};
  (Vnni ? vnni : avx2)[TT - 1](w, xq, xs, K, y, ys);
}

#endif  // __x86_64__

}  // namespace

QuantKernel q2_k_kernel(DType dt, Impl impl) {
  const bool three = dt == DType::Q3_K;
#if defined(__x86_64__)
  if (impl == Impl::kAvx512 && cpu_features().avx512vnni)
    return {QAct::Q8_K, three ? &tile_x86<true, true> : &tile_x86<false, true>};
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2)
    return {QAct::Q8_K, three ? &tile_x86<true, false> : &tile_x86<false, false>};
#endif
  return {QAct::Q8_K, three ? &tile_ref<true> : &tile_ref<false>};
}

}  // namespace fuselm
