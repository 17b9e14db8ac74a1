// Scalar conversion of weight rows of any dtype to f32. dequant_row_ref is the reference that
// every SIMD dequantizing path is tested against; dequant_span is the portable (no intrinsics)
// fast path's version of it, branch-free for f16 so the compiler can vectorize it.
#pragma once
#include <cstdint>
#include <cstring>

#include "tensor.h"
#include "cpu/quant_ref.h"

namespace fuselm {

inline void dequant_row_ref(const void* row, DType dtype, int64_t n, float* out) {
  switch (dtype) {
    case DType::F32: std::memcpy(out, row, size_t(n) * 4); return;
    case DType::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(row);
      for (int64_t i = 0; i < n; i++) out[i] = f16_to_f32(h[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* h = static_cast<const uint16_t*>(row);
      for (int64_t i = 0; i < n; i++) out[i] = bf16_to_f32(h[i]);
      return;
    }
    case DType::I32: {
      const int32_t* v = static_cast<const int32_t*>(row);
      for (int64_t i = 0; i < n; i++) out[i] = float(v[i]);
      return;
    }
    default: dequant_blocks_ref(row, dtype, n, out); return;  // q8_0 and the GGUF block formats
  }
}

// f16 -> f32 without branches or tables (M. Dukhan's FP16 method): equal to f16_to_f32 for
// every finite and infinite input, subnormals included.
inline float f16_to_f32_inline(uint16_t h) {
  const uint32_t w = uint32_t(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  uint32_t u = (two_w >> 4) + (0xE0u << 23);
  float normalized;
  std::memcpy(&normalized, &u, 4);
  normalized *= 0x1.0p-112f;
  u = (two_w >> 17) | (126u << 23);
  float denormalized;
  std::memcpy(&denormalized, &u, 4);
  denormalized -= 0.5f;
  uint32_t nb, db;
  std::memcpy(&nb, &normalized, 4);
  std::memcpy(&db, &denormalized, 4);
  const uint32_t small = 0u - uint32_t(two_w < (1u << 27));  // all ones for zeros and subnormals
  const uint32_t bits = sign | (db & small) | (nb & ~small);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Values [k, k + n) of one row as f32 (no intrinsics). For q8_0, k is a multiple of 32.
inline void dequant_span(const void* row, DType dtype, int64_t k, int64_t n, float* out) {
  switch (dtype) {
    case DType::F32: std::memcpy(out, static_cast<const float*>(row) + k, size_t(n) * 4); return;
    case DType::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(row) + k;
      for (int64_t i = 0; i < n; i++) out[i] = f16_to_f32_inline(h[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* h = static_cast<const uint16_t*>(row) + k;
      for (int64_t i = 0; i < n; i++) out[i] = bf16_to_f32(h[i]);
      return;
    }
    case DType::Q8_0: {
      const BlockQ8_0* b = static_cast<const BlockQ8_0*>(row) + k / kQ8Block;
      for (int64_t i = 0; i < n; i += kQ8Block, b++) {
        const float d = f16_to_f32_inline(b->d);
        if (n - i >= kQ8Block) {
          for (int j = 0; j < kQ8Block; j++) out[i + j] = d * float(b->qs[j]);
        } else {
          for (int64_t j = 0; j < n - i; j++) out[i + j] = d * float(b->qs[j]);
        }
      }
      return;
    }
    case DType::I32: {
      const int32_t* v = static_cast<const int32_t*>(row) + k;
      for (int64_t i = 0; i < n; i++) out[i] = float(v[i]);
      return;
    }
    default: {  // the GGUF block formats: k and n whole blocks (their kernels live elsewhere)
      const BlockGeom g = dtype_block(dtype);
      dequant_blocks_ref(static_cast<const uint8_t*>(row) + size_t(k / g.values) * size_t(g.bytes), dtype, n, out);
      return;
    }
  }
}

}  // namespace fuselm
