// IQ4_XS weights against Q8_K activations (see matmul_quant.h for the lane scheme).
//
// Per superblock of 256: 8 sub-blocks of 32, each a 6-bit scale sc (stored + 32) and 32
// nibbles through the non-linear grid kIq4nlValues (signed): x · w = dx * d * sum_j sc[j] (w_j · x_j).
// Lane l: s_l = sum_j sc[j] * (bytes 4l..4l+3 of w_j · x_j); acc_l += (dx d) s_l.
// AVX2: |w| (unsigned) times x with w's sign by maddubs (|pair| <= 127 * 127 * 2 fits int16),
// then madd by the sub-block's scale; AVX-512 VNNI: 64 values per maddubs, vpdpwssd.
#include <cmath>
#include <cstring>

#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {
namespace {

inline int scale_of(const BlockIQ4_XS& b, int j) {
  return (((b.scales_l[j / 2] >> (4 * (j % 2))) & 0x0f) | (((b.scales_h >> (2 * j)) & 3) << 4)) - 32;
}

void tile_ref(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  float acc[4][8] = {};
  for (int64_t i = 0; i < nb; i++) {
    const BlockIQ4_XS& b = reinterpret_cast<const BlockIQ4_XS*>(w)[i];
    int32_t q[kQK], sc[8];
    for (int j = 0; j < 8; j++) {
      sc[j] = scale_of(b, j);
      for (int e = 0; e < 16; e++) {
        q[32 * j + e] = kIq4nlValues[b.qs[16 * j + e] & 0x0f];
        q[32 * j + 16 + e] = kIq4nlValues[b.qs[16 * j + e] >> 4];
      }
    }
    const float d = f16_to_f32(b.d);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      const float dd = x.d * d;
      for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int j = 0; j < 8; j++) {
          int32_t p = 0;
          for (int e = 4 * l; e < 4 * l + 4; e++) p += q[32 * j + e] * int32_t(x.qs[32 * j + e]);
          s += sc[j] * p;
        }
        acc[t][l] = std::fma(dd, float(s), acc[t][l]);
      }
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = lanes_sum(acc[t]);
}

#if defined(__x86_64__)

// Sub-block j's 32 values as signed bytes, and its scale as int16 in every lane.
FUSELM_AVX2 FUSELM_INLINE void unpack(const BlockIQ4_XS& b, __m256i q[8], __m256i sc[8]) {
  const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (int j = 0; j < 8; j++) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + 16 * j));
    q[j] = _mm256_shuffle_epi8(grid, _mm256_and_si256(_mm256_setr_m128i(v, _mm_srli_epi16(v, 4)), m4));
    sc[j] = _mm256_set1_epi16(int16_t(scale_of(b, j)));
  }
}

template <int TT>
FUSELM_AVX2 void tile_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockIQ4_XS& b = reinterpret_cast<const BlockIQ4_XS*>(w)[i];
    __m256i q[8], sc[8], aq[8];
    unpack(b, q, sc);
    for (int j = 0; j < 8; j++) aq[j] = _mm256_sign_epi8(q[j], q[j]);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d));
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      __m256i s = _mm256_setzero_si256();
      for (int j = 0; j < 8; j++) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * j));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(aq[j], _mm256_sign_epi8(xv, q[j])), sc[j]));
      }
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_broadcast_ss(&x.d), d), _mm256_cvtepi32_ps(s), acc[t]);
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(acc[t]);
}

template <int TT>
FUSELM_AVX512VNNI void tile_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockIQ4_XS& b = reinterpret_cast<const BlockIQ4_XS*>(w)[i];
    __m256i q8[8], sc8[8];
    unpack(b, q8, sc8);
    __m512i q[4], aq[4], sc[4];
    for (int c = 0; c < 4; c++) {
      q[c] = _mm512_inserti64x4(_mm512_castsi256_si512(q8[2 * c]), q8[2 * c + 1], 1);
      aq[c] = _mm512_abs_epi8(q[c]);
      sc[c] = _mm512_inserti64x4(_mm512_castsi256_si512(sc8[2 * c]), sc8[2 * c + 1], 1);
    }
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d));
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      __m512i s = _mm512_setzero_si512();
      for (int c = 0; c < 4; c++) {
        // x with w's sign: negated where w < 0 (w = 0 contributes 0 through |w| either way)
        const __m512i xv = _mm512_loadu_si512(x.qs + 64 * c);
        const __m512i sx = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(q[c]), _mm512_setzero_si512(), xv);
        s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(aq[c], sx), sc[c]);
      }
      const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_broadcast_ss(&x.d), d), _mm256_cvtepi32_ps(s8), acc[t]);
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(acc[t]);
}

using TileFn = void (*)(const uint8_t*, const uint8_t*, size_t, int64_t, float*, int64_t);

template <bool Vnni>
void tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  static constexpr TileFn avx2[4] = {&tile_avx2<1>, &tile_avx2<2>, &tile_avx2<3>, &tile_avx2<4>};
  static constexpr TileFn vnni[4] = {&tile_vnni<1>, &tile_vnni<2>, &tile_vnni<3>, &tile_vnni<4>};
  (Vnni ? vnni : avx2)[TT - 1](w, xq, xs, K, y, ys);
}

#endif  // __x86_64__

}  // namespace

QuantKernel iq4_xs_kernel(Impl impl) {
#if defined(__x86_64__)
  if (impl == Impl::kAvx512 && cpu_features().avx512vnni) return {QAct::Q8_K, &tile_x86<true>};
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2) return {QAct::Q8_K, &tile_x86<false>};
#endif
  return {QAct::Q8_K, &tile_ref};
}

}  // namespace fuselm
