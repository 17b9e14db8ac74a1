// Q4_0 weights dotted with Q8_0 activations in the order of llama.cpp's repacked Q4_0 (what it
// runs on x86 from AVX2 up): one f32 accumulator per output, and per 32-value block
//   acc = fma(float(sumi), dw * dx, acc),  sumi = sum over the block of (nibble - 8) * x (exact int32).
// So the outputs are llama.cpp's bits, not only its tokens. Unlike the lane order of the rest of
// the family (matmul_q4_0.cc), a whole block's sum is one number, which lets a vector lane be a
// weight row: the float work falls from 8 lanes per (row, token, block) to one.
// - reference: the loops as written.
// - AVX2 (one row, 4 tokens at a time): maddubs + madd per token, the 4 tokens' lanes reduced
//   together by hadd, converted and accumulated as one 4-lane vector.
// - AVX-512 VNNI (rows16: 16 rows x up to 16 tokens): each block of the 16 rows is transposed in
//   registers so lane j is row j (vector k holds the rows' values 4k..4k+3, nibbles unsigned);
//   per token, 8 vpdpbusd against x's bytes 4k..4k+3 broadcast, started from x's offset term
//   -8 * sum(x) (BlockQ8_0off), give the 16 rows' sumi. The transpose is made once per block for
//   all the tokens, so per (16 rows, token, block) it is 8 vpdpbusd, a conversion, dw * dx and an fma.
//   Under 4 tokens (decode) rows4_vnni reads the stored layout 4 rows at a time instead.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <utility>

#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {
namespace {

using X = BlockQ8_0off;

int32_t block_dot_ref(const BlockQ4_0& b, const X& x) {
  int32_t s = 0;
  for (int j = 0; j < 16; j++) s += ((b.qs[j] & 0x0f) - 8) * x.qs[j] + ((b.qs[j] >> 4) - 8) * x.qs[j + 16];
  return s;
}

void tile_ref(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(w);
  for (int t = 0; t < TT; t++) {
    const X* x = reinterpret_cast<const X*>(xq + t * xs);
    float acc = 0;
    for (int64_t i = 0; i < K / kQ32; i++) {
      const float d = f16_to_f32(b[i].d) * x[i].d;
      acc = std::fma(float(block_dot_ref(b[i], x[i])), d, acc);
    }
    y[t * ys] = acc;
  }
}

#if defined(__x86_64__)

// One row against TT <= 4 tokens, the tokens in the lanes of one 4-float accumulator.
template <int TT>
FUSELM_AVX2 void tile4_avx2(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t ys) {
  const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(w);
  const __m256i ones = _mm256_set1_epi16(1);
  __m128 acc = _mm_setzero_ps();
  for (int64_t i = 0; i < K / kQ32; i++) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
    const __m256i n = _mm256_and_si256(_mm256_setr_m128i(v, _mm_srli_epi16(v, 4)), _mm256_set1_epi8(0x0f));
    const __m256i q = _mm256_sub_epi8(n, _mm256_set1_epi8(8));
    const __m256i aq = _mm256_sign_epi8(q, q);
    __m256i p[4];
    float dx[4] = {};
    for (int t = 0; t < 4; t++) {
      if (t < TT) {
        const X& x = reinterpret_cast<const X*>(xq + t * xs)[i];
        const __m256i sx = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs)), q);
        p[t] = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, sx), ones);
        dx[t] = x.d;
      } else {
        p[t] = _mm256_setzero_si256();
      }
    }
    // [t0 t1 t2 t3] partial sums in each 128-bit half, then the halves added: each token's sumi
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    const __m128 d = _mm_mul_ps(_mm_set1_ps(_cvtsh_ss(b[i].d)), _mm_loadu_ps(dx));
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(s), d, acc);
  }
  float out[4];
  _mm_storeu_ps(out, acc);
  for (int t = 0; t < TT; t++) y[t * ys] = out[t];
}

// The tile for any TT (up to the kernel's max_tokens), 4 tokens at a time.
void tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  using Fn = void (*)(const uint8_t*, const uint8_t*, size_t, int64_t, float*, int64_t);
  static constexpr Fn fns[4] = {&tile4_avx2<1>, &tile4_avx2<2>, &tile4_avx2<3>, &tile4_avx2<4>};
  for (int t = 0; t < TT; t += 4) fns[std::min(4, TT - t) - 1](w, xq + t * xs, xs, K, y + t * ys, ys);
}

