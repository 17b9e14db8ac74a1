// Q4_K and Q5_K weights against Q8_K activations. Q5_K sums in the lane scheme (matmul_quant.h),
// Q4_K in llama.cpp's repacked order (see "Q4_K in llama.cpp's repacked order" below).
//
// Per superblock of 256: the 8 sub-blocks of 32 hold unsigned 4- or 5-bit q with a 6-bit scale
// sc[j] and min mn[j]: x · w = dx * (d * sum_j sc[j] (q_j · x_j) - dmin * sum_j mn[j] * xsum_j),
// where xsum_j = bsums[2j] + bsums[2j + 1] comes with the Q8_K block: the mins never touch the
// 256 products, as in llama.cpp. Q5_K's lane l: s_l = sum_j sc[j] * (bytes 4l..4l+3 of q_j · x_j) and
// m_l = mn[l] * xsum_l, accumulated as acc_l += (dx d) s_l - (dx dmin) m_l.
// AVX2: maddubs (unsigned q times signed x, pairs to int16: |pair| <= 31 * 127 * 2 fits) then
// madd by the sub-block's scale into int32 lanes; AVX-512 VNNI: vpdpbusd's exact sums of 4 per
// sub-block, then two sub-blocks' sums (|sum| <= 4 * 31 * 127 fits int16) times their scales by
// one vpdpwssd (see tile_q5k_vnni).
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {
namespace {

template <bool Five>
using BlockOf = std::conditional_t<Five, BlockQ5_K, BlockQ4_K>;

// ---- Q5_K: integer reference (also the portable level) ----

void tile_ref_q5k(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  float acc[4][8] = {};
  for (int64_t i = 0; i < nb; i++) {
    const BlockQ5_K& b = reinterpret_cast<const BlockQ5_K*>(w)[i];
    uint8_t sc[8], mn[8], q[kQK];
    for (int j = 0; j < 8; j++) k4_scale_min(b.scales, j, &sc[j], &mn[j]);
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++) {
        q[64 * c + l] = b.qs[32 * c + l] & 0x0f;
        q[64 * c + 32 + l] = b.qs[32 * c + l] >> 4;
        q[64 * c + l] |= ((b.qh[l] >> (2 * c)) & 1) << 4;
        q[64 * c + 32 + l] |= ((b.qh[l] >> (2 * c + 1)) & 1) << 4;
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

// ---- Q4_K in llama.cpp's repacked order ----
// llama.cpp repacks Q4_K (8 rows interleaved) and keeps per output one f32 sum of the products
// and one of the mins, y = acc - accm. Its GEMM (tokens in groups of 4: all but a call's last
// T % 4) adds each pair c of sub-blocks (2c, 2c + 1): acc += (d dx) S_c, accm += (dmin dx) M_c,
// with S_c = sum of sc[j] (q_j . x_j) and M_c = sum of mn[j] xsum_j over the pair (exact int32);
// its GEMV (the last T % 4 tokens; every token of a MoE projection, MatmulArgs::gemv_order)
// adds each superblock's S and M once. (A Q4_K matrix whose
// rows are not a multiple of 8, which llama.cpp does not repack, is summed the same way here.)
// The fast levels make a vector lane a weight row, so those float steps are vector ops:
//  - AVX-512 VNNI prefill (rows16_k4_vnni): 16 rows x up to 8 tokens; per pair, the 16 rows' 32 bytes
//    are transposed in registers (lane j = row j, 4 bytes per vector) once for all the tokens,
//    and 16 vpdpbusd against x's bytes broadcast give the pair's two sub-block sums per row
//    (times their scales by vpmulld; GEMV order: added over the superblock before the fmas).
//  - AVX-512 VNNI decode (decode4_k4_vnni, the GEMV tokens): 4 rows, each superblock summed as the
//    Q5_K tiles sum it (tile_q5k_vnni), then the 4 rows' 16 lanes reduced together by one add tree.
//  - AVX2: one row x 4 tokens (tile_k4_avx2), the pair sums reduced by hadd, a lane per token;
//    decode as AVX-512's, 4 rows in 8 lanes each (decode4_k4_avx2).
enum class Order { kGemm, kGemv };

// acc/accm += one superblock's pair sums s[c] and mins m[c], in order O.
template <Order O>
inline void add_pairs(float& acc, float& accm, const int32_t s[4], const int32_t m[4], float dd, float dm) {
  if constexpr (O == Order::kGemm) {
    for (int c = 0; c < 4; c++) {
      acc = std::fma(float(s[c]), dd, acc);
      accm = std::fma(float(m[c]), dm, accm);
    }
  } else {
    acc = std::fma(float(s[0] + s[1] + s[2] + s[3]), dd, acc);
    accm = std::fma(float(m[0] + m[1] + m[2] + m[3]), dm, accm);
  }
}

template <Order O>
void tile_ref_k4(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  const BlockQ4_K* b = reinterpret_cast<const BlockQ4_K*>(w);
  for (int t = 0; t < TT; t++) {
    const BlockQ8_K* x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs);
    float acc = 0, accm = 0;
    for (int64_t i = 0; i < K / kQK; i++) {
      int32_t s[4] = {}, m[4] = {};
      for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        k4_scale_min(b[i].scales, j, &sc, &mn);
        int32_t p = 0;
        for (int l = 0; l < 32; l++) p += int32_t((b[i].qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0f) * x[i].qs[32 * j + l];
        s[j / 2] += int32_t(sc) * p;
        m[j / 2] += int32_t(mn) * (int32_t(x[i].bsums[2 * j]) + int32_t(x[i].bsums[2 * j + 1]));
      }
      add_pairs<O>(acc, accm, s, m, f16_to_f32(b[i].d) * x[i].d, f16_to_f32(b[i].dmin) * x[i].d);
    }
    y[t * ys] = acc - accm;
  }
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

template <int TT>
FUSELM_AVX2 void tile_q5k_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockQ5_K& b = reinterpret_cast<const BlockQ5_K*>(w)[i];
    __m256i q[8];
    unpack_q<true>(b, q);
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
template <int TT>
FUSELM_AVX512VNNI void tile_q5k_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
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
    const BlockQ5_K& b = reinterpret_cast<const BlockQ5_K*>(w)[i];
    __m512i q[4], scv[4];
    const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh)));
    for (int c = 0; c < 4; c++) {
      const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * c)));
      // rotate left by 4 - k (mod 64): bit k of each byte lands on bit 4 of that byte
      const __m512i rot = _mm512_setr_epi64((4 - 2 * c) & 63, (4 - 2 * c) & 63, (4 - 2 * c) & 63, (4 - 2 * c) & 63,
                                            (3 - 2 * c) & 63, (3 - 2 * c) & 63, (3 - 2 * c) & 63, (3 - 2 * c) & 63);
      q[c] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srlv_epi64(v, nibble_shift), m4), _mm512_rolv_epi64(hb, rot),
                                       _mm512_set1_epi8(0x10), 0xf8);  // a | (b & c)
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
template <bool Vnni>
void tile_q5k_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  static constexpr TileFn avx2[4] = {&tile_q5k_avx2<1>, &tile_q5k_avx2<2>, &tile_q5k_avx2<3>, &tile_q5k_avx2<4>};
  static constexpr TileFn vnni[8] = {&tile_q5k_vnni<1>, &tile_q5k_vnni<2>, &tile_q5k_vnni<3>, &tile_q5k_vnni<4>,
                                     &tile_q5k_vnni<5>, &tile_q5k_vnni<6>, &tile_q5k_vnni<7>, &tile_q5k_vnni<8>};
  (Vnni ? vnni : avx2)[TT - 1](w, xq, xs, K, y, ys);
}

