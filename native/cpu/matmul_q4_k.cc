// Q4_K and Q5_K weights against Q8_K activations (see matmul_quant.h).
//
// Per superblock of 256: the 8 sub-blocks of 32 hold unsigned 4- or 5-bit q with a 6-bit scale
// sc[j] and min mn[j]: x · w = dx * (d * sum_j sc[j] (q_j · x_j) - dmin * sum_j mn[j] * xsum_j),
// where xsum_j = bsums[2j] + bsums[2j + 1] comes with the Q8_K block: the mins never touch the
// 256 products, as in llama.cpp. The integer sums are exact; the f32 steps follow what llama.cpp
// runs on x86 (AVX2 and up), so the outputs are its bits:
//  - Q5_K (vec_dot_q5_K_q8_K): lane l (matmul_quant.h) s_l = sum_j sc[j] * (bytes 4l..4l+3 of
//    q_j · x_j), acc_l += (dx d) s_l; the mins in one scalar, m += (-dx dmin) M with
//    M = sum_j mn[j] xsum_j; y = lanes_sum(acc) + m.
//  - Q4_K is repacked by llama.cpp (8 rows interleaved) and summed per output in one f32
//    accumulator for the products and one for the mins, y = acc - accm: its GEMM (tokens in
//    groups of 4: all but the call's last T % 4) adds each pair of sub-blocks c (2c, 2c + 1):
//    acc += (d dx) S_c, accm += (dmin dx) M_c; its GEMV (the last T % 4 tokens, so a single
//    token) adds each superblock's S and M once. (A Q4_K matrix whose rows are not a multiple of
//    8, which llama.cpp does not repack, is summed the same way here.)
// AVX2: maddubs (unsigned q times signed x, pairs to int16: |pair| <= 31 * 127 * 2 fits) then
// madd by the sub-block's scale into int32 lanes; AVX-512 VNNI: vpdpbusd's exact sums of 4 per
// sub-block, then multiplied by their scales with vpdpwssd (see tile_vnni).
#include <cmath>
#include <type_traits>

