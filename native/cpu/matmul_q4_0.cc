// The legacy 32-value formats dotted with Q8_0 activations (the f16-rounded scale of matmul.cc's
// q8_0 path, as llama.cpp's block_q8_0): Q5_0 (5 bits - 16) and IQ4_NL (a nibble through the
// non-linear grid); Q4_0 itself runs in llama.cpp's repacked order (matmul_q4_0_blocksum.cc).
// Each block's values are unpacked to signed int8 w; in the
// lane scheme of matmul_quant.h with 32-value blocks, lane l of a block = sum over bytes
// 4l..4l+3 of w * x, exact in int32, and acc_l = fma(dw * dx, float(lane), acc_l) block after
// block; the lanes summed once per output.
// AVX2: |w| (unsigned) times x with w's sign by maddubs (|pair| <= 127 * 127 * 2 fits int16),
// pairs by madd; AVX-512 VNNI: two blocks per 512-bit vpdpbusd (tile_vnni), and the rows tile
// (rows_vnni: 4 rows x up to 4 tokens, the same bits) that prefill and decode use first.
//
// Q4_1 and Q5_1 (x = d q + m, q unsigned) go with Q8_1 activations, as in llama.cpp: the lanes
// hold q · x, and the offset adds m * s per block (s = dx * sum(x's q), with the Q8_1 block) in a
// scalar f32 fma chain, added to the lanes' sum at the end.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {
namespace {

template <DType DT> struct Legacy;
template <> struct Legacy<DType::Q5_0> { using Block = BlockQ5_0; };
template <> struct Legacy<DType::IQ4_NL> { using Block = BlockIQ4_NL; };
template <> struct Legacy<DType::Q4_1> { using Block = BlockQ4_1; };
template <> struct Legacy<DType::Q5_1> { using Block = BlockQ5_1; };

// The block's 32 values as signed integers (value j: low nibble of qs[j] for j < 16, high
// nibble of qs[j - 16] after).
template <DType DT>
void values_ref(const typename Legacy<DT>::Block& b, int32_t w[32]) {
  for (int j = 0; j < 16; j++) {
    const int lo = b.qs[j] & 0x0f, hi = b.qs[j] >> 4;
    if constexpr (DT == DType::Q5_0 || DT == DType::Q5_1) {
      uint32_t qh;
      std::memcpy(&qh, b.qh, 4);
      const int off = DT == DType::Q5_0 ? 16 : 0;
      w[j] = (lo | int((qh >> j) & 1) << 4) - off;
      w[j + 16] = (hi | int((qh >> (j + 16)) & 1) << 4) - off;
    } else if constexpr (DT == DType::Q4_1) {
      w[j] = lo;
      w[j + 16] = hi;
    } else {
      w[j] = kIq4nlValues[lo];
      w[j + 16] = kIq4nlValues[hi];
    }
  }
}

// Q4_1 and Q5_1 carry a min and take Q8_1 activations.
template <DType DT>
constexpr bool kWithMin = DT == DType::Q4_1 || DT == DType::Q5_1;
template <DType DT>
using ActOf = std::conditional_t<kWithMin<DT>, BlockQ8_1x, BlockQ8_0x>;

template <DType DT>
void tile_ref(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  using B = typename Legacy<DT>::Block;
  const int64_t nb = K / kQ32;
  float acc[4][2][8] = {}, mins[4] = {};  // [token][block parity][lane]
  for (int64_t i = 0; i < nb; i++) {
    const B& b = reinterpret_cast<const B*>(w)[i];
    int32_t q[32];
    values_ref<DT>(b, q);
    const float d = f16_to_f32(b.d);
    for (int t = 0; t < TT; t++) {
      const ActOf<DT>& x = reinterpret_cast<const ActOf<DT>*>(xq + t * xs)[i];
      const float dd = d * x.d;
      for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int e = 4 * l; e < 4 * l + 4; e++) s += q[e] * int32_t(x.qs[e]);
        acc[t][i & 1][l] = std::fma(dd, float(s), acc[t][i & 1][l]);
      }
      if constexpr (kWithMin<DT>) mins[t] = std::fma(f16_to_f32(b.m), x.s, mins[t]);
    }
  }
  for (int t = 0; t < TT; t++) {
    float v[8];
    for (int l = 0; l < 8; l++) v[l] = acc[t][0][l] + acc[t][1][l];
    y[t * ys] = lanes_sum(v) + mins[t];
  }
}