// A 4x4 transpose of int32: v[r] lane c <- v[c] lane r.
FUSELM_AVX2 FUSELM_INLINE void transpose4(__m128i v[4]) {
  const __m128i a = _mm_unpacklo_epi32(v[0], v[1]), b = _mm_unpackhi_epi32(v[0], v[1]);
  const __m128i c = _mm_unpacklo_epi32(v[2], v[3]), d = _mm_unpackhi_epi32(v[2], v[3]);
  v[0] = _mm_unpacklo_epi64(a, c);
  v[1] = _mm_unpackhi_epi64(a, c);
  v[2] = _mm_unpacklo_epi64(b, d);
  v[3] = _mm_unpackhi_epi64(b, d);
}

// [sum of a's lanes, b's, c's, d's] (exact int32 sums).
FUSELM_AVX2 FUSELM_INLINE __m128i sums4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// AVX2: one row x up to 4 tokens; each token's pair sums and mins reduced by hadd, then
// transposed so that a lane is a token and the f32 steps run on the 4 tokens at once.
template <Order O, int TT>
FUSELM_AVX2 void tile_k4_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
  for (int64_t i = 0; i < K / kQK; i++) {
    const BlockQ4_K& b = reinterpret_cast<const BlockQ4_K*>(w)[i];
    __m256i q[8];
    unpack_q<false>(b, q);
    const ScalesK4 sm = scales_k4(b.scales);
    __m128i S[4], M[4];  // token t's [pair 0, 1, 2, 3] sums of products and of mins
    alignas(16) float dx[4] = {};
    for (int t = 0; t < 4; t++) {
      if (t >= TT) {
        S[t] = M[t] = _mm_setzero_si128();
        continue;
      }
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      dx[t] = x.d;
      __m256i p[4];
      for (int c = 0; c < 4; c++) {
        const __m256i lo = _mm256_maddubs_epi16(q[2 * c], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 64 * c)));
        const __m256i hi = _mm256_maddubs_epi16(q[2 * c + 1], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 64 * c + 32)));
        p[c] = _mm256_add_epi32(_mm256_madd_epi16(lo, scale_at(sm.sc, 2 * c)), _mm256_madd_epi16(hi, scale_at(sm.sc, 2 * c + 1)));
      }
      S[t] = sums4(p[0], p[1], p[2], p[3]);
      // mins times xsums per sub-block, then per pair: [m0 + m1, m2 + m3 | m4 + m5, m6 + m7]
      const __m256i m = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)), sm.mins2);
      const __m256i mh = _mm256_hadd_epi32(m, m);
      M[t] = _mm_unpacklo_epi64(_mm256_castsi256_si128(mh), _mm256_extracti128_si256(mh, 1));
    }
    transpose4(S);
    transpose4(M);  // now S[c], M[c]: pair c of tokens 0..3
    const __m128 xd = _mm_load_ps(dx);
    const __m128 dd = _mm_mul_ps(_mm_set1_ps(_cvtsh_ss(b.d)), xd), dm = _mm_mul_ps(_mm_set1_ps(_cvtsh_ss(b.dmin)), xd);
    if constexpr (O == Order::kGemm) {
      for (int c = 0; c < 4; c++) {
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(S[c]), dd, acc);
        accm = _mm_fmadd_ps(_mm_cvtepi32_ps(M[c]), dm, accm);
      }
    } else {
      const __m128i s = _mm_add_epi32(_mm_add_epi32(S[0], S[1]), _mm_add_epi32(S[2], S[3]));
      const __m128i m = _mm_add_epi32(_mm_add_epi32(M[0], M[1]), _mm_add_epi32(M[2], M[3]));
      acc = _mm_fmadd_ps(_mm_cvtepi32_ps(s), dd, acc);
      accm = _mm_fmadd_ps(_mm_cvtepi32_ps(m), dm, accm);
    }
  }
  alignas(16) float out[4];
  _mm_store_ps(out, _mm_sub_ps(acc, accm));
  for (int t = 0; t < TT; t++) y[t * ys] = out[t];
}