#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {
namespace {

template <bool Five>
using BlockOf = std::conditional_t<Five, BlockQ5_K, BlockQ4_K>;

// How a tile sums: Q5_K's vec_dot order, or Q4_K's repacked GEMM or GEMV order (see above).
enum class Order { kVecDot, kGemm, kGemv };

// y for one (row, token) from the superblocks' exact integer sums, in Order O: s[c] the products
// of sub-blocks 2c and 2c + 1 times their scales (c < 4), m[c] the same pairs' mins times xsums
// (Q4_K), or lanes (Q5_K: s as 8 lanes, m its M in m[0]) — accumulated by the kernels as below.
struct AccK4 {
  float acc = 0, accm = 0;  // Q4_K
  float lanes[8] = {};      // Q5_K
};

// Q4_K: one superblock's pair sums s[4] and mins m[4] into a (row, token)'s accumulators.
template <Order O>
inline void add_pairs(AccK4& a, const int32_t s[4], const int32_t m[4], float dd, float dm) {
  if constexpr (O == Order::kGemm) {
    for (int c = 0; c < 4; c++) {
      a.acc = std::fma(float(s[c]), dd, a.acc);
      a.accm = std::fma(float(m[c]), dm, a.accm);
    }
  } else {
    a.acc = std::fma(float(s[0] + s[1] + s[2] + s[3]), dd, a.acc);
    a.accm = std::fma(float(m[0] + m[1] + m[2] + m[3]), dm, a.accm);
  }
}

// ---- integer reference (also the portable level) ----

template <bool Five, Order O>
void tile_ref(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  AccK4 acc[8];
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
      int32_t lane[8] = {}, pair[4] = {}, mins[4] = {};
      for (int j = 0; j < 8; j++) {
        for (int l = 0; l < 8; l++) {
          int32_t p = 0;
          for (int e = 4 * l; e < 4 * l + 4; e++) p += int32_t(q[32 * j + e]) * int32_t(x.qs[32 * j + e]);
          lane[l] += int32_t(sc[j]) * p;
          pair[j / 2] += int32_t(sc[j]) * p;
        }
        mins[j / 2] += int32_t(mn[j]) * (int32_t(x.bsums[2 * j]) + int32_t(x.bsums[2 * j + 1]));
      }
      if constexpr (O == Order::kVecDot) {
        for (int l = 0; l < 8; l++) acc[t].lanes[l] = std::fma(x.d * d, float(lane[l]), acc[t].lanes[l]);
        acc[t].accm = std::fma(-x.d * dmin, float(mins[0] + mins[1] + mins[2] + mins[3]), acc[t].accm);
      } else {
        add_pairs<O>(acc[t], pair, mins, d * x.d, dmin * x.d);
      }
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = O == Order::kVecDot ? lanes_sum(acc[t].lanes) + acc[t].accm : acc[t].acc - acc[t].accm;
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

// [sum of a's lanes, b's, c's, d's] (exact int32 sums).
FUSELM_AVX2 FUSELM_INLINE __m128i sums4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}
// The mins of the 4 sub-block pairs: [m0 + m1, m2 + m3, m4 + m5, m6 + m7].
FUSELM_AVX2 FUSELM_INLINE __m128i pair_sums(__m256i m) {
  const __m256i h = _mm256_hadd_epi32(m, m);
  return _mm_unpacklo_epi64(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// One superblock of one (row, token) into its accumulators: p[c] the scaled products of pair c
// (8 or 16 int32 lanes, summed by the caller's sums4), m the 8 sub-blocks' mins times xsums.
template <Order O>
FUSELM_AVX2 FUSELM_INLINE void add_superblock(AccK4& a, __m256& lanes, const float* dx, float d, float dmin, __m256i s8,
                                              __m128i pairs, __m256i m) {
  if constexpr (O == Order::kVecDot) {
    lanes = _mm256_fmadd_ps(_mm256_set1_ps(*dx * d), _mm256_cvtepi32_ps(s8), lanes);
    const __m128i mp = pair_sums(m);
    const __m128i m2 = _mm_add_epi32(mp, _mm_unpackhi_epi64(mp, mp));
    a.accm = std::fma(-*dx * dmin, float(_mm_cvtsi128_si32(m2) + _mm_extract_epi32(m2, 1)), a.accm);
  } else {
    alignas(16) int32_t sp[4], mp[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(sp), pairs);
    _mm_store_si128(reinterpret_cast<__m128i*>(mp), pair_sums(m));
    add_pairs<O>(a, sp, mp, d * *dx, dmin * *dx);
  }
}

template <Order O>
FUSELM_AVX2 FUSELM_INLINE float finish(const AccK4& a, __m256 lanes) {
  return O == Order::kVecDot ? simd256::hsum(lanes) + a.accm : a.acc - a.accm;
}

template <bool Five, Order O, int TT>
FUSELM_AVX2 void tile_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  AccK4 acc[TT];
  __m256 lanes[TT];
  for (int t = 0; t < TT; t++) lanes[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockOf<Five>& b = reinterpret_cast<const BlockOf<Five>*>(w)[i];
    __m256i q[8];
    unpack_q<Five>(b, q);
    const ScalesK4 sm = scales_k4(b.scales);
    const float d = _cvtsh_ss(b.d), dmin = _cvtsh_ss(b.dmin);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      __m256i p[4];
      for (int c = 0; c < 4; c++) {
        const __m256i lo = _mm256_maddubs_epi16(q[2 * c], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 64 * c)));
        const __m256i hi = _mm256_maddubs_epi16(q[2 * c + 1], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 64 * c + 32)));
        p[c] = _mm256_add_epi32(_mm256_madd_epi16(lo, scale_at(sm.sc, 2 * c)), _mm256_madd_epi16(hi, scale_at(sm.sc, 2 * c + 1)));
      }
      const __m256i m = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)), sm.mins2);
      if constexpr (O == Order::kVecDot) {
        const __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3]));
        add_superblock<O>(acc[t], lanes[t], &x.d, d, dmin, s8, __m128i(), m);
      } else {
        add_superblock<O>(acc[t], lanes[t], &x.d, d, dmin, __m256i(), sums4(p[0], p[1], p[2], p[3]), m);
      }
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = finish<O>(acc[t], lanes[t]);
}

