// Q4_K and Q5_K weights against Q8_K activations (see matmul_quant.h for the lane scheme).
//
// Per superblock of 256: the 8 sub-blocks of 32 hold unsigned 4- or 5-bit q with a 6-bit scale
// sc[j] and min mn[j]: x · w = dx * (d * sum_j sc[j] (q_j · x_j) - dmin * sum_j mn[j] * xsum_j),
// where xsum_j = bsums[2j] + bsums[2j + 1] comes with the Q8_K block: the mins never touch the
// 256 products, as in llama.cpp. Lane l: s_l = sum_j sc[j] * (bytes 4l..4l+3 of q_j · x_j) and
// m_l = mn[l] * xsum_l, accumulated as acc_l += (dx d) s_l - (dx dmin) m_l.
// AVX2: maddubs (unsigned q times signed x, pairs to int16: |pair| <= 31 * 127 * 2 fits) then
// madd by the sub-block's scale into int32 lanes; AVX-512 VNNI: 64 values per maddubs and
// vpdpwssd for the scale step.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {
namespace {

template <bool Five>
using BlockOf = std::conditional_t<Five, BlockQ5_K, BlockQ4_K>;

// ---- integer reference (also the portable level) ----

template <bool Five>
void tile_ref(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  float acc[4][8] = {};
  for (int64_t i = 0; i < nb; i++) {
    const BlockOf<Five>& b = reinterpret_cast<const BlockOf<Five>*>(w)[i];
    uint8_t sc[8], mn[8], q[kQK];
    for (int j = 0; j < 8; j++) k4_scale_min(b.scales, j, &sc[j], &mn[j]);
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++) {
        q[64 * c + l] = b.qs[32 * c + l] & 0x0f;
        q[64 * c + 32 + l] = b.qs[32 * c + l] >> 4;
        if constexpr (Five) {
          q[64 * c + l] |= ((b.qh[l] >> (2 * c)) & 1) << 4;
          q[64 * c + 32 + l] |= ((b.qh[l] >> (2 * c + 1)) & 1) << 4;
        }
      }
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      const float dd = x.d * d, dm = -(x.d * dmin);
      for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int j = 0; j < 8; j++) {
          int32_t p = 0;
          for (int e = 4 * l; e < 4 * l + 4; e++) p += int32_t(q[32 * j + e]) * int32_t(x.qs[32 * j + e]);
          s += int32_t(sc[j]) * p;
        }
        const int32_t m = int32_t(mn[l]) * (int32_t(x.bsums[2 * l]) + int32_t(x.bsums[2 * l + 1]));
        acc[t][l] = std::fma(dd, float(s), acc[t][l]);
        acc[t][l] = std::fma(dm, float(m), acc[t][l]);
      }
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = lanes_sum(acc[t]);
}

#if defined(__x86_64__)

// The 8 scales (bytes 0-7) and 8 mins (bytes 8-15) of a superblock by 32-bit word operations on
// the 12 packed bytes: the same fields k4_scale_min reads one at a time (the reference's way).
inline void k4_scales_mins(const uint8_t* s, uint8_t out[16]) {
  uint32_t w[3];
  std::memcpy(w, s, 12);
  constexpr uint32_t lo6 = 0x3f3f3f3f, lo4 = 0x0f0f0f0f, lo2 = 0x03030303;
  const uint32_t o[4] = {w[0] & lo6, (w[2] & lo4) | (((w[0] >> 6) & lo2) << 4), w[1] & lo6,
                         ((w[2] >> 4) & lo4) | (((w[1] >> 6) & lo2) << 4)};
  std::memcpy(out, o, 16);
}

// The 8 sub-blocks of a superblock as 32 unsigned bytes each.
template <bool Five>
FUSELM_AVX2 FUSELM_INLINE void unpack_q(const BlockOf<Five>& b, __m256i q[8]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  [[maybe_unused]] __m256i hb, one;
  if constexpr (Five) {
    hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    one = _mm256_set1_epi8(1);
  }
  for (int c = 0; c < 4; c++) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * c));
    q[2 * c] = _mm256_and_si256(v, m4);
    q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if constexpr (Five) {
      // 16-bit shifts pull the neighbour byte's bits into the top, but only bit 0 is kept
      q[2 * c] = _mm256_or_si256(q[2 * c], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), one), 4));
      q[2 * c + 1] = _mm256_or_si256(q[2 * c + 1], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), one), 4));
    }
  }
}

// A superblock's scales as int16 in both 128-bit halves, and its mins once per bsum (m0, m0, m1, m1, ...).
struct ScalesK4 {
  __m256i sc, mins2;
};
FUSELM_AVX2 FUSELM_INLINE ScalesK4 scales_k4(const uint8_t* packed) {
  alignas(16) uint8_t sm[16];
  k4_scales_mins(packed, sm);
  const __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(sm));
  const __m128i dup = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  return {_mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(v)), _mm256_cvtepu8_epi16(_mm_shuffle_epi8(v, dup))};
}
// Scale j (of 8, as int16 in both halves of sc) in every int16 lane.
FUSELM_AVX2 FUSELM_INLINE __m256i scale_at(__m256i sc, int j) { return _mm256_shuffle_epi8(sc, _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * j))); }