constexpr int kRows16 = 16;
constexpr int kRows16Tokens = 16;
constexpr int kRows16MinTokens = 4;  // fewer tokens take rows4_vnni

template <int TT>
FUSELM_AVX512VNNI void rows16_vnni(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, float* y,
                                   int64_t yr, int64_t ys) {
  const int64_t nb = K / kQ32;
  const __m512i lo4 = _mm512_set1_epi8(0x0f);
  __m512 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t* b0 = w + size_t(i) * sizeof(BlockQ4_0);
    if ((i & 3) == 0)
      for (int r = 0; r < kRows16; r++) prefetch_ahead(b0 + r * ws);
    // L[m]: 128-bit lane p holds row m + 4p's 16 bytes of nibbles; a 4x4 dword transpose in
    // each lane then gives R[k], lane j = row j's bytes 4k..4k+3
    __m512i L[4];
    for (int m = 0; m < 4; m++) {
      auto qs = [&](int r) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + r * ws + offsetof(BlockQ4_0, qs))); };
      L[m] = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(qs(m)), qs(m + 4), 1), qs(m + 8), 2),
                                qs(m + 12), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(L[0], L[1]), t1 = _mm512_unpackhi_epi32(L[0], L[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(L[2], L[3]), t3 = _mm512_unpackhi_epi32(L[2], L[3]);
    const __m512i R[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2), _mm512_unpacklo_epi64(t1, t3),
                          _mm512_unpackhi_epi64(t1, t3)};
    __m512i wv[8];  // wv[k]: the rows' values 4k..4k+3 (low nibbles of bytes 0..15, then the high ones)
    for (int k = 0; k < 4; k++) {
      wv[k] = _mm512_and_si512(R[k], lo4);
      wv[k + 4] = _mm512_and_si512(_mm512_srli_epi16(R[k], 4), lo4);
    }
    // the 16 rows' d through memory (vpgatherdd was slower here: 349 against 441 GFLOP/s prefill)
    alignas(32) uint16_t dh[kRows16];
    for (int r = 0; r < kRows16; r++) std::memcpy(&dh[r], b0 + r * ws, 2);
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dh)));
    for (int t = 0; t < TT; t++) {
      const X& x = reinterpret_cast<const X*>(xq + t * xs)[i];
      __m512i s = _mm512_set1_epi32(x.off);
      for (int k = 0; k < 8; k++) {
        int32_t xk;
        std::memcpy(&xk, x.qs + 4 * k, 4);
        s = _mm512_dpbusd_epi32(s, wv[k], _mm512_set1_epi32(xk));
      }
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(x.d)), acc[t]);
    }
  }
  alignas(64) float out[kRows16];
  for (int t = 0; t < TT; t++) {
    _mm512_store_ps(out, acc[t]);
    for (int r = 0; r < kRows16; r++) y[t * ys + r * yr] = out[r];
  }
}

// The 32 bytes at a, then the 32 at b.
FUSELM_AVX512VNNI FUSELM_INLINE __m512i bytes32x2(const void* a, const void* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(a))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(b)), 1);
}

