// Q6_K weights against Q8_K activations (see matmul_quant.h).
//
// Per superblock: the 6-bit values q are stored unsigned (0..63, the value is q - 32), so over
// the 16 sub-blocks of 16, x · w = dx * d * (sum_j sc[j] (q_j · x_j) - 32 sum_j sc[j] bsums[j]).
// Lane l (matmul_quant.h): s_l = the products of bytes 4l..4l+3 of each 32 values times their
// sub-block's scale, minus 32 * (sc[2l] bsums[2l] + sc[2l+1] bsums[2l+1]); acc_l += (dx d) s_l.
// AVX2: maddubs (|pair| <= 63 * 127 * 2 fits int16) then madd by a vector holding two
// sub-blocks' scales (one per 128-bit half); AVX-512 VNNI: 64 values per step, vpdpwssd.
#include <cmath>
#include <cstring>

#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {
namespace {

// ---- integer reference (also the portable level) ----

void tile_ref(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  float acc[4][8] = {};
  for (int64_t i = 0; i < nb; i++) {
    const BlockQ6_K& b = reinterpret_cast<const BlockQ6_K*>(w)[i];
    uint8_t q[kQK];  // value 128n + 32c + l
    for (int n = 0; n < 2; n++)
      for (int l = 0; l < 32; l++) {
        const uint8_t* ql = b.ql + 64 * n;
        const uint8_t h = b.qh[32 * n + l];
        q[128 * n + l] = uint8_t((ql[l] & 0x0f) | ((h & 3) << 4));
        q[128 * n + 32 + l] = uint8_t((ql[l + 32] & 0x0f) | (((h >> 2) & 3) << 4));
        q[128 * n + 64 + l] = uint8_t((ql[l] >> 4) | (((h >> 4) & 3) << 4));
        q[128 * n + 96 + l] = uint8_t((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4));
      }
    const float d = f16_to_f32(b.d);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      const float dd = x.d * d;
      for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int v = 0; v < 8; v++) {  // values 32v + 4l .. 32v + 4l + 3, sub-block 2v + l / 4
          int32_t p = 0;
          for (int e = 32 * v + 4 * l; e < 32 * v + 4 * l + 4; e++) p += int32_t(q[e]) * int32_t(x.qs[e]);
          s += int32_t(b.scales[2 * v + l / 4]) * p;
        }
        s -= 32 * (int32_t(b.scales[2 * l]) * x.bsums[2 * l] + int32_t(b.scales[2 * l + 1]) * x.bsums[2 * l + 1]);
        acc[t][l] = std::fma(dd, float(s), acc[t][l]);
      }
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = lanes_sum(acc[t]);
}

#if defined(__x86_64__)

// The 8 lanes' offsets: 32 * (sc[2l] bsums[2l] + sc[2l+1] bsums[2l+1]).
FUSELM_AVX2 FUSELM_INLINE __m256i offsets(__m256i sc16, const BlockQ8_K& x) {
  return _mm256_slli_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums))), 5);
}

// The superblock's 256 values as 8 vectors of 32 (vector 4n + c holds values 128n + 32c ..).
FUSELM_AVX2 FUSELM_INLINE void unpack_q6(const BlockQ6_K& b, __m256i q[8]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30);
  for (int n = 0; n < 2; n++) {
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * n));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * n + 32));
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * n));
    // bits 2c..2c+1 of h moved to bits 4..5 (16-bit shifts; the mask keeps each byte's own bits)
    q[4 * n + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m2));
    q[4 * n + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m2));
    q[4 * n + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(h, m2));
    q[4 * n + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(h, 2), m2));
  }
}

template <int TT>
FUSELM_AVX2 void tile_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockQ6_K& b = reinterpret_cast<const BlockQ6_K*>(w)[i];
    __m256i q[8], scv[8];
    unpack_q6(b, q);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    for (int v = 0; v < 8; v++)  // vector v covers sub-blocks 2v, 2v + 1
      scv[v] = _mm256_setr_m128i(_mm_set1_epi16(b.scales[2 * v]), _mm_set1_epi16(b.scales[2 * v + 1]));
    const float d = _cvtsh_ss(b.d);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      __m256i s = _mm256_setzero_si256();
      for (int v = 0; v < 8; v++) {
        const __m256i p = _mm256_maddubs_epi16(q[v], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * v)));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, scv[v]));
      }
      s = _mm256_sub_epi32(s, offsets(sc16, x));
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(x.d * d), _mm256_cvtepi32_ps(s), acc[t]);
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(acc[t]);
}

