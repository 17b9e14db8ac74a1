// matmul: y[t, n] = sum_k x[t, k] * w[n, k], x f32, w f32/f16/bf16/q8_0 (one row per output).
//
// Decode (T = 1) is a matvec bound by streaming w from memory once. Each weight row is widened
// to f32 in registers (f16 by F16C, bf16 by a 16-bit shift) and multiplied into its own
// accumulators. A tile works on 4 rows so x is loaded once per 4 rows, but the 4 rows are not
// neighbours: a task of m rows runs 4 long sequential streams (rows i, i + m/4, i + m/2,
// i + 3m/4 for i < m/4). Measured on Zen4: 4 interleaved neighbour rows (4 streams of one row
// each, retrained at every row) read ~19 GB/s; one row at a time reads at full speed only while
// x fits in L1 beside the stream (K = 5632 f32 x does not: ~17 GB/s); 4 long streams read at
// ~93-100% of a plain read loop for both K.
//
// q8_0 is computed as llama.cpp does: x is quantized once per call to q8_0 blocks (round to
// nearest even, the block scale kept as f16 as in llama.cpp's block_q8_0, so the two engines'
// roundings agree: with an f32 scale the tiny scale differences, fed through the next layers'
// roundings, moved a 2-layer model's logits by 2% of llama.cpp's), and each block's dot product
// is an exact int32 sum of int8 products
// (AVX-512 VNNI vpdpbusd; AVX2 and AVX-512 without VNNI: maddubs; portable: plain C++),
// scaled by d_w * d_x and accumulated in f32. Why: widening the int8 weights to f32 (sign
// extend, convert, scale, then FMA against f32 x) tops out at ~21 GB/s on one Zen4 core even
// from cache, below memory speed, and its f32 x (4 bytes per value) falls out of L1 at
// K = 5632 (~11 GB/s); the integer dot does 32 products per instruction, reads x as 1 byte
// per value, and stays memory-bound (~40 GB/s from cache). The price is x's rounding to 8 bits:
// ~0.5% relative error per dot product, as llama.cpp has. The integer lanes are grouped the
// same way at every level (lane i sums bytes 4i..4i+3), so AVX2 and AVX-512 agree bit for bit.
//
// Prefill (T > 1) uses the same tiles with up to 4 tokens (AVX2: 2): each weight vector,
// once converted, feeds several x rows, so conversion is paid once per 4 tokens; the tokens of
// a task are walked in blocks of 64 that stay in L2 while the task's 4 current rows stay in L1.
// Threads take tasks of up to 64 rows (and token chunks when there are few rows).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "cpu/dequant.h"
#include "cpu/matmul_quant.h"
#include "cpu/simd.h"

