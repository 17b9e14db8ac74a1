// Scalar conversion of one row of any weight dtype to f32: the reference that every SIMD
// dequantizing path is tested against.
#pragma once
#include <cstdint>
#include <cstring>

#include "tensor.h"

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
    case DType::Q8_0: {
      const BlockQ8_0* b = static_cast<const BlockQ8_0*>(row);
      for (int64_t i = 0; i < n / kQ8Block; i++) {
        float d = f16_to_f32(b[i].d);
        for (int j = 0; j < kQ8Block; j++) out[i * kQ8Block + j] = d * float(b[i].qs[j]);
      }
      return;
    }
    case DType::I32: {
      const int32_t* v = static_cast<const int32_t*>(row);
      for (int64_t i = 0; i < n; i++) out[i] = float(v[i]);
      return;
    }
  }
}

}  // namespace fuselm
