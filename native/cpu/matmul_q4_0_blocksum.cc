// Q4_0 weights dotted with Q8_0 activations in the order of llama.cpp's repacked Q4_0 (what it
// runs on x86 from AVX2 up): one f32 accumulator per output, and per 32-value block
//   acc = fma(float(sumi), dw * dx, acc),  sumi = sum over the block of (nibble - 8) * x (exact int32).
// So the outputs are llama.cpp's bits, not only its tokens. Unlike the lane order of the rest of
// the family (matmul_q4_0.cc), a whole block's sum is one number, which lets a vector lane be a
// weight row: the float work falls from 8 lanes per (row, token, block) to one.
// - reference: the loops as written.
// - AVX2 prefill: 4 rows x 4 tokens (rows4_avx2), a lane per row; rows left over take one row x 4
//   tokens (maddubs + madd per token, the 4 tokens' lanes reduced together by hadd).
// - AVX-512 VNNI (rows16: 16 rows x up to 16 tokens): each block of the 16 rows is transposed in
//   registers so lane j is row j (vector k holds the rows' values 4k..4k+3, nibbles unsigned);
//   per token, 8 vpdpbusd against x's bytes 4k..4k+3 broadcast, started from x's offset term
//   -8 * sum(x) (BlockQ8_0off), give the 16 rows' sumi. The transpose is made once per block for
//   all the tokens, so per (16 rows, token, block) it is 8 vpdpbusd, a conversion, dw * dx and an fma.
// - Decode (under 4 tokens), AVX2 and AVX-512: 4 rows (16 apart in the stored layout) at a time,
//   against x in groups of 4 blocks (BlockQ8_0x4: each block's values 0..15, which the low
//   nibbles dot, apart from 16..31, which the high ones dot), so a row's bytes need no reordering
//   past one word permute (AVX-512: 4 blocks' qs packed into one vector; AVX2: 2 blocks) and the 4
//   rows' sums of all 4 blocks come out of one transposing add tree, lane 4b + r = row r's block b,
//   beside the rows' 16 d converted at once. The f32 steps stay one fma per block, in block order.
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
using X4 = BlockQ8_0x4;

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

// block j (of 4) of a group of the decode's activations, dotted as block_dot_ref
int32_t block_dot_x4(const BlockQ4_0& b, const X4& x, int j) {
  int32_t s = 0;
  for (int k = 0; k < 16; k++) s += ((b.qs[k] & 0x0f) - 8) * x.lo[16 * j + k] + ((b.qs[k] >> 4) - 8) * x.hi[16 * j + k];
  return s;
}

#if defined(__x86_64__)

// The decode tiles' blocks past the last whole group of 4, row by row (rows r < 4 at w + r * ws).
template <int TT>
FUSELM_AVX2 void decode_tail_avx2(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, __m128 acc[TT]) {
  const int64_t nb = K / kQ32, ng = nb / 4;
  for (int64_t i = 4 * ng; i < nb; i++)
    for (int t = 0; t < TT; t++) {
      const X4& x = reinterpret_cast<const X4*>(xq + t * xs)[ng];
      const int j = int(i - 4 * ng);
      alignas(16) int32_t s[4];
      alignas(16) float dw[4];
      for (int r = 0; r < 4; r++) {
        const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(w + r * ws)[i];
        s[r] = block_dot_x4(b, x, j);
        dw[r] = _cvtsh_ss(b.d);
      }
      acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(s))),
                            _mm_mul_ps(_mm_load_ps(dw), _mm_set1_ps(x.d[4 * j])), acc[t]);
    }
}

// The first `rows` of the 4 rows' outputs.
template <int TT>
FUSELM_AVX2 void decode_store(const __m128 acc[TT], int rows, float* y, int64_t yr, int64_t ys) {
  alignas(16) float out[4];
  for (int t = 0; t < TT; t++) {
    _mm_store_ps(out, acc[t]);
    for (int r = 0; r < rows; r++) y[t * ys + r * yr] = out[r];
  }
}

// p[r] holds row r's int32 lanes, 128-bit lane b summing block b: returns lane 4b + r = the
// sum of p[r]'s 128-bit lane b (unpack 32-bit, unpack 64-bit, adding at each step).
FUSELM_AVX2 FUSELM_INLINE __m256i rows_tree(const __m256i p[4]) {
  const __m256i s01 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[0], p[1]), _mm256_unpackhi_epi32(p[0], p[1]));
  const __m256i s23 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2], p[3]), _mm256_unpackhi_epi32(p[2], p[3]));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
}