// AVX-512 VNNI: 64 values per vector, straight from the stored layout. Values 128n + 64h .. + 63
// take the low (h = 0) or high (h = 1) nibbles of ql[64n .. 64n + 63], one 512-bit load, and
// bits 4h .. 4h + 3 of qh[32n .. 32n + 31] broadcast to both halves: bits 4h + 0..1 in the lower
// half, 4h + 2..3 in the upper, rotated into bits 4-5 of each byte. Sub-blocks are 16 values, one
// per 128-bit lane. vpdpbusd gives each lane's sum of 4 products (|sum| <= 4 * 63 * 127 fits
// int16); vectors 2n and 2n + 1 are joined as the low and high int16 of each int32 lane and one
// vpdpwssd multiplies them by their scales (sub-blocks 8n + k and 8n + 4 + k in 128-bit lane k,
// one byte shuffle of the int16 scales) and adds, as in matmul_q4_k.cc. Up to 8 tokens a tile.
template <int TT>
FUSELM_AVX512VNNI void tile_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQK;
  const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(0x30);
  // rotate left by 4 - k (mod 64) takes bits k, k + 1 of each byte to bits 4, 5 of that byte
  const __m512i rot[2] = {_mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2), _mm512_setr_epi64(0, 0, 0, 0, 62, 62, 62, 62)};
  // byte-shuffle indices that fill each int32 of 128-bit lane k with int16 scales (k, 4 + k) of a group of 8
  auto pick = [](int k) { return int64_t(0x0000000100000001ULL * (uint64_t(0x0100 + 0x0202 * k) | uint64_t(0x0100 + 0x0202 * (4 + k)) << 16)); };
  const __m512i sc_pick = _mm512_setr_epi64(pick(0), pick(0), pick(1), pick(1), pick(2), pick(2), pick(3), pick(3));
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockQ6_K& b = reinterpret_cast<const BlockQ6_K*>(w)[i];
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    __m512i q[4], scv[2];  // vector 2n + h: values 128n + 64h ..
    for (int n = 0; n < 2; n++) {
      const __m512i l = _mm512_loadu_si512(b.ql + 64 * n);
      const __m512i hq = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * n)));
      const __m512i lo[2] = {l, _mm512_srli_epi16(l, 4)};
      const __m512i sc8 = _mm512_broadcast_i32x4(n == 0 ? _mm256_castsi256_si128(sc16) : _mm256_extracti128_si256(sc16, 1));
      for (int h = 0; h < 2; h++) {
        const __m512i hi = _mm512_and_si512(_mm512_rolv_epi64(hq, rot[h]), m2);
        q[2 * n + h] = _mm512_ternarylogic_epi32(lo[h], m4, hi, 0xea);  // (a & b) | c
      }
      scv[n] = _mm512_shuffle_epi8(sc8, sc_pick);
    }
    const float d = _cvtsh_ss(b.d);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(xq + t * xs)[i];
      const __m512i z = _mm512_setzero_si512(), lo16 = _mm512_set1_epi32(0xffff);
      const __m512i p0 = _mm512_dpbusd_epi32(z, q[0], _mm512_loadu_si512(x.qs));
      const __m512i p1 = _mm512_dpbusd_epi32(z, q[1], _mm512_loadu_si512(x.qs + 64));
      const __m512i p2 = _mm512_dpbusd_epi32(z, q[2], _mm512_loadu_si512(x.qs + 128));
      const __m512i p3 = _mm512_dpbusd_epi32(z, q[3], _mm512_loadu_si512(x.qs + 192));
      const __m512i c01 = _mm512_ternarylogic_epi32(_mm512_slli_epi32(p1, 16), p0, lo16, 0xf8);  // a | (b & c)
      const __m512i c23 = _mm512_ternarylogic_epi32(_mm512_slli_epi32(p3, 16), p2, lo16, 0xf8);
      const __m512i s = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(z, c01, scv[0]), c23, scv[1]);
      __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
      s8 = _mm256_sub_epi32(s8, offsets(sc16, x));
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(x.d * d), _mm256_cvtepi32_ps(s8), acc[t]);
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(acc[t]);
}

using TileFn = void (*)(const uint8_t*, const uint8_t*, size_t, int64_t, float*, int64_t);

// VNNI tiles take up to 8 tokens, AVX2 up to 4.
template <bool Vnni>
void tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  static constexpr TileFn avx2[4] = {&tile_avx2<1>, &tile_avx2<2>, &tile_avx2<3>, &tile_avx2<4>};
  static constexpr TileFn vnni[8] = {&tile_vnni<1>, &tile_vnni<2>, &tile_vnni<3>, &tile_vnni<4>,
                                     &tile_vnni<5>, &tile_vnni<6>, &tile_vnni<7>, &tile_vnni<8>};
  (Vnni ? vnni : avx2)[TT - 1](w, xq, xs, K, y, ys);
}

#endif  // __x86_64__

}  // namespace

QuantKernel q6_k_kernel(Impl impl) {
#if defined(__x86_64__)
  if (impl == Impl::kAvx512 && cpu_features().avx512vnni) return {QAct::Q8_K, &tile_x86<true>, 8};
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2) return {QAct::Q8_K, &tile_x86<false>};
#endif
  return {QAct::Q8_K, &tile_ref};
}

}  // namespace fuselm
