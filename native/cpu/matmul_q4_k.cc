// Q4_K and Q5_K weights against Q8_K activations (see matmul_quant.h for the lane scheme).
//
// Per superblock of 256: the 8 sub-blocks of 32 hold unsigned 4- or 5-bit q with a 6-bit scale
// sc[j] and min mn[j]: x · w = dx * (d * sum_j sc[j] (q_j · x_j) - dmin * sum_j mn[j] * xsum_j),
// where xsum_j = bsums[2j] + bsums[2j + 1] comes with the Q8_K block: the mins never touch the
// 256 products, as in llama.cpp. Lane l: s_l = sum_j sc[j] * (bytes 4l..4l+3 of q_j · x_j) and
// m_l = mn[l] * xsum_l, accumulated as acc_l += (dx d) s_l - (dx dmin) m_l.
// AVX2: maddubs (unsigned q times signed x, pairs to int16: |pair| <= 31 * 127 * 2 fits) then
// madd by the sub-block's scale into int32 lanes; AVX-512 VNNI: vpdpbusd's exact sums of 4 per
// sub-block, then two sub-blocks' sums (|sum| <= 4 * 31 * 127 fits int16) times their scales by
// one vpdpwssd (see tile_vnni).
#include <cmath>
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

// The 8 scales (bytes 0-7) and 8 mins (bytes 8-15) of a superblock from its 12 packed bytes as
// three 32-bit words w0, w1, w2, the fields k4_scale_min reads one at a time (the reference's way):
// scales 0-3 = w0 & 0x3f.., mins 0-3 = w1 & 0x3f.., scales 4-7 = (w2 & 0x0f..) | (w0's top 2 bits
// of each byte at bits 4-5), mins 4-7 = ((w2 >> 4) & 0x0f..) | (w1's top 2 bits at bits 4-5).
// The 16-byte load reads 4 bytes past the 12, which in Q4_K and Q5_K blocks are still the block's.
FUSELM_AVX2 FUSELM_INLINE __m128i k4_scales_mins(const uint8_t* s) {
  const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
  const __m128i a = _mm_shuffle_epi32(w, _MM_SHUFFLE(2, 1, 2, 0));  // w0, w2, w1, w2
  const __m128i b = _mm_shuffle_epi32(w, _MM_SHUFFLE(1, 1, 0, 0));  // w0, w0, w1, w1
  const __m128i lo = _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)),
                                   _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  const __m128i hi = _mm_and_si128(_mm_srli_epi32(b, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm_or_si128(lo, hi);
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
  const __m128i v = k4_scales_mins(packed);
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

// AVX-512 VNNI: chunk c of qs (32 bytes) holds sub-block 2c in its low nibbles and 2c + 1 in its
// high ones, which dot the 64 contiguous activations 64c.. : the chunk is broadcast to both
// 256-bit halves and shifted by 0 and 4 bits (Q5_K: the fifth bits rotated into bit 4 of each
// byte, bit 2c in the lower half, 2c + 1 in the upper). vpdpbusd gives each lane's sum of 4
// products (p_c for chunk c); p_0 and p_1 (p_2 and p_3) are joined as the low and high int16 of
// each int32 lane, and one vpdpwssd multiplies them by their sub-blocks' scales (a byte shuffle of
// the 8 scales) and adds: 6 multiplying instructions per 256 products instead of maddubs + madd's
// 8. The halves are added (lane l + lane l + 8) into the 8 lanes of the scheme.
template <bool Five, int TT>
FUSELM_AVX512VNNI void tile_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  const __m512i m4 = _mm512_set1_epi8(0x0f), nibble_shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
  // pair c (chunks 2c, 2c + 1): int16 scales (4c, 4c + 2) in the lower half, (4c + 1, 4c + 3) in the upper
  auto pair = [](int a, int b) { return int32_t(uint32_t(0x0100 + 0x0202 * a) | uint32_t(0x0100 + 0x0202 * b) << 16); };
  __m512i sc_pick[2];
  for (int c = 0; c < 2; c++)
    sc_pick[c] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(pair(4 * c, 4 * c + 2))),
                                    _mm256_set1_epi32(pair(4 * c + 1, 4 * c + 3)), 1);
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockOf<Five>& b = reinterpret_cast<const BlockOf<Five>*>(w)[i];
    __m512i q[4], scv[4];
    [[maybe_unused]] __m512i hb;
    if constexpr (Five) hb = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh)));
    for (int c = 0; c < 4; c++) {
      const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * c)));
      q[c] = _mm512_and_si512(_mm512_srlv_epi64(v, nibble_shift), m4);
      if constexpr (Five) {  // rotate left by 4 - k (mod 64): bit k of each byte lands on bit 4 of that byte
        const __m512i rot = _mm512_setr_epi64((4 - 2 * c) & 63, (4 - 2 * c) & 63, (4 - 2 * c) & 63, (4 - 2 * c) & 63,
                                              (3 - 2 * c) & 63, (3 - 2 * c) & 63, (3 - 2 * c) & 63, (3 - 2 * c) & 63);
        q[c] = _mm512_ternarylogic_epi32(q[c], _mm512_rolv_epi64(hb, rot), _mm512_set1_epi8(0x10), 0xf8);  // a | (b & c)
      }
    }
    const ScalesK4 sm = scales_k4(b.scales);
    const __m512i sc512 = _mm512_broadcast_i32x4(_mm256_castsi256_si128(sm.sc));
    for (int c = 0; c < 2; c++) scv[c] = _mm512_shuffle_epi8(sc512, sc_pick[c]);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d)), ndmin = _mm256_set1_ps(-_cvtsh_ss(b.dmin));
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      const __m512i z = _mm512_setzero_si512(), lo16 = _mm512_set1_epi32(0xffff);
      const __m512i p0 = _mm512_dpbusd_epi32(z, q[0], _mm512_loadu_si512(x.qs));
      const __m512i p1 = _mm512_dpbusd_epi32(z, q[1], _mm512_loadu_si512(x.qs + 64));
      const __m512i p2 = _mm512_dpbusd_epi32(z, q[2], _mm512_loadu_si512(x.qs + 128));
      const __m512i p3 = _mm512_dpbusd_epi32(z, q[3], _mm512_loadu_si512(x.qs + 192));
      const __m512i c01 = _mm512_ternarylogic_epi32(_mm512_slli_epi32(p1, 16), p0, lo16, 0xf8);
      const __m512i c23 = _mm512_ternarylogic_epi32(_mm512_slli_epi32(p3, 16), p2, lo16, 0xf8);
      const __m512i s = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(z, c01, scv[0]), c23, scv[1]);
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