template <Order O>
void tile_k4_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  static constexpr TileFn fns[4] = {&tile_k4_avx2<O, 1>, &tile_k4_avx2<O, 2>, &tile_k4_avx2<O, 3>, &tile_k4_avx2<O, 4>};
  fns[TT - 1](w, xq, xs, K, y, ys);
}

constexpr int kRows16 = 16, kRows16Tokens = 8;

// 16 rows' (at b0 + r * ws) 16 bytes at `off`, transposed: R[k] lane j = row j's bytes off + 4k .. off + 4k + 3.
FUSELM_AVX512VNNI FUSELM_INLINE void rows16_dwords(const uint8_t* b0, size_t ws, size_t off, __m512i R[4]) {
  auto at = [&](int r) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + r * ws + off)); };
  __m512i L[4];  // L[m]: 128-bit lane p holds row m + 4p
  for (int m = 0; m < 4; m++)
    L[m] = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(at(m)), at(m + 4), 1), at(m + 8), 2),
                              at(m + 12), 3);
  const __m512i t0 = _mm512_unpacklo_epi32(L[0], L[1]), t1 = _mm512_unpackhi_epi32(L[0], L[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(L[2], L[3]), t3 = _mm512_unpackhi_epi32(L[2], L[3]);
  R[0] = _mm512_unpacklo_epi64(t0, t2);
  R[1] = _mm512_unpackhi_epi64(t0, t2);
  R[2] = _mm512_unpacklo_epi64(t1, t3);
  R[3] = _mm512_unpackhi_epi64(t1, t3);
}

// A vpshufb control: byte b0 of each int32 lane zero-extended, or bytes b0 and b1 as an int16 pair.
FUSELM_AVX512VNNI FUSELM_INLINE __m512i lane_bytes(int b0, int b1 = -1) {
  auto dw = [&](int p) { return int32_t(uint32_t(4 * p + b0) | 0x8000u | uint32_t(b1 < 0 ? 0x80 : 4 * p + b1) << 16 | 0x80000000u); };
  return _mm512_broadcast_i32x4(_mm_setr_epi32(dw(0), dw(1), dw(2), dw(3)));
}

// AVX-512 VNNI prefill: 16 rows (ws apart; the first `rows` stored) x TT tokens, in order O.
template <Order O, int TT>
FUSELM_AVX512VNNI void rows16_k4_vnni(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, float* y,
                                 int64_t yr, int64_t ys, int rows) {
  const __m512i lo4 = _mm512_set1_epi8(0x0f), m6 = _mm512_set1_epi8(0x3f), hi2 = _mm512_set1_epi8(0x30), zero = _mm512_setzero_si512();
  __m512 acc[TT], accm[TT];
  for (int t = 0; t < TT; t++) acc[t] = accm[t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < K / kQK; i++) {
    [[maybe_unused]] __m512i s_all[TT], m_all[TT];  // GEMV: the superblock's sums
    if constexpr (O == Order::kGemv)
      for (int t = 0; t < TT; t++) s_all[t] = m_all[t] = zero;
    const uint8_t* b0 = w + size_t(i) * sizeof(BlockQ4_K);
    for (int r = 0; r < kRows16; r++) {
      prefetch_ahead(b0 + r * ws);
      prefetch_ahead(b0 + r * ws + 64);
      prefetch_ahead(b0 + r * ws + 128);
    }
    // scales and mins (k4_scales_mins on words w0, w1, w2 of each row), lane j = row j
    __m512i W[4];
    rows16_dwords(b0, ws, offsetof(BlockQ4_K, scales), W);
    const __m512i sc[2] = {_mm512_and_si512(W[0], m6),
                           _mm512_ternarylogic_epi32(_mm512_and_si512(W[2], lo4), _mm512_srli_epi32(W[0], 2), hi2, 0xf8)};
    const __m512i mn[2] = {_mm512_and_si512(W[1], m6),
                           _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi32(W[2], 4), lo4), _mm512_srli_epi32(W[1], 2), hi2, 0xf8)};
    alignas(64) uint32_t dm32[kRows16];  // each row's d (low half) and dmin
    for (int r = 0; r < kRows16; r++) std::memcpy(&dm32[r], b0 + r * ws, 4);
    const __m512i dmv = _mm512_load_si512(dm32);
    const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dmv)), dminw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dmv, 16)));
    // per token, the xsums of sub-blocks (2c, 2c + 1) as the int16 pair c
    alignas(16) int32_t xsp[TT][4];
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      const __m128i one = _mm_set1_epi16(1);
      const __m128i b_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums));
      const __m128i b_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums + 8));
      _mm_store_si128(reinterpret_cast<__m128i*>(xsp[t]), _mm_packs_epi32(_mm_madd_epi16(b_lo, one), _mm_madd_epi16(b_hi, one)));
    }
    for (int c = 0; c < 4; c++) {
      __m512i R[8], lo[8], hi[8];  // lo[k] / hi[k]: the rows' values 4k..4k+3 of sub-block 2c / 2c + 1
      rows16_dwords(b0, ws, offsetof(BlockQ4_K, qs) + 32 * c, R);
      rows16_dwords(b0, ws, offsetof(BlockQ4_K, qs) + 32 * c + 16, R + 4);
      for (int k = 0; k < 8; k++) {
        lo[k] = _mm512_and_si512(R[k], lo4);
        hi[k] = _mm512_and_si512(_mm512_srli_epi16(R[k], 4), lo4);
      }
      const int j = 2 * c;  // scales j and j + 1: bytes j % 4, j % 4 + 1 of sc[j / 4]; their mins as an int16 pair
      const __m512i sc_lo = _mm512_shuffle_epi8(sc[j / 4], lane_bytes(j % 4));
      const __m512i sc_hi = _mm512_shuffle_epi8(sc[j / 4], lane_bytes(j % 4 + 1));
      const __m512i mn2 = _mm512_shuffle_epi8(mn[j / 4], lane_bytes(j % 4, j % 4 + 1));
      for (int t = 0; t < TT; t++) {
        const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
        __m512i plo = zero, phi = zero;
        for (int k = 0; k < 8; k++) {
          int32_t xl, xh;
          std::memcpy(&xl, x.qs + 64 * c + 4 * k, 4);
          std::memcpy(&xh, x.qs + 64 * c + 32 + 4 * k, 4);
          plo = _mm512_dpbusd_epi32(plo, lo[k], _mm512_set1_epi32(xl));
          phi = _mm512_dpbusd_epi32(phi, hi[k], _mm512_set1_epi32(xh));
        }
        const __m512i s = _mm512_add_epi32(_mm512_mullo_epi32(plo, sc_lo), _mm512_mullo_epi32(phi, sc_hi));
        const __m512i m = _mm512_madd_epi16(mn2, _mm512_set1_epi32(xsp[t][c]));
        if constexpr (O == Order::kGemm) {
          const __m512 dx = _mm512_set1_ps(x.d);
          acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, dx), acc[t]);
          accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(dminw, dx), accm[t]);
        } else {
          s_all[t] = _mm512_add_epi32(s_all[t], s);
          m_all[t] = _mm512_add_epi32(m_all[t], m);
        }
      }
    }
    if constexpr (O == Order::kGemv)
      for (int t = 0; t < TT; t++) {
        const __m512 dx = _mm512_set1_ps(reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i].d);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s_all[t]), _mm512_mul_ps(dw, dx), acc[t]);
        accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m_all[t]), _mm512_mul_ps(dminw, dx), accm[t]);
      }
  }
  alignas(64) float out[kRows16];
  for (int t = 0; t < TT; t++) {
    _mm512_store_ps(out, _mm512_sub_ps(acc[t], accm[t]));
    for (int r = 0; r < rows; r++) y[t * ys + r * yr] = out[r];
  }
}

