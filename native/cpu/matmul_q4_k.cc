// Q4_K and Q5_K weights against Q8_K activations (see matmul_quant.h).
//
// Per superblock of 256: isum = sum_j sc[j] * (q_j · x_j) over the 8 sub-blocks of 32 (q the
// 4- or 5-bit unsigned values), msum = sum_j mn[j] * (bsums[2j] + bsums[2j+1]) (x's sums per 16
// from its Q8_K block), and y += (dx * d) * isum - (dx * dmin) * msum: the mins never touch the
// 256 products, as in llama.cpp. AVX2: maddubs (unsigned q times signed x, pairs to int16:
// |pair| <= 31 * 127 * 2 fits) then madd by the sub-block's scale into int32 lanes; AVX-512
// VNNI does the second step with vpdpwssd.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {
namespace {

template <bool Five>
using BlockOf = std::conditional_t<Five, BlockQ5_K, BlockQ4_K>;

template <bool Five>
inline void unpack_scales(const BlockOf<Five>& b, uint8_t sc[8], uint8_t mn[8]) {
  for (int j = 0; j < 8; j++) k4_scale_min(b.scales, j, &sc[j], &mn[j]);
}

inline int32_t min_sum(const uint8_t mn[8], const BlockQ8_K& x) {
  int32_t s = 0;
  for (int j = 0; j < 8; j++) s += int32_t(mn[j]) * (int32_t(x.bsums[2 * j]) + int32_t(x.bsums[2 * j + 1]));
  return s;
}

// The one f32 step every level shares.
inline float accumulate(float acc, float dx, float d, float dmin, int32_t isum, int32_t msum) {
  acc = std::fma(dx * d, float(isum), acc);
  return std::fma(-(dx * dmin), float(msum), acc);
}

// ---- integer reference (also the portable level) ----

template <bool Five>
void tile_ref(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  float acc[4] = {};
  for (int64_t i = 0; i < nb; i++) {
    const BlockOf<Five>& b = reinterpret_cast<const BlockOf<Five>*>(w)[i];
    uint8_t sc[8], mn[8], q[kQK];
    unpack_scales<Five>(b, sc, mn);
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
      int32_t isum = 0;
      for (int j = 0; j < 8; j++) {
        int32_t s = 0;
        for (int l = 0; l < 32; l++) s += int32_t(q[32 * j + l]) * int32_t(x.qs[32 * j + l]);
        isum += int32_t(sc[j]) * s;
      }
      acc[t] = accumulate(acc[t], x.d, d, dmin, isum, min_sum(mn, x));
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = acc[t];
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

// The sums of s's and m's lanes, at once: {sum s, sum m}.
FUSELM_AVX2 FUSELM_INLINE void hsum2(__m256i s, __m256i m, int32_t* ss, int32_t* ms) {
  const __m256i t = _mm256_hadd_epi32(s, m);  // per half: s pairs, m pairs
  __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
  u = _mm_hadd_epi32(u, u);
  *ss = _mm_cvtsi128_si32(u);
  *ms = _mm_extract_epi32(u, 1);
}

template <bool Five, int TT>
FUSELM_AVX2 void tile_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  float acc[TT] = {};
  for (int64_t i = 0; i < nb; i++) {
    const BlockOf<Five>& b = reinterpret_cast<const BlockOf<Five>*>(w)[i];
    __m256i q[8], scv[8];
    unpack_q<Five>(b, q);
    const ScalesK4 sm = scales_k4(b.scales);
    for (int j = 0; j < 8; j++) scv[j] = scale_at(sm.sc, j);
    const float d = _cvtsh_ss(b.d), dmin = _cvtsh_ss(b.dmin);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      __m256i s = _mm256_setzero_si256();
      for (int j = 0; j < 8; j++) {
        const __m256i p = _mm256_maddubs_epi16(q[j], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * j)));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, scv[j]));
      }
      const __m256i m = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)), sm.mins2);
      int32_t isum, msum;
      hsum2(s, m, &isum, &msum);
      acc[t] = accumulate(acc[t], x.d, d, dmin, isum, msum);
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = acc[t];
}

// AVX-512 VNNI: two sub-blocks (64 values) per vector, their scales in the two 256-bit halves.
template <bool Five, int TT>
FUSELM_AVX512VNNI void tile_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  float acc[TT] = {};
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
    const float d = _cvtsh_ss(b.d), dmin = _cvtsh_ss(b.dmin);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      __m512i s = _mm512_setzero_si512();
      for (int c = 0; c < 4; c++)
        s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(q[c], _mm512_loadu_si512(x.qs + 64 * c)), scv[c]);
      const __m256i m = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)), sm.mins2);
      int32_t isum, msum;
      hsum2(_mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1)), m, &isum, &msum);
      acc[t] = accumulate(acc[t], x.d, d, dmin, isum, msum);
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = acc[t];
}

template <bool Five, bool Vnni>
void tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  constexpr auto f1 = Vnni ? &tile_vnni<Five, 1> : &tile_avx2<Five, 1>;
  constexpr auto f2 = Vnni ? &tile_vnni<Five, 2> : &tile_avx2<Five, 2>;
  constexpr auto f3 = Vnni ? &tile_vnni<Five, 3> : &tile_avx2<Five, 3>;
  constexpr auto f4 = Vnni ? &tile_vnni<Five, 4> : &tile_avx2<Five, 4>;
  switch (TT) {
    case 1: return f1(w, xq, xs, K, y, ys);
    case 2: return f2(w, xq, xs, K, y, ys);
    case 3: return f3(w, xq, xs, K, y, ys);
    default: return f4(w, xq, xs, K, y, ys);
  }
}

#endif  // __x86_64__

}  // namespace

QuantKernel q4_k_kernel(DType dt, Impl impl) {
  const bool five = dt == DType::Q5_K;
#if defined(__x86_64__)
  if (impl == Impl::kAvx512 && cpu_features().avx512vnni)
    return {QAct::Q8_K, five ? &tile_x86<true, true> : &tile_x86<false, true>};
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2)
    return {QAct::Q8_K, five ? &tile_x86<true, false> : &tile_x86<false, false>};
#endif
  return {QAct::Q8_K, five ? &tile_ref<true> : &tile_ref<false>};
}

}  // namespace fuselm