// AVX2 decode: 4 rows x TT tokens, two blocks per 256-bit vector (the group's blocks 2h, 2h + 1);
// maddubs of the low and the high nibbles (unsigned, <= 15) by x (|pair| <= 3840, their sum fits
// int16), madd by ones into 4 lanes per block.
template <int TT>
FUSELM_AVX2 void decode4_avx2(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t yr,
                              int64_t ys, int rows) {
  const int64_t ng = K / kQ32 / 4;
  const __m256i lo4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  __m128 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm_setzero_ps();
  auto row = [&](int r) { return reinterpret_cast<const BlockQ4_0*>(w + r * ws); };
  for (int64_t g = 0; g < ng; g++) {
    for (int r = 0; r < 4; r++) {  // a group's 72 bytes: two lines ahead, so no line goes without
      prefetch_ahead(row(r) + 4 * g);
      prefetch_ahead(reinterpret_cast<const uint8_t*>(row(r) + 4 * g) + 64);
    }
    for (int h = 0; h < 2; h++) {
      const int64_t i = 4 * g + 2 * h;
      __m256i lo[4], hi[4];
      for (int r = 0; r < 4; r++) {
        const BlockQ4_0* b = row(r) + i;
        const __m256i v = _mm256_setr_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs)),
                                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs)));
        lo[r] = _mm256_and_si256(v, lo4);
        hi[r] = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo4);
      }
      const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16(row(0)[i].d, row(1)[i].d, row(2)[i].d, row(3)[i].d, row(0)[i + 1].d,
                                                       row(1)[i + 1].d, row(2)[i + 1].d, row(3)[i + 1].d));
      for (int t = 0; t < TT; t++) {
        const X4& x = reinterpret_cast<const X4*>(xq + t * xs)[g];
        const __m256i xl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.lo + 32 * h));
        const __m256i xh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.hi + 32 * h));
        __m256i p[4];
        for (int r = 0; r < 4; r++)
          p[r] = _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo[r], xl), _mm256_maddubs_epi16(hi[r], xh)), ones);
        const __m256i s = _mm256_add_epi32(rows_tree(p), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.off + 8 * h)));
        const __m256 fs = _mm256_cvtepi32_ps(s), dd = _mm256_mul_ps(dw, _mm256_loadu_ps(x.d + 8 * h));
        acc[t] = _mm_fmadd_ps(_mm256_castps256_ps128(fs), _mm256_castps256_ps128(dd), acc[t]);
        acc[t] = _mm_fmadd_ps(_mm256_extractf128_ps(fs, 1), _mm256_extractf128_ps(dd, 1), acc[t]);
      }
    }
  }
  decode_tail_avx2<TT>(w, ws, xq, xs, K, acc);
  decode_store<TT>(acc, rows, y, yr, ys);
}

// Word indices for _mm512_permutex2var_epi16 over a group's first 64 bytes (indices 0..31) and
// its 64 bytes from byte 8 on (32..63: word j there is the group's word j + 4). kQsWords: the 4
// blocks' qs (block b's at words 9b + 1 .. 9b + 8), 16 bytes each, in order. kDWords: block b's d
// (word 9b) of the first source at lanes 4b and 4b + 2, of the second at 4b + 1 and 4b + 3.
constexpr std::array<int16_t, 32> qs_words() {
  std::array<int16_t, 32> a{};
  for (int p = 0; p < 32; p++) {
    const int src = 9 * (p / 8) + 1 + p % 8;
    a[p] = int16_t(src < 32 ? src : 32 + src - 4);
  }
  return a;
}
constexpr std::array<int16_t, 32> d_words() {
  std::array<int16_t, 32> a{};
  for (int p = 0; p < 16; p++) a[p] = int16_t(9 * (p / 4) + (p % 2 ? 32 : 0));
  return a;
}
alignas(64) constexpr std::array<int16_t, 32> kQsWords = qs_words();
alignas(64) constexpr std::array<int16_t, 32> kDWords = d_words();