// Lane r = the sum of p[r]'s 16 (AVX-512) or 8 lanes (exact int32).
FUSELM_AVX512VNNI FUSELM_INLINE __m128i rows_sum4(const __m512i p[4]) {
  const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[0], p[1]), _mm512_unpackhi_epi32(p[0], p[1]));
  const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2], p[3]), _mm512_unpackhi_epi32(p[2], p[3]));
  const __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}
FUSELM_AVX2 FUSELM_INLINE __m128i rows_sum4(const __m256i p[4]) {
  const __m256i s01 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[0], p[1]), _mm256_unpackhi_epi32(p[0], p[1]));
  const __m256i s23 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2], p[3]), _mm256_unpackhi_epi32(p[2], p[3]));
  const __m256i s = _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

// The decode tiles' shared steps. Row r's block i (rows ws apart), prefetched ahead, with its d
// and dmin put in dh[r] and dh[r + 4].
FUSELM_AVX2 FUSELM_INLINE const BlockQ4_K& decode_block_k4(const uint8_t* w, size_t ws, int r, int64_t i, uint16_t dh[8]) {
  const uint8_t* p = w + r * ws + size_t(i) * sizeof(BlockQ4_K);
  prefetch_ahead(p);
  prefetch_ahead(p + 64);
  prefetch_ahead(p + 128);
  const BlockQ4_K& b = *reinterpret_cast<const BlockQ4_K*>(p);
  dh[r] = b.d;
  dh[r + 4] = b.dmin;
  return b;
}

