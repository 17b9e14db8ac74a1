// embedding: gather rows of a token table and widen them to f32.
// The reference widens each value with the scalar converters; the fast path widens 16 (AVX-512)
// or 8 (AVX2) values per step with the loaders in simd.h (F16C for f16, a shift for bf16,
// int8 -> f32 times the block scale for q8_0), so it produces the same bits as the reference,
// and splits the tokens over the threads when there are enough of them to pay for it.
#include <algorithm>
#include <cstring>
#include <string>

#include "ops/embedding.h"
#include "cpu/dequant.h"
#include "cpu/simd.h"

namespace fuselm {

static void embedding_reference(const EmbeddingArgs& a) {
  const size_t rb = row_bytes(a.dtype, a.D);
  const uint8_t* table = static_cast<const uint8_t*>(a.table);
  for (int64_t t = 0; t < a.T; t++) dequant_row_ref(table + size_t(a.ids[t]) * rb, a.dtype, a.D, a.out + t * a.D);
}

namespace {

using RowFn = void (*)(const uint8_t* row, int64_t D, float* out);

void row_portable(DType dt, const uint8_t* row, int64_t D, float* out) { dequant_span(row, dt, 0, D, out); }
template <DType DT>
void row_portable_of(const uint8_t* row, int64_t D, float* out) { row_portable(DT, row, D, out); }

// The GGUF block formats: the scalar dequantizer (llama.cpp's order of operations), one row per token.
template <DType DT>
void row_blocks(const uint8_t* row, int64_t D, float* out) { dequant_row_ref(row, DT, D, out); }

void row_f32(const uint8_t* row, int64_t D, float* out) { std::memcpy(out, row, size_t(D) * 4); }

#if defined(__x86_64__)
template <class L>
FUSELM_AVX512 void row_avx512(const uint8_t* row, int64_t D, float* out) { simd512::widen_row<L>(row, D, out); }
template <class L>
FUSELM_AVX2 void row_avx2(const uint8_t* row, int64_t D, float* out) { simd256::widen_row<L>(row, D, out); }
#endif

RowFn pick(Impl impl, DType dt) {
  if (dt == DType::F32) return &row_f32;
#if defined(__x86_64__)
  if (impl == Impl::kAvx512) {
    switch (dt) {
      case DType::F16: return &row_avx512<simd512::F16>;
      case DType::BF16: return &row_avx512<simd512::BF16>;
      case DType::Q8_0: return &row_avx512<simd512::Q8_0>;
      default: break;
    }
  }
  if (impl == Impl::kAvx2) {
    switch (dt) {
      case DType::F16: return &row_avx2<simd256::F16>;
      case DType::BF16: return &row_avx2<simd256::BF16>;
      case DType::Q8_0: return &row_avx2<simd256::Q8_0>;
      default: break;
    }
  }
#endif
  switch (dt) {
    case DType::F16: return &row_portable_of<DType::F16>;
    case DType::BF16: return &row_portable_of<DType::BF16>;
    case DType::Q8_0: return &row_portable_of<DType::Q8_0>;
    case DType::Q4_0: return &row_blocks<DType::Q4_0>;
    case DType::Q4_1: return &row_blocks<DType::Q4_1>;
    case DType::Q5_0: return &row_blocks<DType::Q5_0>;
    case DType::Q5_1: return &row_blocks<DType::Q5_1>;
    case DType::IQ4_NL: return &row_blocks<DType::IQ4_NL>;
    case DType::Q2_K: return &row_blocks<DType::Q2_K>;
    case DType::Q3_K: return &row_blocks<DType::Q3_K>;
    case DType::Q4_K: return &row_blocks<DType::Q4_K>;
    case DType::Q5_K: return &row_blocks<DType::Q5_K>;
    case DType::Q6_K: return &row_blocks<DType::Q6_K>;
    case DType::IQ4_XS: return &row_blocks<DType::IQ4_XS>;
    default: return nullptr;
  }
}

}  // namespace

void embedding_cpu(const EmbeddingArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return embedding_reference(a);
  const RowFn fn = pick(e.impl, a.dtype);
  if (!fn) throw Error("E_INVALID_ARG", std::string("embedding: unsupported table dtype ") + dtype_name(a.dtype));
  const size_t rb = row_bytes(a.dtype, a.D);
  const uint8_t* table = static_cast<const uint8_t*>(a.table);
  // Tasks of at least ~64K values: below that a wakeup of the other threads costs more than
  // the rows (one row of a 2048-wide table takes well under a microsecond).
  const int64_t per_task = std::max<int64_t>(1, (int64_t(1) << 16) / a.D);
  e.pool->run((a.T + per_task - 1) / per_task, [&](int64_t task, int) {
    const int64_t t1 = std::min(a.T, (task + 1) * per_task);
    for (int64_t t = task * per_task; t < t1; t++) fn(table + size_t(a.ids[t]) * rb, a.D, a.out + t * a.D);
  });
}

FUSELM_CPU_OP(embedding_op::def, [](const Step& s, const Exec& e) { embedding_cpu(embedding_op::args(s), e); });

}  // namespace fuselm