// acc += (dx d) s + (dx (-dmin)) m, lane by lane: the reference's two fmas, with the same f32
// products (dx times the row's d and -dmin, taken in vectors: x.d broadcast from memory).
FUSELM_AVX2 FUSELM_INLINE __m256 lanes_acc(__m256 acc, const float* dx, __m256 d, __m256 ndmin, __m256i s, __m256i m) {
  const __m256 x = _mm256_broadcast_ss(dx);
  acc = _mm256_fmadd_ps(_mm256_mul_ps(x, d), _mm256_cvtepi32_ps(s), acc);
  return _mm256_fmadd_ps(_mm256_mul_ps(x, ndmin), _mm256_cvtepi32_ps(m), acc);
}

template <bool Five, int TT>
FUSELM_AVX2 void tile_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockOf<Five>& b = reinterpret_cast<const BlockOf<Five>*>(w)[i];
    __m256i q[8];
    unpack_q<Five>(b, q);
    const ScalesK4 sm = scales_k4(b.scales);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d)), ndmin = _mm256_set1_ps(-_cvtsh_ss(b.dmin));
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      __m256i s = _mm256_setzero_si256();
      for (int j = 0; j < 8; j++) {
        const __m256i p = _mm256_maddubs_epi16(q[j], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * j)));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, scale_at(sm.sc, j)));
      }
      const __m256i m = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)), sm.mins2);
      acc[t] = lanes_acc(acc[t], &x.d, d, ndmin, s, m);
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(acc[t]);
}

// AVX-512 VNNI: two sub-blocks (64 values) per vector, their scales in the two 256-bit halves;
// the halves are added (lane l + lane l + 8) into the 8 lanes of the scheme.
template <bool Five, int TT>
FUSELM_AVX512VNNI void tile_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockOf<Five>& b = reinterpret_cast<const BlockOf<Five>*>(w)[i];
    __m256i q8[8];
    unpack_q<Five>(b, q8);
    const ScalesK4 sm = scales_k4(b.scales);
    __m512i q[4], scv[4];
    for (int c = 0; c < 4; c++) {
      q[c] = _mm512_inserti64x4(_mm512_castsi256_si512(q8[2 * c]), q8[2 * c + 1], 1);
      scv[c] = _mm512_inserti64x4(_mm512_castsi256_si512(scale_at(sm.sc, 2 * c)), scale_at(sm.sc, 2 * c + 1), 1);
    }
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d)), ndmin = _mm256_set1_ps(-_cvtsh_ss(b.dmin));
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      __m512i s = _mm512_setzero_si512();
      for (int c = 0; c < 4; c++)
        s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(q[c], _mm512_loadu_si512(x.qs + 64 * c)), scv[c]);
      const __m256i m = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)), sm.mins2);
      const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
      acc[t] = lanes_acc(acc[t], &x.d, d, ndmin, s8, m);
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(acc[t]);
}

using TileFn = void (*)(const uint8_t*, const uint8_t*, size_t, int64_t, float*, int64_t);

// VNNI tiles take up to 8 tokens (32 zmm registers hold a superblock's 8 vectors of weights and
// scales beside 8 accumulators), AVX2 up to 4.
template <bool Five, bool Vnni>
void tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  static constexpr TileFn avx2[4] = {&tile_avx2<Five, 1>, &tile_avx2<Five, 2>, &tile_avx2<Five, 3>, &tile_avx2<Five, 4>};
  static constexpr TileFn vnni[8] = {&tile_vnni<Five, 1>, &tile_vnni<Five, 2>, &tile_vnni<Five, 3>, &tile_vnni<Five, 4>,
                                     &tile_vnni<Five, 5>, &tile_vnni<Five, 6>, &tile_vnni<Five, 7>, &tile_vnni<Five, 8>};
  (Vnni ? vnni : avx2)[TT - 1](w, xq, xs, K, y, ys);
}

#endif  // __x86_64__

}  // namespace

QuantKernel q4_k_kernel(DType dt, Impl impl) {
  const bool five = dt == DType::Q5_K;
#if defined(__x86_64__)
  if (impl == Impl::kAvx512 && cpu_features().avx512vnni)
    return {QAct::Q8_K, five ? &tile_x86<true, true> : &tile_x86<false, true>, 8};
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2)
    return {QAct::Q8_K, five ? &tile_x86<true, false> : &tile_x86<false, false>};
#endif
  return {QAct::Q8_K, five ? &tile_ref<true> : &tile_ref<false>};
}

}  // namespace fuselm