namespace fuselm {

static void matmul_reference(const MatmulArgs& a) {
  const size_t rb = row_bytes(a.w_dtype, a.K);
  std::vector<float> wrow(size_t(a.K));
  for (int64_t n = 0; n < a.N; n++) {
    dequant_row_ref(static_cast<const uint8_t*>(a.w) + size_t(n) * rb, a.w_dtype, a.K, wrow.data());
    for (int64_t t = 0; t < a.T; t++) {
      double s = 0;
      const float* x = a.x + t * a.K;
      for (int64_t k = 0; k < a.K; k++) s += double(x[k]) * wrow[size_t(k)];
      a.y[t * a.N + n] = float(s);
    }
  }
}

namespace {

constexpr int64_t kMaxRowsPerTask = 64;
constexpr int64_t kTokenBlock = 64;  // x rows walked per pass over a task's weight rows

// The activations a tile reads: f32 rows, and for q8_0 weights the same rows quantized.
struct Src {
  const float* x;   // f32 [T, K]
  const int8_t* q;  // int8 [T, K]        (q8_0 weights only)
  const float* d;   // f32 [T, K / 32]    block scales: x ~= d * q
};

// x[t] -> q8_0 blocks as llama.cpp's x86 quantize_row_q8_0: q = round(x * (127 / max|x|)) to
// nearest even, |q| <= 127, and the scale kept is max|x| / 127 rounded to f16 (inf when
// max|x| > 65504 * 127, as in llama.cpp).
// Every level computes the same d and q (same scalar d, same products, same rounding), so
// the levels differ only in the float sums. A NaN or inf in a block makes d NaN or inf, so
// the outputs it touches are NaN, as in the reference; q is then irrelevant.
float block_amax(const float* xb) {
  uint32_t m = 0;  // max of |x| as bits: NaN's bits exceed inf's, which exceed every number's
  for (int j = 0; j < kQ8Block; j++) {
    uint32_t u;
    std::memcpy(&u, &xb[j], 4);
    m = std::max(m, u & 0x7fffffffu);
  }
  float amax;
  std::memcpy(&amax, &m, 4);
  return amax;
}

struct Q8Scale {
  float d, id;  // d: the f16 scale as f32; id: what x is multiplied by before rounding
  explicit Q8Scale(float amax) : d(f16_to_f32(f32_to_f16(amax / 127.f))), id(amax != 0 ? 127.f / amax : 0.f) {}
};

void quantize_row_q8_portable(const float* x, int64_t K, int8_t* q, float* d) {
  for (int64_t b = 0; b < K / kQ8Block; b++) {
    const float* xb = x + b * kQ8Block;
    const Q8Scale s(block_amax(xb));
    d[b] = s.d;
    for (int j = 0; j < kQ8Block; j++) {
      float v = xb[j] * s.id;
      v = v > 127.f ? 127.f : v < -127.f ? -127.f : v == v ? v : 0.f;
      q[b * kQ8Block + j] = int8_t(int32_t((v + 0x1.8p23f) - 0x1.8p23f));  // round to nearest even
    }
  }
}

#if defined(__x86_64__)
FUSELM_AVX512 void quantize_row_q8_avx512(const float* x, int64_t K, int8_t* q, float* d) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  for (int64_t b = 0; b < K / kQ8Block; b++) {
    const float* xb = x + b * kQ8Block;
    const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
    const __m512i m = _mm512_max_epu32(_mm512_and_si512(_mm512_castps_si512(v0), abs_mask),
                                       _mm512_and_si512(_mm512_castps_si512(v1), abs_mask));
    const uint32_t bits = uint32_t(_mm512_reduce_max_epu32(m));
    float amax;
    std::memcpy(&amax, &bits, 4);
    const Q8Scale s(amax);
    d[b] = s.d;
    const __m512 id = _mm512_set1_ps(s.id);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kQ8Block),
                     _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, id))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kQ8Block + 16),
                     _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, id))));
  }
}

FUSELM_AVX2 void quantize_row_q8_avx2(const float* x, int64_t K, int8_t* q, float* d) {
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < K / kQ8Block; b++) {
    const float* xb = x + b * kQ8Block;
    __m256 v[4];
    __m256i m = _mm256_setzero_si256();
    for (int i = 0; i < 4; i++) {
      v[i] = _mm256_loadu_ps(xb + 8 * i);
      m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_castps_si256(v[i]), abs_mask));
    }
    __m128i h = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0xb1));
    const uint32_t bits = uint32_t(_mm_cvtsi128_si32(h));
    float amax;
    std::memcpy(&amax, &bits, 4);
    const Q8Scale s(amax);
    d[b] = s.d;
    const __m256 id = _mm256_set1_ps(s.id);
    __m256i i32[4];
    for (int i = 0; i < 4; i++) i32[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], id));
    // packs work per 128-bit lane: dwords come out as values 0-3, 8-11, 16-19, 24-27, 4-7, ...
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i32[0], i32[1]), _mm256_packs_epi32(i32[2], i32[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kQ8Block), _mm256_permutevar8x32_epi32(p, order));
  }
}
#endif

using QuantizeFn = void (*)(const float*, int64_t, int8_t*, float*);