#if defined(__x86_64__)

// The block's 32 values as signed bytes (Q4_1, Q5_1: unsigned, below 32).
template <DType DT>
FUSELM_AVX2 FUSELM_INLINE __m256i values(const typename Legacy<DT>::Block& b) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
  const __m256i n = _mm256_and_si256(_mm256_setr_m128i(v, _mm_srli_epi16(v, 4)), _mm256_set1_epi8(0x0f));
  if constexpr (DT == DType::Q4_1) {
    return n;
  } else if constexpr (DT == DType::Q5_0 || DT == DType::Q5_1) {
    // byte j takes byte j / 8 of qh, keeps its bit j % 8, and becomes 0x10 where it is set
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(int32_t(qh)),
                                               _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    const __m256i q = _mm256_or_si256(n, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    return DT == DType::Q5_0 ? _mm256_sub_epi8(q, _mm256_set1_epi8(16)) : q;
  } else {
    const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
    return _mm256_shuffle_epi8(grid, n);
  }
}

// One block for TT tokens into accumulator set acc (AVX2: maddubs + madd; VNNI: vpdpbusd, for
// the odd last block of tile_vnni).
#define FUSELM_LEGACY_BLOCK_STEP(TARGET, NAME, PRODUCTS)                                                          \
  template <DType DT, int TT>                                                                                      \
  TARGET FUSELM_INLINE void NAME(const typename Legacy<DT>::Block& b, const uint8_t* xq, size_t xs, int64_t i,   \
                                 __m256* acc, float* mins) {                                                       \
    const __m256i q = values<DT>(b);                                                                               \
    const __m256i aq = _mm256_sign_epi8(q, q);                                                                     \
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b.d));                                                               \
    for (int t = 0; t < TT; t++) {                                                                                 \
      const ActOf<DT>& x = reinterpret_cast<const ActOf<DT>*>(xq + t * xs)[i];                                     \
      const __m256i sx = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs)), q);         \
      const __m256i p = PRODUCTS;                                                                                  \
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&x.d)), _mm256_cvtepi32_ps(p), acc[t]);        \
      if constexpr (kWithMin<DT>) mins[t] = std::fma(_cvtsh_ss(b.m), x.s, mins[t]);                               \
    }                                                                                                              \
  }
FUSELM_LEGACY_BLOCK_STEP(FUSELM_AVX2, step_avx2, _mm256_madd_epi16(_mm256_maddubs_epi16(aq, sx), _mm256_set1_epi16(1)))
FUSELM_LEGACY_BLOCK_STEP(FUSELM_AVX512VNNI, step_vnni, _mm256_dpbusd_epi32(_mm256_setzero_si256(), aq, sx))
#undef FUSELM_LEGACY_BLOCK_STEP

// Blocks alternate between two accumulator sets (the reference's block parity), so one fma's
// latency does not hold up the next block.
template <DType DT, int TT>
FUSELM_AVX2 void tile_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  using B = typename Legacy<DT>::Block;
  const int64_t nb = K / kQ32;
  __m256 acc0[TT], acc1[TT];
  float mins[TT] = {};
  for (int t = 0; t < TT; t++) acc0[t] = acc1[t] = _mm256_setzero_ps();
  const B* blocks = reinterpret_cast<const B*>(w);
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    step_avx2<DT, TT>(blocks[i], xq, xs, i, acc0, mins);
    step_avx2<DT, TT>(blocks[i + 1], xq, xs, i + 1, acc1, mins);
  }
  if (i < nb) step_avx2<DT, TT>(blocks[i], xq, xs, i, acc0, mins);
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(_mm256_add_ps(acc0[t], acc1[t])) + mins[t];
}