// Per token t, the 4 rows' exact sums s[t] (scaled products) and m[t] (mins) of block i, times
// their d (dmin) and x's d, added to acc[t] (accm[t]).
template <int TT>
FUSELM_AVX2 FUSELM_INLINE void decode_add_k4(__m128 acc[TT], __m128 accm[TT], const __m128i s[TT], const __m128i m[TT],
                                             const uint16_t dh[8], const uint8_t* xq, size_t xs, int64_t i) {
  __m128i dv;
  std::memcpy(&dv, dh, 16);
  const __m256 dd = _mm256_cvtph_ps(dv);  // the 4 rows' d, then their dmin
  for (int t = 0; t < TT; t++) {
    const __m128 dx = _mm_set1_ps(reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i].d);
    acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(s[t]), _mm_mul_ps(_mm256_castps256_ps128(dd), dx), acc[t]);
    accm[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(m[t]), _mm_mul_ps(_mm256_extractf128_ps(dd, 1), dx), accm[t]);
  }
}

// y = acc - accm for the first `rows` of the 4 rows (yr apart), per token (ys apart).
template <int TT>
FUSELM_AVX2 FUSELM_INLINE void decode_store_k4(const __m128 acc[TT], const __m128 accm[TT], float* y, int64_t yr, int64_t ys, int rows) {
  alignas(16) float out[4];
  for (int t = 0; t < TT; t++) {
    _mm_store_ps(out, _mm_sub_ps(acc[t], accm[t]));
    for (int r = 0; r < rows; r++) y[t * ys + r * yr] = out[r];
  }
}