// AVX-512 VNNI: chunk c of qs (32 bytes) holds sub-block 2c in its low nibbles and 2c + 1 in its
// high ones, which dot the 64 contiguous activations 64c.. : the chunk is broadcast to both
// 256-bit halves and shifted by 0 and 4 bits (Q5_K: the fifth bits rotated into bit 4 of each
// byte, bit 2c in the lower half, 2c + 1 in the upper). vpdpbusd gives each lane's sum of 4
// products (p_c for chunk c: sub-block 2c in lanes 0-7, 2c + 1 in lanes 8-15), and one vpdpwssd
// multiplies it by its two sub-blocks' scales (each lane's sum fits the low int16; the high one
// is its sign, multiplied by 0). Q5_K adds the halves (lane l + lane l + 8) into the 8 lanes of
// the scheme; Q4_K sums each pair c's 16 lanes.
template <bool Five, Order O, int TT>
FUSELM_AVX512VNNI void tile_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  const __m512i m4 = _mm512_set1_epi8(0x0f), nibble_shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
  AccK4 acc[TT];
  __m256 lanes[TT];
  for (int t = 0; t < TT; t++) lanes[t] = _mm256_setzero_ps();
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
    const __m128i scmn = k4_scales_mins(b.scales);
    const __m512i sc32 = _mm512_cvtepu8_epi32(scmn);  // lanes 0-7: the scales (then the mins)
    for (int c = 0; c < 4; c++)  // sub-block 2c's scale in lanes 0-7, 2c + 1's in lanes 8-15
      scv[c] = _mm512_permutexvar_epi32(_mm512_setr_epi32(2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c + 1,
                                                          2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1), sc32);
    const __m256i mins2 = scales_k4(b.scales).mins2;
    const float d = _cvtsh_ss(b.d), dmin = _cvtsh_ss(b.dmin);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      const __m512i z = _mm512_setzero_si512();
      __m256i p8[4];
      for (int c = 0; c < 4; c++) {
        const __m512i pc = _mm512_dpwssd_epi32(z, _mm512_dpbusd_epi32(z, q[c], _mm512_loadu_si512(x.qs + 64 * c)), scv[c]);
        p8[c] = _mm256_add_epi32(_mm512_castsi512_si256(pc), _mm512_extracti64x4_epi64(pc, 1));
      }
      const __m256i m = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)), mins2);
      if constexpr (O == Order::kVecDot) {
        const __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(p8[0], p8[1]), _mm256_add_epi32(p8[2], p8[3]));
        add_superblock<O>(acc[t], lanes[t], &x.d, d, dmin, s8, __m128i(), m);
      } else {
        add_superblock<O>(acc[t], lanes[t], &x.d, d, dmin, __m256i(), sums4(p8[0], p8[1], p8[2], p8[3]), m);
      }
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = finish<O>(acc[t], lanes[t]);
}

using TileFn = void (*)(const uint8_t*, const uint8_t*, size_t, int64_t, float*, int64_t);

// VNNI tiles take up to 8 tokens (32 zmm registers hold a superblock's 8 vectors of weights and
// scales beside 8 accumulators), AVX2 up to 4.
template <bool Five, Order O, bool Vnni>
void tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  static constexpr TileFn avx2[4] = {&tile_avx2<Five, O, 1>, &tile_avx2<Five, O, 2>, &tile_avx2<Five, O, 3>, &tile_avx2<Five, O, 4>};
  static constexpr TileFn vnni[8] = {&tile_vnni<Five, O, 1>, &tile_vnni<Five, O, 2>, &tile_vnni<Five, O, 3>, &tile_vnni<Five, O, 4>,
                                     &tile_vnni<Five, O, 5>, &tile_vnni<Five, O, 6>, &tile_vnni<Five, O, 7>, &tile_vnni<Five, O, 8>};
  (Vnni ? vnni : avx2)[TT - 1](w, xq, xs, K, y, ys);
}

#endif  // __x86_64__

}  // namespace

QuantKernel q4_k_kernel(DType dt, Impl impl) {
#if defined(__x86_64__)
  const bool vnni = impl == Impl::kAvx512 && cpu_features().avx512vnni;
  if (vnni || impl == Impl::kAvx512 || impl == Impl::kAvx2) {
    if (dt == DType::Q5_K) return {QAct::Q8_K, vnni ? &tile_x86<true, Order::kVecDot, true> : &tile_x86<true, Order::kVecDot, false>, vnni ? 8 : 4};
    QuantKernel k{QAct::Q8_K, vnni ? &tile_x86<false, Order::kGemm, true> : &tile_x86<false, Order::kGemm, false>, vnni ? 8 : 4};
    k.tail = vnni ? &tile_x86<false, Order::kGemv, true> : &tile_x86<false, Order::kGemv, false>;
    return k;
  }
#endif
  if (dt == DType::Q5_K) return {QAct::Q8_K, &tile_ref<true, Order::kVecDot>};
  QuantKernel k{QAct::Q8_K, &tile_ref<false, Order::kGemm>};
  k.tail = &tile_ref<false, Order::kGemv>;
  return k;
}

}  // namespace fuselm