QuantizeFn pick_quantize(Impl impl) {
#if defined(__x86_64__)
  if (impl == Impl::kAvx512) return &quantize_row_q8_avx512;
  if (impl == Impl::kAvx2) return &quantize_row_q8_avx2;
#endif
  return &quantize_row_q8_portable;
}

// A tile computes y[t * N + r * ys] for r < R rows (row r at w + r * ws) and t < TT tokens.

// ---- portable: plain C++ the compiler vectorizes for baseline SSE2 ----

template <DType DT, int R, int TT>
void tile_portable(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
  constexpr int kB = 32, kL = 8;
  float acc[R][TT][kL] = {};
  if constexpr (DT == DType::Q8_0) {
    const int64_t nb = K / kQ8Block;
    for (int64_t b = 0; b < nb; b++) {
      for (int r = 0; r < R; r++) {
        const BlockQ8_0* wb = reinterpret_cast<const BlockQ8_0*>(w + size_t(r) * ws) + b;
        const float dw = f16_to_f32_inline(wb->d);
        for (int t = 0; t < TT; t++) {
          const int8_t* xq = s.q + t * K + b * kB;
          const float sc = dw * s.d[t * nb + b];
          for (int l = 0; l < kL; l++) {
            int32_t p = 0;
            for (int j = 0; j < 4; j++) p += int32_t(wb->qs[4 * l + j]) * int32_t(xq[4 * l + j]);
            acc[r][t][l] += float(p) * sc;
          }
        }
      }
    }
  } else {
    float wb[R][kB];
    float xb[TT][kB];
    for (int64_t k = 0; k < K; k += kB) {
      const int64_t n = std::min<int64_t>(kB, K - k);
      for (int r = 0; r < R; r++) {
        dequant_span(w + size_t(r) * ws, DT, k, n, wb[r]);
        for (int64_t j = n; j < kB; j++) wb[r][j] = 0;
      }
      for (int t = 0; t < TT; t++) {
        std::memcpy(xb[t], s.x + t * K + k, size_t(n) * 4);
        for (int64_t j = n; j < kB; j++) xb[t][j] = 0;
      }
      for (int r = 0; r < R; r++)
        for (int t = 0; t < TT; t++)
          for (int j = 0; j < kB; j += kL)
            for (int l = 0; l < kL; l++) acc[r][t][l] += wb[r][j + l] * xb[t][j + l];
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) {
      float sum = 0;
      for (int l = 0; l < kL; l++) sum += acc[r][t][l];
      y[t * N + r * ys] = sum;
    }
}

template <DType DT>
struct Portable {
  static constexpr int kR = 4, kTT = 2;
  template <int R, int TT>
  static void tile(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
    tile_portable<DT, R, TT>(w, ws, s, K, y, ys, N);
  }
};

#if defined(__x86_64__)

// ---- AVX-512, f32/f16/bf16: 4 rows x up to 4 tokens = 16 zmm accumulators ----

template <class L, int R, int TT>
FUSELM_AVX512 void tile_avx512(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
  __m512 acc[R][TT];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) acc[r][t] = _mm512_setzero_ps();
  const int64_t kmain = K / L::kBlock * L::kBlock;
  const size_t eb = L::kDType == DType::F32 ? 4 : 2;
  for (int64_t k = 0; k < kmain; k += L::kBlock) {
    __m512 wv[R];
    if (size_t(k) * eb % 64 == 0)  // once per cache line of each row stream
      for (int r = 0; r < R; r++) prefetch_ahead(w + size_t(r) * ws + size_t(k) * eb);
    for (int r = 0; r < R; r++) wv[r] = L::vec(w + size_t(r) * ws, k, 0, _mm512_set1_ps(1.f));
    for (int t = 0; t < TT; t++) {
      const __m512 xv = _mm512_loadu_ps(s.x + t * K + k);
      for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (kmain < K) {
    const __mmask16 m = simd512::tail_mask(K - kmain);
    __m512 wv[R];
    for (int r = 0; r < R; r++) wv[r] = L::tail(w + size_t(r) * ws, kmain, m);
    for (int t = 0; t < TT; t++) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, s.x + t * K + kmain);
      for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) y[t * N + r * ys] = _mm512_reduce_add_ps(acc[r][t]);
}

template <class L>
struct Avx512 {
  static constexpr int kR = 4, kTT = 4;
  template <int R, int TT>
  static void tile(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
    tile_avx512<L, R, TT>(w, ws, s, K, y, ys, N);
  }
};

// ---- AVX-512 VNNI, q8_0: vpdpbusd on 256-bit vectors (Zen4 runs 512-bit ones as two halves) ----
// vpdpbusd multiplies unsigned by signed bytes, so the weights are flipped to w + 128 (xor 0x80)
// and each lane starts from -128 * (its 4 x values' sum): lane i = sum_{j<4} w[4i+j] x[4i+j],
// exactly the AVX2 path's lanes.

FUSELM_AVX512VNNI FUSELM_INLINE __m256 q8_scale(const uint8_t* block) {
  uint16_t d;
  std::memcpy(&d, block, 2);
  return _mm256_cvtph_ps(_mm_set1_epi16(int16_t(d)));
}

// An even number of rows goes in pairs: row 2p in the lower 256-bit half of a 512-bit vector, row
// 2p + 1 in the upper, each half computing the 8 lanes of the 256-bit tile below, the same bits;
// x and its offset are broadcast to both halves. Half as many instructions per row.
template <int R, int TT>
FUSELM_AVX512VNNI void tile_q8_vnni_pairs(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
  constexpr int P = R / 2;
  const int64_t nb = K / kQ8Block;
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  __m512 acc[P][TT];
  for (int p = 0; p < P; p++)
    for (int t = 0; t < TT; t++) acc[p][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    __m512i wu[P];
    __m512 dw[P];
    for (int p = 0; p < P; p++) {
      const uint8_t* r0 = w + size_t(2 * p) * ws + size_t(b) * kQ8BlockBytes;
      const uint8_t* r1 = r0 + ws;
      prefetch_ahead(r0);
      prefetch_ahead(r1);
      wu[p] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0 + 2))),
                                                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1 + 2)), 1), flip);
      uint16_t d0, d1;
      std::memcpy(&d0, r0, 2);
      std::memcpy(&d1, r1, 2);
      const __m128 d01 = _mm_cvtph_ps(_mm_unpacklo_epi16(_mm_cvtsi32_si128(d0), _mm_cvtsi32_si128(d1)));
      dw[p] = _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(d01));
    }
    for (int t = 0; t < TT; t++) {
      const __m512i xq = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.q + t * K + b * kQ8Block)));
      const __m512i c = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, xq));
      const __m512 dx = _mm512_set1_ps(s.d[t * nb + b]);
      for (int p = 0; p < P; p++) {
        const __m512i d = _mm512_dpbusd_epi32(c, wu[p], xq);
        acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(dw[p], dx), acc[p][t]);
      }
    }
  }
  for (int p = 0; p < P; p++)
    for (int t = 0; t < TT; t++) {
      y[t * N + 2 * p * ys] = simd256::hsum(_mm512_castps512_ps256(acc[p][t]));
      y[t * N + (2 * p + 1) * ys] = simd256::hsum(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[p][t]), 1)));
    }
}