// AVX-512 VNNI decode, GEMV order: 4 rows (ws apart; the first `rows` stored) x TT tokens. Each
// row's superblock as tile_q5k_vnni sums it (16 exact int32 lanes of scaled products, 8 of mins),
// the 4 rows reduced together.
template <int TT>
FUSELM_AVX512VNNI void decode4_k4_vnni(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, float* y,
                                  int64_t yr, int64_t ys, int rows) {
  const __m512i m4 = _mm512_set1_epi8(0x0f), nibble_shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
  const __m512i z = _mm512_setzero_si512(), lo16 = _mm512_set1_epi32(0xffff);
  auto pair = [](int a, int b) { return int32_t(uint32_t(0x0100 + 0x0202 * a) | uint32_t(0x0100 + 0x0202 * b) << 16); };
  __m512i sc_pick[2];  // as tile_q5k_vnni's
  for (int c = 0; c < 2; c++)
    sc_pick[c] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(pair(4 * c, 4 * c + 2))),
                                    _mm256_set1_epi32(pair(4 * c + 1, 4 * c + 3)), 1);
  __m128 acc[TT], accm[TT];
  for (int t = 0; t < TT; t++) acc[t] = accm[t] = _mm_setzero_ps();
  for (int64_t i = 0; i < K / kQK; i++) {
    __m512i ps[TT][4];
    __m256i pm[TT][4];
    uint16_t dh[8];
    for (int r = 0; r < 4; r++) {
      const BlockQ4_K& b = decode_block_k4(w, ws, r, i, dh);
      __m512i q[4];
      for (int c = 0; c < 4; c++) {
        const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * c)));
        q[c] = _mm512_and_si512(_mm512_srlv_epi64(v, nibble_shift), m4);
      }
      const ScalesK4 sm = scales_k4(b.scales);
      const __m512i sc512 = _mm512_broadcast_i32x4(_mm256_castsi256_si128(sm.sc));
      const __m512i scv0 = _mm512_shuffle_epi8(sc512, sc_pick[0]), scv1 = _mm512_shuffle_epi8(sc512, sc_pick[1]);
      for (int t = 0; t < TT; t++) {
        const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
        const __m512i p0 = _mm512_dpbusd_epi32(z, q[0], _mm512_loadu_si512(x.qs));
        const __m512i p1 = _mm512_dpbusd_epi32(z, q[1], _mm512_loadu_si512(x.qs + 64));
        const __m512i p2 = _mm512_dpbusd_epi32(z, q[2], _mm512_loadu_si512(x.qs + 128));
        const __m512i p3 = _mm512_dpbusd_epi32(z, q[3], _mm512_loadu_si512(x.qs + 192));
        const __m512i c01 = _mm512_ternarylogic_epi32(_mm512_slli_epi32(p1, 16), p0, lo16, 0xf8);
        const __m512i c23 = _mm512_ternarylogic_epi32(_mm512_slli_epi32(p3, 16), p2, lo16, 0xf8);
        ps[t][r] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(z, c01, scv0), c23, scv1);
        pm[t][r] = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)), sm.mins2);
      }
    }
    __m128i sums[TT], mins[TT];
    for (int t = 0; t < TT; t++) sums[t] = rows_sum4(ps[t]), mins[t] = rows_sum4(pm[t]);
    decode_add_k4<TT>(acc, accm, sums, mins, dh, xq, xs, i);
  }
  decode_store_k4<TT>(acc, accm, y, yr, ys, rows);
}

