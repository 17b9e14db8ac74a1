// kv_store: copy T rows of new keys or values into the cache at positions pos0 .. pos0 + T - 1,
// rounded to the cache's type (f32, f16 or bf16).
// The reference stores value by value with tensor.h's scalar converters (round to nearest even,
// f16 subnormals and overflow to infinity included), the same bits as cuda/kv_store.cu's. The
// fast path moves the n = T * W values as one run, split across threads in chunks of 256 Ki
// values when the copy is large (a prefill of many tokens): f32 by memcpy; f16 by F16C's
// conversion (16 or 8 values per instruction); bf16 by the same integer rounding as the
// reference, vectorized. Every level gives the reference's bits, NaN included (the vector paths
// rewrite a NaN to the reference's quiet NaN of the same sign).
#include <algorithm>
#include <cstring>
#include <string>

#include "ops/kv_store.h"
#include "cpu/x86.h"

namespace fuselm {

static void kv_store_reference(const KvStoreArgs& a) {
  for (int64_t t = 0; t < a.T; t++)
    for (int64_t i = 0; i < a.W; i++) {
      const float f = a.src[t * a.W + i];
      const int64_t at = a.table.row(a.pos0 + t) * a.W + i;
      if (a.cache_dtype == DType::F32)
        static_cast<float*>(a.cache)[at] = f;
      else
        static_cast<uint16_t*>(a.cache)[at] = a.cache_dtype == DType::F16 ? f32_to_f16(f) : f32_to_bf16(f);
    }
}

namespace {

// dst[i] = src[i] rounded to a 16-bit type, i < n
using NarrowFn = void (*)(uint16_t* dst, const float* src, int64_t n);

void narrow_f16_scalar(uint16_t* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = f32_to_f16(src[i]);
}
void narrow_bf16_scalar(uint16_t* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}

#if defined(__x86_64__)

// ---- AVX-512: sixteen values per step, the last n % 16 under a mask ----

// The reference's bits of 16 NaN-or-not values x as f16: F16C rounds like the reference, but
// keeps a NaN's payload where the reference writes sign | 0x7e00.
FUSELM_AVX512 inline __m256i f16_of16(__m512 x) {
  const __m256i h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m256i top = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(x), 16));
  const __m256i qnan = _mm256_or_si256(_mm256_and_si256(top, _mm256_set1_epi16(short(0x8000))), _mm256_set1_epi16(0x7e00));
  return _mm256_mask_blend_epi16(nan, h, qnan);
}

// bf16 as the reference: u + 0x7fff + (bit 16 of u), the top half (a carry rounds up, to
// infinity past the largest finite value); a NaN keeps its top half with the quiet bit set.
FUSELM_AVX512 inline __m256i bf16_of16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, r, q));
}

template <bool BF16>
FUSELM_AVX512 void narrow_avx512(uint16_t* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(src + i);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), BF16 ? bf16_of16(x) : f16_of16(x));
  }
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(m, src + i);
    _mm256_mask_storeu_epi16(dst + i, m, BF16 ? bf16_of16(x) : f16_of16(x));
  }
}

// ---- AVX2: eight values per step, the last n % 8 by the scalar converters ----

// Eight 32-bit lanes holding values below 2^16, as eight 16-bit values.
FUSELM_AVX2 inline __m128i pack8(__m256i v) {
  return _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

FUSELM_AVX2 inline __m128i f16_of8(__m256 x) {
  const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  const __m256i top = _mm256_srli_epi32(_mm256_castps_si256(x), 16);
  const __m256i qnan = _mm256_or_si256(_mm256_and_si256(top, _mm256_set1_epi32(0x8000)), _mm256_set1_epi32(0x7e00));
  // the mask's lanes (0 or -1) pack to 16 bits by signed saturation
  const __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(nan), _mm256_extracti128_si256(nan, 1));
  return _mm_blendv_epi8(h, pack8(qnan), nan16);
}

FUSELM_AVX2 inline __m128i bf16_of8(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  return pack8(_mm256_blendv_epi8(r, q, nan));
}

template <bool BF16>
FUSELM_AVX2 void narrow_avx2(uint16_t* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(src + i);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), BF16 ? bf16_of8(x) : f16_of8(x));
  }
  (BF16 ? narrow_bf16_scalar : narrow_f16_scalar)(dst + i, src + i, n - i);
}

#endif  // __x86_64__

NarrowFn pick_narrow(Impl impl, DType dt) {
  const bool bf16 = dt == DType::BF16;
#if defined(__x86_64__)
  if (impl == Impl::kAvx512) return bf16 ? narrow_avx512<true> : narrow_avx512<false>;
  if (impl == Impl::kAvx2) return bf16 ? narrow_avx2<true> : narrow_avx2<false>;
#endif
  return bf16 ? narrow_bf16_scalar : narrow_f16_scalar;
}

}  // namespace

// Rows t0 .. t0 + rows - 1 of src into consecutive cache rows from `row` on.
static void kv_store_run(const KvStoreArgs& a, const Exec& e, int64_t t0, int64_t rows, int64_t row) {
  constexpr int64_t kChunk = int64_t(1) << 18;  // values per task (1 MiB of f32)
  const int64_t n = rows * a.W;
  const float* src = a.src + t0 * a.W;
  if (a.cache_dtype == DType::F32) {
    float* dst = static_cast<float*>(a.cache) + row * a.W;
    e.pool->run((n + kChunk - 1) / kChunk, [&](int64_t task, int) {
      const int64_t i0 = task * kChunk;
      std::memcpy(dst + i0, src + i0, size_t(std::min(kChunk, n - i0)) * sizeof(float));
    });
    return;
  }
  const NarrowFn narrow = pick_narrow(e.impl, a.cache_dtype);
  uint16_t* dst = static_cast<uint16_t*>(a.cache) + row * a.W;
  e.pool->run((n + kChunk - 1) / kChunk, [&](int64_t task, int) {
    const int64_t i0 = task * kChunk;
    narrow(dst + i0, src + i0, std::min(kChunk, n - i0));
  });
}

void kv_store_cpu(const KvStoreArgs& a, const Exec& e) {
  if (a.cache_dtype != DType::F32 && a.cache_dtype != DType::F16 && a.cache_dtype != DType::BF16)
    throw Error("E_INVALID_ARG", std::string("kv_store_cpu: the cache must be f32, f16 or bf16, got ") + dtype_name(a.cache_dtype));
  if (e.impl == Impl::kReference) return kv_store_reference(a);
  // one run when contiguous; paged, one per block the positions touch
  for (int64_t p = a.pos0, end = a.pos0 + a.T, next; p < end; p = next) {
    next = a.table.run_end(p, end);
    kv_store_run(a, e, p - a.pos0, next - p, a.table.row(p));
  }
}

FUSELM_CPU_OP(kv_store_op::def, [](const Step& s, const Exec& e) { kv_store_cpu(kv_store_op::args(s), e); });

}  // namespace fuselm