template <int R, int TT>
FUSELM_AVX512VNNI void tile_q8_vnni(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
  const int64_t nb = K / kQ8Block;
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  __m256 acc[R][TT];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) acc[r][t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    __m256i wu[R];
    __m256 dw[R];
    for (int r = 0; r < R; r++) {
      const uint8_t* p = w + size_t(r) * ws + size_t(b) * kQ8BlockBytes;
      prefetch_ahead(p);
      dw[r] = q8_scale(p);
      wu[r] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2)), flip);
    }
    for (int t = 0; t < TT; t++) {
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.q + t * K + b * kQ8Block));
      const __m256i c = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), flip, xq));
      const __m256 dx = _mm256_set1_ps(s.d[t * nb + b]);
      for (int r = 0; r < R; r++) {
        const __m256i p = _mm256_dpbusd_epi32(c, wu[r], xq);
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw[r], dx), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) y[t * N + r * ys] = simd256::hsum(acc[r][t]);
}

struct Avx512Q8Vnni {
  static constexpr int kR = 4, kTT = 4;
  template <int R, int TT>
  static void tile(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
    if constexpr (R % 2 == 0) tile_q8_vnni_pairs<R, TT>(w, ws, s, K, y, ys, N);
    else tile_q8_vnni<R, TT>(w, ws, s, K, y, ys, N);
  }
};