// Two blocks' 32 values in the two 256-bit halves. The nibble formats shift one 256-bit load of both blocks' nibbles
// into place (halves [low, high] of each block's 16 bytes).
template <DType DT>
FUSELM_AVX512VNNI FUSELM_INLINE __m512i values_pair(const typename Legacy<DT>::Block& b0, const typename Legacy<DT>::Block& b1) {
  if constexpr (DT == DType::Q4_1 || DT == DType::IQ4_NL) {
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0.qs))),
                                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(b1.qs)), 1);
    const __m512i dup = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), _mm512_castsi256_si512(both));
    const __m512i n = _mm512_and_si512(_mm512_srlv_epi64(dup, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)), _mm512_set1_epi8(0x0f));
    if constexpr (DT == DType::Q4_1) return n;
    return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues))), n);
  } else {
    return _mm512_inserti64x4(_mm512_castsi256_si512(values<DT>(b0)), values<DT>(b1), 1);
  }
}

// The int32 lanes of w · x for values_pair's w: vpdpbusd multiplies unsigned w by signed x, so
// Q4_1 and Q5_1 (unsigned) need nothing, and the signed
// formats multiply |w| by x with w's sign (x negated where w < 0; neg: w's sign bits).
template <DType DT>
FUSELM_AVX512VNNI FUSELM_INLINE __m512i dots_pair(__m512i w, __m512i aw, __mmask64 neg, __m512i x) {
  const __m512i zero = _mm512_setzero_si512();
  if constexpr (kWithMin<DT>)
    return _mm512_dpbusd_epi32(zero, w, x);
  else
    return _mm512_dpbusd_epi32(zero, aw, _mm512_mask_sub_epi8(x, neg, zero, x));
}

// AVX-512 VNNI: blocks in pairs, the even block in the lower 256-bit half of each vector and the
// odd one in the upper, which are the reference's two accumulator sets (block parity); a
// trailing odd block goes to the lower half.
template <DType DT, int TT>
FUSELM_AVX512VNNI void tile_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  using B = typename Legacy<DT>::Block;
  const int64_t nb = K / kQ32;
  const B* blocks = reinterpret_cast<const B*>(w);
  const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  __m512 acc[TT];
  float mins[TT] = {};
  for (int t = 0; t < TT; t++) acc[t] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const B& b0 = blocks[i];
    const B& b1 = blocks[i + 1];
    const __m512i q = values_pair<DT>(b0, b1);
    [[maybe_unused]] __m512i aq;
    [[maybe_unused]] __mmask64 neg = 0;
    if constexpr (!kWithMin<DT>) {
      aq = _mm512_abs_epi8(q);
      neg = _mm512_movepi8_mask(q);
    }
    const __m128 dw = _mm_cvtph_ps(_mm_unpacklo_epi16(_mm_cvtsi32_si128(b0.d), _mm_cvtsi32_si128(b1.d)));  // d0, d1
    for (int t = 0; t < TT; t++) {
      const ActOf<DT>* x = reinterpret_cast<const ActOf<DT>*>(xq + t * xs) + i;
      const __m512i xv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[0].qs))),
                                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[1].qs)), 1);
      const __m512i p = dots_pair<DT>(q, aq, neg, xv);
      const __m128 dd = _mm_mul_ps(dw, _mm_unpacklo_ps(_mm_load_ss(&x[0].d), _mm_load_ss(&x[1].d)));  // d0 dx0, d1 dx1
      acc[t] = _mm512_fmadd_ps(_mm512_permutexvar_ps(halves, _mm512_castps128_ps512(dd)), _mm512_cvtepi32_ps(p), acc[t]);
      if constexpr (kWithMin<DT>) {
        mins[t] = std::fma(_cvtsh_ss(b0.m), x[0].s, mins[t]);
        mins[t] = std::fma(_cvtsh_ss(b1.m), x[1].s, mins[t]);
      }
    }
  }
  __m256 acc0[TT], acc1[TT];
  for (int t = 0; t < TT; t++) {
    acc0[t] = _mm512_castps512_ps256(acc[t]);
    acc1[t] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[t]), 1));
  }
  if (i < nb) step_vnni<DT, TT>(blocks[i], xq, xs, i, acc0, mins);
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(_mm256_add_ps(acc0[t], acc1[t])) + mins[t];
}