using RowsK4Fn = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, int64_t, float*, int64_t, int64_t, int);

// AVX2 decode, GEMV order: 4 rows (ws apart; the first `rows` stored) x TT tokens, each row's
// superblock in the Q5_K tiles' 8 lanes (maddubs, madd by the scales), the 4 rows reduced together.
template <int TT>
FUSELM_AVX2 void decode4_k4_avx2(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, float* y,
                                 int64_t yr, int64_t ys, int rows) {
  __m128 acc[TT], accm[TT];
  for (int t = 0; t < TT; t++) acc[t] = accm[t] = _mm_setzero_ps();
  for (int64_t i = 0; i < K / kQK; i++) {
    __m256i ps[TT][4], pm[TT][4];
    uint16_t dh[8];
    for (int r = 0; r < 4; r++) {
      const BlockQ4_K& b = decode_block_k4(w, ws, r, i, dh);
      __m256i q[8];
      unpack_q<false>(b, q);
      const ScalesK4 sm = scales_k4(b.scales);
      for (int t = 0; t < TT; t++) {
        const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
        __m256i s = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
          const __m256i pj = _mm256_maddubs_epi16(q[j], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * j)));
          s = _mm256_add_epi32(s, _mm256_madd_epi16(pj, scale_at(sm.sc, j)));
        }
        ps[t][r] = s;
        pm[t][r] = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)), sm.mins2);
      }
    }
    __m128i sums[TT], mins[TT];
    for (int t = 0; t < TT; t++) sums[t] = rows_sum4(ps[t]), mins[t] = rows_sum4(pm[t]);
    decode_add_k4<TT>(acc, accm, sums, mins, dh, xq, xs, i);
  }
  decode_store_k4<TT>(acc, accm, y, yr, ys, rows);
}
void decode_rows_k4_avx2(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t yr,
                         int64_t ys) {
  static constexpr RowsK4Fn fns[3] = {&decode4_k4_avx2<1>, &decode4_k4_avx2<2>, &decode4_k4_avx2<3>};
  fns[TT - 1](w, ws, xq, xs, K, y, yr, ys, 4);
}
void decode_tile_k4_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  static constexpr RowsK4Fn fns[3] = {&decode4_k4_avx2<1>, &decode4_k4_avx2<2>, &decode4_k4_avx2<3>};
  fns[TT - 1](w, 0, xq, xs, K, y, 0, ys, 1);
}

