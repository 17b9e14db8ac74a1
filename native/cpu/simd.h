// SIMD weight loaders shared by the CPU kernels that read f32/f16/bf16/q8_0 rows (matmul,
// embedding). The translation units are compiled for baseline x86-64; everything here opts in
// per function with a target attribute, and callers pick a level at run time from
// cpu_features() (see cpu_features.h). Each loader widens one row's values to f32 in registers:
//
//   L::kBlock   values per step along the row (q8_0: one 32-value block)
//   L::kVecs    vectors per step (kBlock / lanes)
//   L::scale(row, k)     per-step factor: the q8_0 block scale broadcast, 1 otherwise
//   L::vec(row, k, v, d) vector v of the step starting at value k, times d for q8_0
//   L::tail(row, k, m)   (AVX-512, not q8_0) the lanes in mask m of the vector at value k, the
//                        rest zero; masked loads never touch memory outside the mask
//
// q8_0 steps always start at a block boundary (k % 32 == 0) and rows hold whole blocks.
// widen_row<L> widens a whole row with them (embedding rows, KV cache rows in attention).
#pragma once
#include <cstdint>

#include "cpu/dequant.h"
#include "tensor.h"

#if defined(__x86_64__)
#include "cpu/x86.h"

#define FUSELM_INLINE inline __attribute__((always_inline))

namespace fuselm {
namespace simd512 {

struct F32 {
  static constexpr DType kDType = DType::F32;
  static constexpr int kBlock = 16, kVecs = 1;
  FUSELM_AVX512 static FUSELM_INLINE __m512 scale(const uint8_t*, int64_t) { return _mm512_set1_ps(1.f); }
  FUSELM_AVX512 static FUSELM_INLINE __m512 vec(const uint8_t* row, int64_t k, int, __m512) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k);
  }
  FUSELM_AVX512 static FUSELM_INLINE __m512 tail(const uint8_t* row, int64_t k, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + k);
  }
};

struct F16 {
  static constexpr DType kDType = DType::F16;
  static constexpr int kBlock = 16, kVecs = 1;
  FUSELM_AVX512 static FUSELM_INLINE __m512 scale(const uint8_t*, int64_t) { return _mm512_set1_ps(1.f); }
  FUSELM_AVX512 static FUSELM_INLINE __m512 vec(const uint8_t* row, int64_t k, int, __m512) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(row) + k)));
  }
  FUSELM_AVX512 static FUSELM_INLINE __m512 tail(const uint8_t* row, int64_t k, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + k));
  }
};

struct BF16 {
  static constexpr DType kDType = DType::BF16;
  static constexpr int kBlock = 16, kVecs = 1;
  FUSELM_AVX512 static FUSELM_INLINE __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  FUSELM_AVX512 static FUSELM_INLINE __m512 scale(const uint8_t*, int64_t) { return _mm512_set1_ps(1.f); }
  FUSELM_AVX512 static FUSELM_INLINE __m512 vec(const uint8_t* row, int64_t k, int, __m512) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(row) + k)));
  }
  FUSELM_AVX512 static FUSELM_INLINE __m512 tail(const uint8_t* row, int64_t k, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + k));
  }
};

struct Q8_0 {
  static constexpr DType kDType = DType::Q8_0;
  static constexpr int kBlock = 32, kVecs = 2;
  FUSELM_AVX512 static FUSELM_INLINE const uint8_t* block(const uint8_t* row, int64_t k) {
    return row + (k / kQ8Block) * kQ8BlockBytes;
  }
  FUSELM_AVX512 static FUSELM_INLINE __m512 scale(const uint8_t* row, int64_t k) {
    uint16_t d;
    __builtin_memcpy(&d, block(row, k), 2);
    return _mm512_set1_ps(_cvtsh_ss(d));
  }
  // The 16 int8 values of half v of the block, as f32 (unscaled).
  FUSELM_AVX512 static FUSELM_INLINE __m512 ints(const uint8_t* row, int64_t k, int v) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block(row, k) + 2 + 16 * v));
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
  }
  FUSELM_AVX512 static FUSELM_INLINE __m512 vec(const uint8_t* row, int64_t k, int v, __m512 d) {
    return _mm512_mul_ps(ints(row, k, v), d);
  }
};