// ---- AVX2 (+FMA, F16C), f32/f16/bf16: 4 rows x up to 2 tokens = 8 ymm accumulators ----

template <class L, int R, int TT>
FUSELM_AVX2 void tile_avx2(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
  __m256 acc[R][TT];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) acc[r][t] = _mm256_setzero_ps();
  const int64_t kmain = K / L::kBlock * L::kBlock;
  const size_t eb = L::kDType == DType::F32 ? 4 : 2;
  for (int64_t k = 0; k < kmain; k += L::kBlock) {
    __m256 wv[R];
    if (size_t(k) * eb % 64 == 0)  // once per cache line of each row stream
      for (int r = 0; r < R; r++) prefetch_ahead(w + size_t(r) * ws + size_t(k) * eb);
    for (int r = 0; r < R; r++) wv[r] = L::vec(w + size_t(r) * ws, k, 0, _mm256_set1_ps(1.f));
    for (int t = 0; t < TT; t++) {
      const __m256 xv = _mm256_loadu_ps(s.x + t * K + k);
      for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (kmain < K) {  // the last K % 8 values, through zero-padded copies
    const int64_t n = K - kmain;
    alignas(32) uint8_t wpad[R][32] = {};
    alignas(32) float xpad[TT][8] = {};
    __m256 wv[R];
    for (int r = 0; r < R; r++) {
      std::memcpy(wpad[r], w + size_t(r) * ws + size_t(kmain) * eb, size_t(n) * eb);
      wv[r] = L::vec(wpad[r], 0, 0, _mm256_set1_ps(1.f));
    }
    for (int t = 0; t < TT; t++) {
      std::memcpy(xpad[t], s.x + t * K + kmain, size_t(n) * 4);
      const __m256 xv = _mm256_load_ps(xpad[t]);
      for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) y[t * N + r * ys] = simd256::hsum(acc[r][t]);
}

template <class L>
struct Avx2 {
  static constexpr int kR = 4, kTT = 2;
  template <int R, int TT>
  static void tile(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
    tile_avx2<L, R, TT>(w, ws, s, K, y, ys, N);
  }
};

// ---- AVX2, q8_0: |w| (unsigned) times x with w's sign (signed) by maddubs, pairs by madd ----
// |w| <= 128 and |x| <= 127, so a maddubs pair sum stays within int16 (<= 32512).

template <int R, int TT>
FUSELM_AVX2 void tile_q8_avx2(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
  const int64_t nb = K / kQ8Block;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R][TT];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) acc[r][t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    __m256i wq[R], aw[R];
    __m256 dw[R];
    for (int r = 0; r < R; r++) {
      const uint8_t* p = w + size_t(r) * ws + size_t(b) * kQ8BlockBytes;
      if ((b & 1) == 0) prefetch_ahead(p);  // ~ once per cache line (blocks of 34 bytes)
      uint16_t d;
      std::memcpy(&d, p, 2);
      dw[r] = _mm256_cvtph_ps(_mm_set1_epi16(int16_t(d)));
      wq[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
      aw[r] = _mm256_sign_epi8(wq[r], wq[r]);
    }
    for (int t = 0; t < TT; t++) {
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.q + t * K + b * kQ8Block));
      const __m256 dx = _mm256_set1_ps(s.d[t * nb + b]);
      for (int r = 0; r < R; r++) {
        const __m256i p16 = _mm256_maddubs_epi16(aw[r], _mm256_sign_epi8(xq, wq[r]));
        const __m256i p = _mm256_madd_epi16(p16, ones);
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw[r], dx), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < TT; t++) y[t * N + r * ys] = simd256::hsum(acc[r][t]);
}