// The rows tile (matmul_quant.h's QuantRowsFn), AVX-512 VNNI: R rows x TT tokens, each (row,
// token) in tile_vnni's accumulator layout and order, so the same bits. Every format's values go
// in unsigned, w + kOffset (0..255), so one vpdpbusd starting from c = -kOffset * (x's sums of 4)
// gives tile_vnni's lanes; c, x and dx are made once per token for all R rows, the unpacked
// values and dw once per row for all TT tokens. Per (row, token) of a block pair that leaves
// vpdpbusd, the int-to-float conversion, dw * dx and the fma.
template <DType DT>
constexpr int kOffset = DT == DType::Q5_0 ? 16 : DT == DType::IQ4_NL ? 128 : 0;

template <DType DT, int R, int TT>
FUSELM_AVX512VNNI void rows_vnni(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, float* y,
                                 int64_t yr, int64_t ys) {
  using B = typename Legacy<DT>::Block;
  static_assert(sizeof(ActOf<DT>) % 4 == 0 && sizeof(ActOf<DT>) <= 60 && 2 * sizeof(B) >= 32 && sizeof(B) % 2 == 0);
  const int64_t nb = K / kQ32;
  // A pair's two scales, each to 8 lanes, straight from the bytes: dw from the 32 bytes at b0 (b1.d
  // is 16-bit word sizeof(B) / 2), dx from the 64 at x[0] (x[1].d is float sizeof(ActOf) / 4).
  const __m256i dw_at = _mm256_setr_epi16(0, 0, 0, 0, 0, 0, 0, 0, sizeof(B) / 2, sizeof(B) / 2, sizeof(B) / 2, sizeof(B) / 2,
                                          sizeof(B) / 2, sizeof(B) / 2, sizeof(B) / 2, sizeof(B) / 2);
  const int xd1 = int(sizeof(ActOf<DT>) / 4);
  const __m512i dx_at = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, xd1, xd1, xd1, xd1, xd1, xd1, xd1, xd1);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i off = _mm512_set1_epi8(char(kOffset<DT>));
  __m512 acc[R][TT];
  float mins[R][TT] = {};
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) acc[r][t] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    __m512i xv[TT], c[TT];
    __m512 dx[TT];
    for (int t = 0; t < TT; t++) {
      const ActOf<DT>* x = reinterpret_cast<const ActOf<DT>*>(xq + t * xs) + i;
      xv[t] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[0].qs))),
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[1].qs)), 1);
      c[t] = kOffset<DT> ? _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, off, xv[t])) : zero;
      dx[t] = _mm512_permutexvar_ps(dx_at, _mm512_loadu_ps(&x[0].d));  // the two blocks' d in 64 bytes
    }
    for (int r = 0; r < R; r++) {
      const B& b0 = reinterpret_cast<const B*>(w + size_t(r) * ws)[i];
      const B& b1 = reinterpret_cast<const B*>(w + size_t(r) * ws)[i + 1];
      prefetch_ahead(&b0);
      const __m512i q = _mm512_add_epi8(values_pair<DT>(b0, b1), off);
      const __m512 dw = _mm512_cvtph_ps(_mm256_permutexvar_epi16(dw_at, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&b0))));
      for (int t = 0; t < TT; t++) {
        const __m512i p = _mm512_dpbusd_epi32(c[t], q, xv[t]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx[t]), _mm512_cvtepi32_ps(p), acc[r][t]);
        if constexpr (kWithMin<DT>) {
          const ActOf<DT>* x = reinterpret_cast<const ActOf<DT>*>(xq + t * xs) + i;
          mins[r][t] = std::fma(_cvtsh_ss(b0.m), x[0].s, mins[r][t]);
          mins[r][t] = std::fma(_cvtsh_ss(b1.m), x[1].s, mins[r][t]);
        }
      }
    }
  }
  if (i < nb) {  // an odd last block: the lower halves (even parity) only
    for (int t = 0; t < TT; t++) {
      const ActOf<DT>& x = reinterpret_cast<const ActOf<DT>*>(xq + t * xs)[i];
      const __m512i xv = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs)));
      const __m512i c = kOffset<DT> ? _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, off, xv)) : zero;
      for (int r = 0; r < R; r++) {
        const B& b = reinterpret_cast<const B*>(w + size_t(r) * ws)[i];
        const __m512i q = _mm512_zextsi256_si512(_mm256_add_epi8(values<DT>(b), _mm256_set1_epi8(char(kOffset<DT>))));
        const __m512i p = _mm512_dpbusd_epi32(c, q, xv);
        acc[r][t] = _mm512_mask3_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(b.d) * x.d), _mm512_cvtepi32_ps(p), acc[r][t], 0x00ff);
        if constexpr (kWithMin<DT>) mins[r][t] = std::fma(_cvtsh_ss(b.m), x.s, mins[r][t]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) {
      const __m256 lo = _mm512_castps512_ps256(acc[r][t]);
      const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r][t]), 1));
      y[t * ys + r * yr] = simd256::hsum(_mm256_add_ps(lo, hi)) + mins[r][t];
    }
}

