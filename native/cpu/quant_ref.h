// Scalar dequantization of one block of each GGUF block format to f32, in the order of
// operations llama.cpp's dequantize_row_* use (so an embedding row read from a quantized table
// equals llama.cpp's get_rows bit for bit). The references of the quantized matmul kernels and
// the embedding op are built on these; native/quant_blocks.h documents the layouts.
#pragma once
#include <cstdint>
#include <cstring>

#include "tensor.h"

namespace fuselm {

namespace quant_ref {

inline float h(uint16_t v) { return f16_to_f32(v); }

inline void q4_0(const BlockQ4_0& b, float* y) {
  const float d = h(b.d);
  for (int j = 0; j < 16; j++) {
    y[j] = float((b.qs[j] & 0x0f) - 8) * d;
    y[j + 16] = float((b.qs[j] >> 4) - 8) * d;
  }
}
inline void q4_1(const BlockQ4_1& b, float* y) {
  const float d = h(b.d), m = h(b.m);
  for (int j = 0; j < 16; j++) {
    y[j] = float(b.qs[j] & 0x0f) * d + m;
    y[j + 16] = float(b.qs[j] >> 4) * d + m;
  }
}
inline uint32_t qh32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline void q5_0(const BlockQ5_0& b, float* y) {
  const float d = h(b.d);
  const uint32_t qh = qh32(b.qh);
  for (int j = 0; j < 16; j++) {
    const int lo = (b.qs[j] & 0x0f) | int(((qh >> j) & 1) << 4);
    const int hi = (b.qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
    y[j] = float(lo - 16) * d;
    y[j + 16] = float(hi - 16) * d;
  }
}
inline void q5_1(const BlockQ5_1& b, float* y) {
  const float d = h(b.d), m = h(b.m);
  const uint32_t qh = qh32(b.qh);
  for (int j = 0; j < 16; j++) {
    const int lo = (b.qs[j] & 0x0f) | int(((qh >> j) & 1) << 4);
    const int hi = (b.qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
    y[j] = float(lo) * d + m;
    y[j + 16] = float(hi) * d + m;
  }
}
inline void q8_0(const BlockQ8_0& b, float* y) {
  const float d = h(b.d);
  for (int j = 0; j < 32; j++) y[j] = d * float(b.qs[j]);
}
inline void iq4_nl(const BlockIQ4_NL& b, float* y) {
  const float d = h(b.d);
  for (int j = 0; j < 16; j++) {
    y[j] = d * float(kIq4nlValues[b.qs[j] & 0x0f]);
    y[j + 16] = d * float(kIq4nlValues[b.qs[j] >> 4]);
  }
}
inline void q2_k(const BlockQ2_K& b, float* y) {
  const float d = h(b.d), dmin = h(b.dmin);
  int is = 0;
  for (int n = 0; n < 2; n++) {  // 128 values from qs[32n .. 32n + 32), 2 bits at 4 shifts
    const uint8_t* q = b.qs + 32 * n;
    for (int shift = 0; shift < 8; shift += 2)
      for (int half = 0; half < 2; half++) {
        const uint8_t sc = b.scales[is++];
        const float dl = d * float(sc & 0x0f), ml = dmin * float(sc >> 4);
        for (int l = 0; l < 16; l++) *y++ = dl * float((q[16 * half + l] >> shift) & 3) - ml;
      }
  }
}
inline void q3_k(const BlockQ3_K& b, float* y) {
  const float d = h(b.d);
  int8_t sc[16];
  q3k_scales(b.scales, sc);
  int is = 0;
  uint8_t m = 1;
  for (int n = 0; n < 2; n++) {
    const uint8_t* q = b.qs + 32 * n;
    for (int shift = 0; shift < 8; shift += 2, m = uint8_t(m << 1))
      for (int half = 0; half < 2; half++) {
        const float dl = d * float(sc[is++]);
        for (int l = 0; l < 16; l++) {
          const int i = 16 * half + l;
          *y++ = dl * float(((q[i] >> shift) & 3) - ((b.hmask[i] & m) ? 0 : 4));
        }
      }
  }
}
inline void q4_k(const BlockQ4_K& b, float* y) {
  const float d = h(b.d), dmin = h(b.dmin);
  for (int c = 0; c < 4; c++) {  // 64 values: low nibbles of 32 bytes, then their high nibbles
    uint8_t sc, mn;
    k4_scale_min(b.scales, 2 * c, &sc, &mn);
    const float d1 = d * float(sc), m1 = dmin * float(mn);
    k4_scale_min(b.scales, 2 * c + 1, &sc, &mn);
    const float d2 = d * float(sc), m2 = dmin * float(mn);
    for (int l = 0; l < 32; l++) y[64 * c + l] = d1 * float(b.qs[32 * c + l] & 0x0f) - m1;
    for (int l = 0; l < 32; l++) y[64 * c + 32 + l] = d2 * float(b.qs[32 * c + l] >> 4) - m2;
  }
}
inline void q5_k(const BlockQ5_K& b, float* y) {
  const float d = h(b.d), dmin = h(b.dmin);
  for (int c = 0; c < 4; c++) {
    uint8_t sc, mn;
    k4_scale_min(b.scales, 2 * c, &sc, &mn);
    const float d1 = d * float(sc), m1 = dmin * float(mn);
    k4_scale_min(b.scales, 2 * c + 1, &sc, &mn);
    const float d2 = d * float(sc), m2 = dmin * float(mn);
    for (int l = 0; l < 32; l++) {
      const int q1 = (b.qs[32 * c + l] & 0x0f) + (((b.qh[l] >> (2 * c)) & 1) << 4);
      const int q2 = (b.qs[32 * c + l] >> 4) + (((b.qh[l] >> (2 * c + 1)) & 1) << 4);
      y[64 * c + l] = d1 * float(q1) - m1;
      y[64 * c + 32 + l] = d2 * float(q2) - m2;
    }
  }
}
inline void q6_k(const BlockQ6_K& b, float* y) {
  const float d = h(b.d);
  for (int n = 0; n < 2; n++) {  // 128 values from ql[64n..], qh[32n..], scales[8n..]
    const uint8_t* ql = b.ql + 64 * n;
    const uint8_t* qh = b.qh + 32 * n;
    const int8_t* sc = b.scales + 8 * n;
    for (int l = 0; l < 32; l++) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[128 * n + l] = d * float(sc[is]) * float(q1);
      y[128 * n + l + 32] = d * float(sc[is + 2]) * float(q2);
      y[128 * n + l + 64] = d * float(sc[is + 4]) * float(q3);
      y[128 * n + l + 96] = d * float(sc[is + 6]) * float(q4);
    }
  }
}
inline void iq4_xs(const BlockIQ4_XS& b, float* y) {
  const float d = h(b.d);
  for (int ib = 0; ib < 8; ib++) {
    const int ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) | (((b.scales_h >> (2 * ib)) & 3) << 4);
    const float dl = d * float(ls - 32);
    const uint8_t* q = b.qs + 16 * ib;
    for (int j = 0; j < 16; j++) {
      y[32 * ib + j] = dl * float(kIq4nlValues[q[j] & 0x0f]);
      y[32 * ib + j + 16] = dl * float(kIq4nlValues[q[j] >> 4]);
    }
  }
}

template <class B>
inline const B& at(const void* row, int64_t i) {
  return static_cast<const B*>(row)[i];
}

}  // namespace quant_ref

// The n values (whole blocks) of a row of block format `t` as f32. Returns false for a plain type.
inline bool dequant_blocks_ref(const void* row, DType t, int64_t n, float* out) {
  using namespace quant_ref;
  const int64_t nb = n / dtype_block(t).values;
  switch (t) {
    case DType::Q8_0: for (int64_t i = 0; i < nb; i++) q8_0(at<BlockQ8_0>(row, i), out + 32 * i); return true;
    case DType::Q4_0: for (int64_t i = 0; i < nb; i++) q4_0(at<BlockQ4_0>(row, i), out + 32 * i); return true;
    case DType::Q4_1: for (int64_t i = 0; i < nb; i++) q4_1(at<BlockQ4_1>(row, i), out + 32 * i); return true;
    case DType::Q5_0: for (int64_t i = 0; i < nb; i++) q5_0(at<BlockQ5_0>(row, i), out + 32 * i); return true;
    case DType::Q5_1: for (int64_t i = 0; i < nb; i++) q5_1(at<BlockQ5_1>(row, i), out + 32 * i); return true;
    case DType::IQ4_NL: for (int64_t i = 0; i < nb; i++) iq4_nl(at<BlockIQ4_NL>(row, i), out + 32 * i); return true;
    case DType::Q2_K: for (int64_t i = 0; i < nb; i++) q2_k(at<BlockQ2_K>(row, i), out + kQK * i); return true;
    case DType::Q3_K: for (int64_t i = 0; i < nb; i++) q3_k(at<BlockQ3_K>(row, i), out + kQK * i); return true;
    case DType::Q4_K: for (int64_t i = 0; i < nb; i++) q4_k(at<BlockQ4_K>(row, i), out + kQK * i); return true;
    case DType::Q5_K: for (int64_t i = 0; i < nb; i++) q5_k(at<BlockQ5_K>(row, i), out + kQK * i); return true;
    case DType::Q6_K: for (int64_t i = 0; i < nb; i++) q6_k(at<BlockQ6_K>(row, i), out + kQK * i); return true;
    case DType::IQ4_XS: for (int64_t i = 0; i < nb; i++) iq4_xs(at<BlockIQ4_XS>(row, i), out + kQK * i); return true;
    case DType::F32: case DType::F16: case DType::BF16: case DType::I32: return false;
  }
  return false;
}

}  // namespace fuselm