struct Avx2Q8 {
  static constexpr int kR = 4, kTT = 2;
  template <int R, int TT>
  static void tile(const uint8_t* w, size_t ws, const Src& s, int64_t K, float* y, int64_t ys, int64_t N) {
    tile_q8_avx2<R, TT>(w, ws, s, K, y, ys, N);
  }
};

#endif  // __x86_64__

// ---- the walk over a task's rows and tokens, shared by every level ----

// Src advanced to token t.
Src at(const Src& s, int64_t t, int64_t K) {
  return {s.x + t * K, s.q ? s.q + t * K : nullptr, s.d ? s.d + t * (K / kQ8Block) : nullptr};
}

// R rows (w + r * ws, y column n + r * ys) for tokens [t0, t1): kTT at a time, then 2, then 1.
template <class Kern, int R>
void tokens(const MatmulArgs& a, const Src& s, const uint8_t* w, size_t ws, int64_t n, int64_t ys, int64_t t0, int64_t t1) {
  int64_t t = t0;
  for (; t + Kern::kTT <= t1; t += Kern::kTT)
    Kern::template tile<R, Kern::kTT>(w, ws, at(s, t, a.K), a.K, a.y + t * a.N + n, ys, a.N);
  if constexpr (Kern::kTT > 2) {
    if (t1 - t >= 2) {
      Kern::template tile<R, 2>(w, ws, at(s, t, a.K), a.K, a.y + t * a.N + n, ys, a.N);
      t += 2;
    }
  }
  for (; t < t1; t++) Kern::template tile<R, 1>(w, ws, at(s, t, a.K), a.K, a.y + t * a.N + n, ys, a.N);
}

// y[t, n] for rows [n0, n1) and tokens [t0, t1): kR sequential streams of q rows each.
template <class Kern>
void range(const MatmulArgs& a, const Src& s, int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
  const size_t rb = row_bytes(a.w_dtype, a.K);
  const uint8_t* w = static_cast<const uint8_t*>(a.w);
  const int64_t q = (n1 - n0) / Kern::kR;
  for (int64_t tb = t0; tb < t1; tb += kTokenBlock) {
    const int64_t te = std::min(t1, tb + kTokenBlock);
    for (int64_t i = 0; i < q; i++)
      tokens<Kern, Kern::kR>(a, s, w + size_t(n0 + i) * rb, size_t(q) * rb, n0 + i, q, tb, te);
    for (int64_t n = n0 + q * Kern::kR; n < n1; n++) tokens<Kern, 1>(a, s, w + size_t(n) * rb, rb, n, 1, tb, te);
  }
}

using RangeFn = void (*)(const MatmulArgs&, const Src&, int64_t, int64_t, int64_t, int64_t);

RangeFn pick(Impl impl, DType dt) {
#if defined(__x86_64__)
  if (impl == Impl::kAvx512) {
    switch (dt) {
      case DType::F32: return &range<Avx512<simd512::F32>>;
      case DType::F16: return &range<Avx512<simd512::F16>>;
      case DType::BF16: return &range<Avx512<simd512::BF16>>;
      case DType::Q8_0: return cpu_features().avx512vnni ? &range<Avx512Q8Vnni> : &range<Avx2Q8>;
      default: return nullptr;
    }
  }
  if (impl == Impl::kAvx2) {
    switch (dt) {
      case DType::F32: return &range<Avx2<simd256::F32>>;
      case DType::F16: return &range<Avx2<simd256::F16>>;
      case DType::BF16: return &range<Avx2<simd256::BF16>>;
      case DType::Q8_0: return &range<Avx2Q8>;
      default: return nullptr;
    }
  }
#endif
  switch (dt) {
    case DType::F32: return &range<Portable<DType::F32>>;
    case DType::F16: return &range<Portable<DType::F16>>;
    case DType::BF16: return &range<Portable<DType::BF16>>;
    case DType::Q8_0: return &range<Portable<DType::Q8_0>>;
    default: break;
  }
  return nullptr;
}

}  // namespace