template <DType DT>
void rows_x86(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t yr, int64_t ys) {
  using Fn = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, int64_t, float*, int64_t, int64_t);
  static constexpr Fn fns[4] = {&rows_vnni<DT, kTileRows, 1>, &rows_vnni<DT, kTileRows, 2>, &rows_vnni<DT, kTileRows, 3>,
                                &rows_vnni<DT, kTileRows, 4>};
  fns[TT - 1](w, ws, xq, xs, K, y, yr, ys);
}

using TileFn = void (*)(const uint8_t*, const uint8_t*, size_t, int64_t, float*, int64_t);

template <DType DT, bool Vnni>
void tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  static constexpr TileFn avx2[4] = {&tile_avx2<DT, 1>, &tile_avx2<DT, 2>, &tile_avx2<DT, 3>, &tile_avx2<DT, 4>};
  static constexpr TileFn vnni[4] = {&tile_vnni<DT, 1>, &tile_vnni<DT, 2>, &tile_vnni<DT, 3>, &tile_vnni<DT, 4>};
  (Vnni ? vnni : avx2)[TT - 1](w, xq, xs, K, y, ys);
}

#endif  // __x86_64__

template <DType DT>
QuantKernel kernel(Impl impl) {
  constexpr QAct act = kWithMin<DT> ? QAct::Q8_1 : QAct::Q8_0;
#if defined(__x86_64__)
  if (impl == Impl::kAvx512 && cpu_features().avx512vnni) return {act, &tile_x86<DT, true>, 4, &rows_x86<DT>};
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2) return {act, &tile_x86<DT, false>};
#endif
  return {act, &tile_ref<DT>};
}

}  // namespace

QuantKernel legacy_q8_0_kernel(DType dt, Impl impl) {
  switch (dt) {
    case DType::Q5_0: return kernel<DType::Q5_0>(impl);
    case DType::IQ4_NL: return kernel<DType::IQ4_NL>(impl);
    case DType::Q4_1: return kernel<DType::Q4_1>(impl);
    case DType::Q5_1: return kernel<DType::Q5_1>(impl);
    default: return {QAct::Q8_0, nullptr};
  }
}

}  // namespace fuselm