// The VNNI rows tiles: 16 rows x up to 8 tokens in order O, or (Decode) 4 rows x up to 3 in GEMV order.
template <Order O, bool Decode>
RowsK4Fn rows_k4_fn(int TT) {
  static constexpr RowsK4Fn prefill[kRows16Tokens] = {&rows16_k4_vnni<O, 1>, &rows16_k4_vnni<O, 2>, &rows16_k4_vnni<O, 3>, &rows16_k4_vnni<O, 4>,
                                                      &rows16_k4_vnni<O, 5>, &rows16_k4_vnni<O, 6>, &rows16_k4_vnni<O, 7>, &rows16_k4_vnni<O, 8>};
  static constexpr RowsK4Fn decode[3] = {&decode4_k4_vnni<1>, &decode4_k4_vnni<2>, &decode4_k4_vnni<3>};
  return (Decode ? decode : prefill)[TT - 1];
}
template <Order O, bool Decode>
void rows_k4_x86(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t yr, int64_t ys) {
  rows_k4_fn<O, Decode>(TT)(w, ws, xq, xs, K, y, yr, ys, Decode ? 4 : kRows16);
}
// A row left over from the rows tiles: the rows tile on copies of it, one stored.
template <Order O, bool Decode>
void tile_k4_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  rows_k4_fn<O, Decode>(TT)(w, 0, xq, xs, K, y, 0, ys, 1);
}

#endif  // __x86_64__

}  // namespace

// Q4_K: calls of 4 tokens and more take the GEMM order, their last T % 4 tokens the `tail` kernel
// in GEMV order; calls under 4 tokens, and gemv_order calls, the GEMV order throughout.
QuantKernel q4_k_kernel(DType dt, Impl impl, int64_t T, bool gemv_order) {
  const bool five = dt == DType::Q5_K, gemv = gemv_order || T < 4;
#if defined(__x86_64__)
  if (impl == Impl::kAvx512 && cpu_features().avx512vnni) {
    if (five) return {QAct::Q8_K, &tile_q5k_x86<true>, 8};
    static constexpr QuantKernel decode{QAct::Q8_K, &tile_k4_vnni<Order::kGemv, true>, 3, &rows_k4_x86<Order::kGemv, true>, 4};
    if (T < 4) return decode;
    if (gemv) return {QAct::Q8_K, &tile_k4_vnni<Order::kGemv, false>, kRows16Tokens, &rows_k4_x86<Order::kGemv, false>, kRows16};
    return {QAct::Q8_K, &tile_k4_vnni<Order::kGemm, false>, kRows16Tokens, &rows_k4_x86<Order::kGemm, false>, kRows16, &decode};
  }
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2) {
    if (five) return {QAct::Q8_K, &tile_q5k_x86<false>};
    static constexpr QuantKernel tail{QAct::Q8_K, &tile_k4_x86<Order::kGemv>};
    static constexpr QuantKernel decode{QAct::Q8_K, &decode_tile_k4_avx2, 3, &decode_rows_k4_avx2, 4};
    if (T < 4) return decode;
    if (gemv) return tail;
    return {QAct::Q8_K, &tile_k4_x86<Order::kGemm>, 4, nullptr, kTileRows, &tail};
  }
#endif
  if (five) return {QAct::Q8_K, &tile_ref_q5k};
  static constexpr QuantKernel tail{QAct::Q8_K, &tile_ref_k4<Order::kGemv>};
  if (gemv) return tail;
  return {QAct::Q8_K, &tile_ref_k4<Order::kGemm>, 4, nullptr, kTileRows, &tail};
}

}  // namespace fuselm