void quantize_row_q8_cpu(const float* x, int64_t K, int8_t* q, float* d) { quantize_row_q8_portable(x, K, q, d); }
QuantizeQ8Fn quantize_q8_fn(Impl impl) { return pick_quantize(impl); }

void matmul_cpu(const MatmulArgs& a, const Exec& e) {
  // the GGUF block formats (q4_k, q6_k, ...): their own kernels, reference included (matmul_quant.h)
  if (has_quant_kernel(a.w_dtype)) return matmul_quant_cpu(a, e);
  if (e.impl == Impl::kReference) return matmul_reference(a);
  const RangeFn fn = pick(e.impl, a.w_dtype);
  if (!fn) throw Error("E_INVALID_ARG", std::string("matmul: unsupported weight dtype ") + dtype_name(a.w_dtype));
  const int64_t threads = e.pool->size();

  Src src{a.x, nullptr, nullptr};
  if (a.w_dtype == DType::Q8_0) {
    // Scratch for x as q8_0; kept per calling thread and grown to the largest call, so a
    // steady decode or prefill loop never allocates.
    static thread_local std::vector<int8_t> xq;
    static thread_local std::vector<float> xd;
    const int64_t nb = a.K / kQ8Block;
    if (xq.size() < size_t(a.T * a.K)) xq.resize(size_t(a.T * a.K));
    if (xd.size() < size_t(a.T * nb)) xd.resize(size_t(a.T * nb));
    src.q = xq.data();
    src.d = xd.data();
    // (The workers must not name the thread_local vectors: they would get their own.)
    int8_t* q = xq.data();
    float* d = xd.data();
    const QuantizeFn quantize = pick_quantize(e.impl);
    e.pool->run(a.T, [&](int64_t t, int) { quantize(a.x + t * a.K, a.K, q + t * a.K, d + t * nb); }, a.T * a.K);
  }

  // Row tasks of up to 64 rows, smaller when there are few rows to share among the threads.
  int64_t rows_per_task = kMaxRowsPerTask;
  while (rows_per_task > 16 && (a.N + rows_per_task - 1) / rows_per_task < 4 * threads) rows_per_task /= 2;
  const int64_t row_tasks = (a.N + rows_per_task - 1) / rows_per_task;
  // Few row tasks and several tokens: split the tokens too, in multiples of 4 so tiles stay full.
  int64_t tok_per_task = a.T;
  if (threads > 1 && a.T > 1 && row_tasks < 4 * threads) {
    const int64_t want = (4 * threads + row_tasks - 1) / row_tasks;
    tok_per_task = std::max<int64_t>(4, ((a.T + want - 1) / want + 3) / 4 * 4);
  }
  const int64_t tok_tasks = (a.T + tok_per_task - 1) / tok_per_task;
  e.pool->run(row_tasks * tok_tasks, [&](int64_t task, int) {
    const int64_t rt = task % row_tasks, tt = task / row_tasks;
    const int64_t n0 = rt * rows_per_task, t0 = tt * tok_per_task;
    fn(a, src, n0, std::min(a.N, n0 + rows_per_task), t0, std::min(a.T, t0 + tok_per_task));
  }, a.T * a.N * a.K);  // multiply-adds: tiny products stay on the calling thread
}

FUSELM_CPU_OP(matmul_op::def, [](const Step& s, const Exec& e) { matmul_cpu(matmul_op::args(s), e); });

}  // namespace fuselm