// AVX-512 VNNI decode: 4 rows x TT tokens, a group of 4 blocks per 512-bit vector; two vpdpbusd
// (low nibbles by values 0..15, high by 16..31) give 4 lanes per block.
template <int TT>
FUSELM_AVX512VNNI void decode4_vnni(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, float* y,
                                    int64_t yr, int64_t ys, int rows) {
  const int64_t ng = K / kQ32 / 4;
  const __m512i qs_idx = _mm512_load_si512(kQsWords.data()), d_idx = _mm512_load_si512(kDWords.data());
  const __m512i lo4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
  __m128 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm_setzero_ps();
  for (int64_t g = 0; g < ng; g++) {
    __m512i a[4], lo[4], hi[4];
    for (int r = 0; r < 4; r++) {
      const uint8_t* p = w + r * ws + size_t(g) * 4 * sizeof(BlockQ4_0);
      prefetch_ahead(p);  // a group's 72 bytes: two lines ahead, so no line goes without (+6 % decode)
      prefetch_ahead(p + 64);
      a[r] = _mm512_loadu_si512(p);
      const __m512i v = _mm512_permutex2var_epi16(a[r], qs_idx, _mm512_loadu_si512(p + 8));
      lo[r] = _mm512_and_si512(v, lo4);
      hi[r] = _mm512_and_si512(_mm512_srli_epi16(v, 4), lo4);
    }
    const __m512i d01 = _mm512_permutex2var_epi16(a[0], d_idx, a[1]), d23 = _mm512_permutex2var_epi16(a[2], d_idx, a[3]);
    const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_mask_blend_epi16(0xcccccccc, d01, d23)));
    for (int t = 0; t < TT; t++) {
      const X4& x = reinterpret_cast<const X4*>(xq + t * xs)[g];
      const __m512i xl = _mm512_loadu_si512(x.lo), xh = _mm512_loadu_si512(x.hi);
      __m512i p[4];
      for (int r = 0; r < 4; r++) p[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, lo[r], xl), hi[r], xh);
      const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[0], p[1]), _mm512_unpackhi_epi32(p[0], p[1]));
      const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2], p[3]), _mm512_unpackhi_epi32(p[2], p[3]));
      const __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23)),
                                         _mm512_loadu_si512(x.off));
      const __m512 fs = _mm512_cvtepi32_ps(s), dd = _mm512_mul_ps(dw, _mm512_loadu_ps(x.d));
      acc[t] = _mm_fmadd_ps(_mm512_castps512_ps128(fs), _mm512_castps512_ps128(dd), acc[t]);
      acc[t] = _mm_fmadd_ps(_mm512_extractf32x4_ps(fs, 1), _mm512_extractf32x4_ps(dd, 1), acc[t]);
      acc[t] = _mm_fmadd_ps(_mm512_extractf32x4_ps(fs, 2), _mm512_extractf32x4_ps(dd, 2), acc[t]);
      acc[t] = _mm_fmadd_ps(_mm512_extractf32x4_ps(fs, 3), _mm512_extractf32x4_ps(dd, 3), acc[t]);
    }
  }
  decode_tail_avx2<TT>(w, ws, xq, xs, K, acc);
  decode_store<TT>(acc, rows, y, yr, ys);
}

using DecodeFn = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, int64_t, float*, int64_t, int64_t, int);
constexpr int kDecodeTokens = 3;  // the decode tiles take 1..3 tokens (4 and more take rows16 / tile_x86)
template <bool Vnni>
DecodeFn decode_fn(int TT) {
  static constexpr DecodeFn avx2[kDecodeTokens] = {&decode4_avx2<1>, &decode4_avx2<2>, &decode4_avx2<3>};
  static constexpr DecodeFn vnni[kDecodeTokens] = {&decode4_vnni<1>, &decode4_vnni<2>, &decode4_vnni<3>};
  return (Vnni ? vnni : avx2)[TT - 1];
}
template <bool Vnni>
void decode_rows_x86(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t yr,
                     int64_t ys) {
  decode_fn<Vnni>(TT)(w, ws, xq, xs, K, y, yr, ys, 4);
}
// A row left over from the 4-row tiles: the tile on 4 copies of it, one stored.
template <bool Vnni>
void decode_tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  decode_fn<Vnni>(TT)(w, 0, xq, xs, K, y, 0, ys, 1);
}

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

