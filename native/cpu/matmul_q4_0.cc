// Q4_0 weights against Q8_0 activations (the f16-rounded scale of matmul.cc's q8_0 path, as
// llama.cpp's block_q8_0), in the lane scheme of matmul_quant.h with 32-value blocks: lane l
// of a block = sum over bytes 4l..4l+3 of (q - 8) * x, exact in int32, and
// acc_l = fma(dw * dx, float(lane), acc_l) block after block; the lanes summed once per output.
// AVX2: |q - 8| (unsigned) times x with q - 8's sign by maddubs, pairs by madd (as the q8_0
// path); AVX-512 VNNI: vpdpbusd on q (unsigned 0..15) from a start of -8 * (the lane's x sum).
#include <cmath>
#include <cstring>

#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {
namespace {

void tile_ref(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  const int64_t nb = K / kQ32;
  float acc[4][8] = {};
  for (int64_t i = 0; i < nb; i++) {
    const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(w)[i];
    int32_t q[32];
    for (int j = 0; j < 16; j++) {
      q[j] = (b.qs[j] & 0x0f) - 8;
      q[j + 16] = (b.qs[j] >> 4) - 8;
    }
    const float d = f16_to_f32(b.d);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_0x& x = reinterpret_cast<const BlockQ8_0x*>(xq + t * xs)[i];
      const float dd = d * x.d;
      for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int e = 4 * l; e < 4 * l + 4; e++) s += q[e] * int32_t(x.qs[e]);
        acc[t][l] = std::fma(dd, float(s), acc[t][l]);
      }
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = lanes_sum(acc[t]);
}

#if defined(__x86_64__)

// A block's 32 values as unsigned bytes 0..15 (low nibbles: values 0..15, high: 16..31).
FUSELM_AVX2 FUSELM_INLINE __m256i unpack_q4(const BlockQ4_0& b) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
  const __m256i both = _mm256_setr_m128i(v, _mm_srli_epi16(v, 4));
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

template <int TT>
FUSELM_AVX2 void tile_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQ32;
  const __m256i ones = _mm256_set1_epi16(1), eight = _mm256_set1_epi8(8);
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(w)[i];
    const __m256i q = _mm256_sub_epi8(unpack_q4(b), eight);  // -8..7
    const __m256i aq = _mm256_sign_epi8(q, q);
    const float d = _cvtsh_ss(b.d);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_0x& x = reinterpret_cast<const BlockQ8_0x*>(xq + t * xs)[i];
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(xv, q)), ones);
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d), _mm256_cvtepi32_ps(p), acc[t]);
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(acc[t]);
}

template <int TT>
FUSELM_AVX512VNNI void tile_vnni(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const int64_t nb = K / kQ32;
  const __m256i eight = _mm256_set1_epi8(8);
  __m256 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(w)[i];
    const __m256i q = unpack_q4(b);
    const float d = _cvtsh_ss(b.d);
    for (int t = 0; t < TT; t++) {
      const BlockQ8_0x& x = reinterpret_cast<const BlockQ8_0x*>(xq + t * xs)[i];
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
      const __m256i c = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, xv));
      const __m256i p = _mm256_dpbusd_epi32(c, q, xv);
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d), _mm256_cvtepi32_ps(p), acc[t]);
    }
  }
  for (int t = 0; t < TT; t++) y[t * ys] = simd256::hsum(acc[t]);
}

template <bool Vnni>
void tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  constexpr auto f1 = Vnni ? &tile_vnni<1> : &tile_avx2<1>;
  constexpr auto f2 = Vnni ? &tile_vnni<2> : &tile_avx2<2>;
  constexpr auto f3 = Vnni ? &tile_vnni<3> : &tile_avx2<3>;
  constexpr auto f4 = Vnni ? &tile_vnni<4> : &tile_avx2<4>;
  switch (TT) {
    case 1: return f1(w, xq, xs, K, y, ys);
    case 2: return f2(w, xq, xs, K, y, ys);
    case 3: return f3(w, xq, xs, K, y, ys);
    default: return f4(w, xq, xs, K, y, ys);
  }
}

#endif  // __x86_64__

}  // namespace

QuantKernel q4_0_kernel(Impl impl) {
#if defined(__x86_64__)
  if (impl == Impl::kAvx512 && cpu_features().avx512vnni) return {QAct::Q8_0, &tile_x86<true>};
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2) return {QAct::Q8_0, &tile_x86<false>};
#endif
  return {QAct::Q8_0, &tile_ref};
}

}  // namespace fuselm