FUSELM_AVX512 FUSELM_INLINE __mmask16 tail_mask(int64_t n) { return __mmask16((1u << n) - 1); }

// out[0 .. n) = the row's first n values as f32 (q8_0: n a multiple of 32).
template <class L>
FUSELM_AVX512 FUSELM_INLINE void widen_row(const uint8_t* row, int64_t n, float* out) {
  int64_t k = 0;
  for (; k + L::kBlock <= n; k += L::kBlock) {
    const __m512 d = L::scale(row, k);
    for (int v = 0; v < L::kVecs; v++) _mm512_storeu_ps(out + k + 16 * v, L::vec(row, k, v, d));
  }
  if constexpr (L::kDType != DType::Q8_0) {  // q8_0 rows hold whole blocks
    if (k < n) {
      const __mmask16 m = tail_mask(n - k);
      _mm512_mask_storeu_ps(out + k, m, L::tail(row, k, m));
    }
  }
}

}  // namespace simd512

namespace simd256 {

struct F32 {
  static constexpr DType kDType = DType::F32;
  static constexpr int kBlock = 8, kVecs = 1;
  FUSELM_AVX2 static FUSELM_INLINE __m256 scale(const uint8_t*, int64_t) { return _mm256_set1_ps(1.f); }
  FUSELM_AVX2 static FUSELM_INLINE __m256 vec(const uint8_t* row, int64_t k, int, __m256) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  }
};

struct F16 {
  static constexpr DType kDType = DType::F16;
  static constexpr int kBlock = 8, kVecs = 1;
  FUSELM_AVX2 static FUSELM_INLINE __m256 scale(const uint8_t*, int64_t) { return _mm256_set1_ps(1.f); }
  FUSELM_AVX2 static FUSELM_INLINE __m256 vec(const uint8_t* row, int64_t k, int, __m256) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + k)));
  }
};

struct BF16 {
  static constexpr DType kDType = DType::BF16;
  static constexpr int kBlock = 8, kVecs = 1;
  FUSELM_AVX2 static FUSELM_INLINE __m256 scale(const uint8_t*, int64_t) { return _mm256_set1_ps(1.f); }
  FUSELM_AVX2 static FUSELM_INLINE __m256 vec(const uint8_t* row, int64_t k, int, __m256) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};

struct Q8_0 {
  static constexpr DType kDType = DType::Q8_0;
  static constexpr int kBlock = 32, kVecs = 4;
  FUSELM_AVX2 static FUSELM_INLINE const uint8_t* block(const uint8_t* row, int64_t k) {
    return row + (k / kQ8Block) * kQ8BlockBytes;
  }
  FUSELM_AVX2 static FUSELM_INLINE __m256 scale(const uint8_t* row, int64_t k) {
    uint16_t d;
    __builtin_memcpy(&d, block(row, k), 2);
    return _mm256_set1_ps(_cvtsh_ss(d));
  }
  FUSELM_AVX2 static FUSELM_INLINE __m256 ints(const uint8_t* row, int64_t k, int v) {
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(block(row, k) + 2 + 8 * v));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
  }
  FUSELM_AVX2 static FUSELM_INLINE __m256 vec(const uint8_t* row, int64_t k, int v, __m256 d) {
    return _mm256_mul_ps(ints(row, k, v), d);
  }
};

// out[0 .. n) = the row's first n values as f32 (q8_0: n a multiple of 32); the last n % 8 by
// the portable converter.
template <class L>
FUSELM_AVX2 FUSELM_INLINE void widen_row(const uint8_t* row, int64_t n, float* out) {
  int64_t k = 0;
  for (; k + L::kBlock <= n; k += L::kBlock) {
    const __m256 d = L::scale(row, k);
    for (int v = 0; v < L::kVecs; v++) _mm256_storeu_ps(out + k + 8 * v, L::vec(row, k, v, d));
  }
  if (k < n) dequant_span(row, L::kDType, k, n - k, out + k);
}

FUSELM_AVX2 FUSELM_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace simd256
}  // namespace fuselm

#endif  // __x86_64__