// AVX2 prefill: 4 rows (16 apart in the stored layout) x up to 4 tokens. The rows' nibbles go in
// unsigned, unpacked once per block for all tokens, and x's offset term stands for the -8, so
// x is loaded once per token for all rows; per (block, token) 4 maddubs + madd (|pair| <= 2 * 15
// * 128), a hadd tree to the 4 rows' sumi, one conversion, dw * dx and one fma on the 4 rows.
template <int TT>
FUSELM_AVX2 void rows4_avx2(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, float* y, int64_t yr,
                            int64_t ys) {
  const int64_t nb = K / kQ32;
  const __m256i lo4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  __m128 acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm_setzero_ps();
  auto row = [&](int r) { return reinterpret_cast<const BlockQ4_0*>(w + r * ws); };
  for (int64_t i = 0; i < nb; i++) {
    __m256i q[4];
    for (int r = 0; r < 4; r++) {
      const BlockQ4_0* b = row(r) + i;
      if ((i & 3) == 0) prefetch_ahead(b);
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
      q[r] = _mm256_and_si256(_mm256_setr_m128i(v, _mm_srli_epi16(v, 4)), lo4);
    }
    const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16(row(0)[i].d, row(1)[i].d, row(2)[i].d, row(3)[i].d, 0, 0, 0, 0));
    for (int t = 0; t < TT; t++) {
      const X& x = reinterpret_cast<const X*>(xq + t * xs)[i];
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
      __m256i p[4];
      for (int r = 0; r < 4; r++) p[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], xv), ones);
      const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
      const __m128i s = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)), _mm_set1_epi32(x.off));
      acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(s), _mm_mul_ps(dw, _mm_set1_ps(x.d)), acc[t]);
    }
  }
  alignas(16) float out[4];
  for (int t = 0; t < TT; t++) {
    _mm_store_ps(out, acc[t]);
    for (int r = 0; r < 4; r++) y[t * ys + r * yr] = out[r];
  }
}

void rows4_avx2_x86(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t yr,
                    int64_t ys) {
  using Fn = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, int64_t, float*, int64_t, int64_t);
  static constexpr Fn fns[4] = {&rows4_avx2<1>, &rows4_avx2<2>, &rows4_avx2<3>, &rows4_avx2<4>};
  fns[TT - 1](w, ws, xq, xs, K, y, yr, ys);
}

// The tile for any TT (up to the kernel's max_tokens), 4 tokens at a time.
void tile_x86(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys) {
  using Fn = void (*)(const uint8_t*, const uint8_t*, size_t, int64_t, float*, int64_t);
  static constexpr Fn fns[4] = {&tile4_avx2<1>, &tile4_avx2<2>, &tile4_avx2<3>, &tile4_avx2<4>};
  for (int t = 0; t < TT; t += 4) fns[std::min(4, TT - t) - 1](w, xq + t * xs, xs, K, y + t * ys, ys);
}

constexpr int kRows16 = 16;
constexpr int kRows16Tokens = 16;
constexpr int kRows16MinTokens = 4;  // fewer tokens take the decode tiles

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

using Fn = void (*)(const uint8_t*, size_t, const uint8_t*, size_t, int64_t, float*, int64_t, int64_t);

template <int... T>
constexpr auto rows16_table(std::integer_sequence<int, T...>) {
  return std::array<Fn, sizeof...(T)>{&rows16_vnni<T + 1>...};
}

void rows16_x86(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t yr,
                int64_t ys) {
  static constexpr auto fns = rows16_table(std::make_integer_sequence<int, kRows16Tokens>{});
  fns[TT - 1](w, ws, xq, xs, K, y, yr, ys);
}

#endif  // __x86_64__

}  // namespace

QuantKernel q4_0_kernel(Impl impl, int64_t T) {
#if defined(__x86_64__)
  // Decode reads 4 rows 16 apart per pass, as the rest of the family: 16 streams 4 rows apart
  // (rows16's) halved its speed (matmul decode q4_0 1x2048 · 5632x2048ᵀ 1t, same host, same
  // hour: 710-940 us against 285-530).
  const bool vnni = impl == Impl::kAvx512 && cpu_features().avx512vnni;
  if (T < kRows16MinTokens && (impl == Impl::kAvx512 || impl == Impl::kAvx2))
    return vnni ? QuantKernel{QAct::Q8_0x4, &decode_tile_x86<true>, kDecodeTokens, &decode_rows_x86<true>, 4}
                : QuantKernel{QAct::Q8_0x4, &decode_tile_x86<false>, kDecodeTokens, &decode_rows_x86<false>, 4};
  if (vnni) return {QAct::Q8_0Off, &tile_x86, kRows16Tokens, &rows16_x86, kRows16};
  if (impl == Impl::kAvx512 || impl == Impl::kAvx2) return {QAct::Q8_0Off, &tile_x86, 4, &rows4_avx2_x86, 4};
#endif
  return {QAct::Q8_0Off, &tile_ref};
}

}  // namespace fuselm
