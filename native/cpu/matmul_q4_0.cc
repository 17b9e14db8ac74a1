// The legacy 32-value formats dotted with Q8_0 activations (the f16-rounded scale of matmul.cc's
// q8_0 path, as llama.cpp's block_q8_0): Q4_0 (nibble - 8), Q5_0 (5 bits - 16) and IQ4_NL (a
// nibble through the non-linear grid). Each block's values are unpacked to signed int8 w; in the
// lane scheme of matmul_quant.h with 32-value blocks, lane l of a block = sum over bytes
// 4l..4l+3 of w * x, exact in int32, and acc_l = fma(dw * dx, float(lane), acc_l) block after
// block; the lanes summed once per output.
// AVX2: |w| (unsigned) times x with w's sign by maddubs (|pair| <= 127 * 127 * 2 fits int16),
// pairs by madd; AVX-512 VNNI: the same operands through vpdpbusd.
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
template <> struct Legacy<DType::Q4_0> { using Block = BlockQ4_0; };
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
    if constexpr (DT == DType::Q4_0) {
      w[j] = lo - 8;
      w[j + 16] = hi - 8;
    } else if constexpr (DT == DType::Q5_0 || DT == DType::Q5_1) {
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
  if constexpr (DT == DType::Q4_0) {
    return _mm256_sub_epi8(n, _mm256_set1_epi8(8));
  } else if constexpr (DT == DType::Q4_1) {
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

// One block for TT tokens into accumulator set acc (AVX2: maddubs + madd; VNNI: vpdpbusd).
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
#define FUSELM_LEGACY_TILE(TARGET, NAME, STEP)                                                              \
  template <DType DT, int TT>                                                                              \
  TARGET void NAME(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {      \
    using B = typename Legacy<DT>::Block;                                                                  \
    const int64_t nb = K / kQ32;                                                                           \
    __m256 acc0[TT], acc1[TT];                                                                             \
    float mins[TT] = {};                                                                                   \
    for (int t = 0; t < TT; t++) acc0[t] = acc1[t] = _mm256_setzero_ps();                                  \
    const B* blocks = reinterpret_cast<const B*>(w);                                                       \
    int64_t i = 0;                                                                                         \
    for (; i + 2 <= nb; i += 2) {                                                                          \
      STEP<DT, TT>(blocks[i], xq, xs, i, acc0, mins);                                                      \
      STEP<DT, TT>(blocks[i + 1], xq, xs, i + 1, acc1, mins);                                              \
    }                                                                                                      \
    if (i < nb) STEP<DT, TT>(blocks[i], xq, xs, i, acc0, mins);                                            \
    for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(_mm256_add_ps(acc0[t], acc1[t])) + mins[t];    \
  }
FUSELM_LEGACY_TILE(FUSELM_AVX2, tile_avx2, step_avx2)
FUSELM_LEGACY_TILE(FUSELM_AVX512VNNI, tile_vnni, step_vnni)
#undef FUSELM_LEGACY_TILE

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
  if (impl == Impl::kAvx512 && cpu_features().avx512vnni) return {act, &tile_x86<DT, true>};
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2) return {act, &tile_x86<DT, false>};
#endif
  return {act, &tile_ref<DT>};
}

}  // namespace

QuantKernel legacy_q8_0_kernel(DType dt, Impl impl) {
  switch (dt) {
    case DType::Q4_0: return kernel<DType::Q4_0>(impl);
    case DType::Q5_0: return kernel<DType::Q5_0>(impl);
    case DType::IQ4_NL: return kernel<DType::IQ4_NL>(impl);
    case DType::Q4_1: return kernel<DType::Q4_1>(impl);
    case DType::Q5_1: return kernel<DType::Q5_1>(impl);
    default: return {QAct::Q8_0, nullptr};
  }
}

}  // namespace fuselm