// Few tokens (decode): the transpose would not pay, so 4 rows in the stored layout, two blocks
// per vpdpbusd (lanes 0-7 block i, 8-15 block i + 1), and each block's 8 lanes of the 4 rows
// summed by a transposing add tree: unpack 32-bit, unpack 64-bit, then the 128-bit lane pairs.
template <int TT>
FUSELM_AVX512VNNI void rows4_vnni(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, float* y,
                                  int64_t yr, int64_t ys) {
  const int64_t nb = K / kQ32;
  const __m512i lo4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
  __m128 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm_setzero_ps();
  auto row = [&](int r) { return reinterpret_cast<const BlockQ4_0*>(w + r * ws); };
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    __m512i wq[4];  // [block i's values 0..31 | block i + 1's], nibbles unsigned
    // the two blocks' d of rows 0..3 (16-bit words 0 and 9 of the 32 bytes at block i), picked
    // from two rows per vector by one word permute: d of block i for rows 0..3, then of block i + 1
    const __m512i d_at = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          57, 41, 25, 9, 48, 32, 16, 0);  // words 0..7, last first
    const __m256 dws = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(bytes32x2(row(0) + i, row(1) + i), d_at, bytes32x2(row(2) + i, row(3) + i))));
    for (int r = 0; r < 4; r++) {
      const BlockQ4_0* b = row(r) + i;
      prefetch_ahead(b);
      const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs))),
                                                   _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs)), 1);
      const __m512i dup = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), _mm512_castsi256_si512(both));
      wq[r] = _mm512_and_si512(_mm512_srlv_epi64(dup, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)), lo4);
    }
    const __m128 dw0 = _mm256_castps256_ps128(dws), dw1 = _mm256_extractf128_ps(dws, 1);
    for (int t = 0; t < TT; t++) {
      const X* x = reinterpret_cast<const X*>(xq + t * xs) + i;
      const __m512i xv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[0].qs))),
                                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[1].qs)), 1);
      __m512i p[4];
      for (int r = 0; r < 4; r++) p[r] = _mm512_dpbusd_epi32(zero, wq[r], xv);
      const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[0], p[1]), _mm512_unpackhi_epi32(p[0], p[1]));
      const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2], p[3]), _mm512_unpackhi_epi32(p[2], p[3]));
      __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));  // rows 0..3 per 128 bits
      s = _mm512_add_epi32(s, _mm512_shuffle_i32x4(s, s, _MM_SHUFFLE(2, 3, 0, 1)));  // 128-bit lanes 0: block i, 2: block i + 1
      const __m128i s0 = _mm_add_epi32(_mm512_castsi512_si128(s), _mm_set1_epi32(x[0].off));
      const __m128i s1 = _mm_add_epi32(_mm512_extracti32x4_epi32(s, 2), _mm_set1_epi32(x[1].off));
      acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(s0), _mm_mul_ps(dw0, _mm_set1_ps(x[0].d)), acc[t]);
      acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(s1), _mm_mul_ps(dw1, _mm_set1_ps(x[1].d)), acc[t]);
    }
  }
  if (i < nb)  // an odd last block
    for (int t = 0; t < TT; t++) {
      const X& x = reinterpret_cast<const X*>(xq + t * xs)[i];
      alignas(16) int32_t s[4];
      alignas(16) float dw[4];
      for (int r = 0; r < 4; r++) {
        s[r] = block_dot_ref(row(r)[i], x);
        dw[r] = _cvtsh_ss(row(r)[i].d);
      }
      acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(s))),
                            _mm_mul_ps(_mm_load_ps(dw), _mm_set1_ps(x.d)), acc[t]);
    }
  alignas(16) float out[4];
  for (int t = 0; t < TT; t++) {
    _mm_store_ps(out, acc[t]);
    for (int r = 0; r < 4; r++) y[t * ys + r * yr] = out[r];
  }
}

using Fn = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, int64_t, float*, int64_t, int64_t);

void rows4_x86(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t yr,
               int64_t ys) {
  static constexpr Fn fns[kRows16MinTokens - 1] = {&rows4_vnni<1>, &rows4_vnni<2>, &rows4_vnni<3>};
  fns[TT - 1](w, ws, xq, xs, K, y, yr, ys);
}

template <int... T>
constexpr auto rows16_table(std::integer_sequence<int, T...>) {
  return std::array<Fn, sizeof...(T)>{&rows16_vnni<T + 1>...};
}

void rows16_x86(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t yr,
                int64_t ys) {
  static constexpr auto fns = rows16_table(std::make_integer_sequence<int, kRows16Tokens>{});
  if (TT >= kRows16MinTokens) return fns[TT - 1](w, ws, xq, xs, K, y, yr, ys);
  for (int g = 0; g < kRows16; g += 4) rows4_x86(w + g * ws, ws, xq, xs, K, TT, y + g * yr, yr, ys);
}

#endif  // __x86_64__

}  // namespace

QuantKernel q4_0_kernel(Impl impl, int64_t T) {
#if defined(__x86_64__)
  // Decode reads 4 rows 16 apart per pass, as the rest of the family: 16 streams 4 rows apart
  // (rows16's) halved its speed (matmul decode q4_0 1x2048 · 5632x2048ᵀ 1t, same host, same
  // hour: 710-940 us against 285-530).
  if (impl == Impl::kAvx512 && cpu_features().avx512vnni)
    return T >= kRows16MinTokens ? QuantKernel{QAct::Q8_0Off, &tile_x86, kRows16Tokens, &rows16_x86, kRows16}
                                 : QuantKernel{QAct::Q8_0Off, &tile_x86, kRows16MinTokens - 1, &rows4_x86, 4};
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2) return {QAct::Q8_0Off, &tile_x86};
#endif
  return {QAct::Q8_0Off, &tile_ref};
}

}  // namespace fuselm
