// For the quantized matmul tests (gemv_quant_test.cu, gemm_quant_test.cu): random weight rows in
// each GGUF block format, and a plain scalar dequantization of them written value by value from
// the formats' definitions (native/quant_blocks.h), independent of the kernels' 32-value units
// and bit tricks (cuda/quant_unit.cuh).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "harness.h"
#include "tensor.h"

namespace emu_tests {

struct QFormat {
  fuselm::DType dt;
  int values, bytes;  // per block
  // f16 fields set to sane values (random bytes would hold NaN / inf): byte offsets, -1 none
  int d_at, m_at;
  float d_scale, m_scale;  // |d| in [0.5, 1] * d_scale; |m| likewise (sign random)
};

// d_scale keeps |w| around 1 or below (so f16 tiles never overflow).
inline const std::vector<QFormat>& quant_formats() {
  using fuselm::DType;
  static const std::vector<QFormat> f = {
      {DType::Q8_0, 32, 34, 0, -1, 0.01f, 0},       {DType::Q4_0, 32, 18, 0, -1, 0.1f, 0},
      {DType::Q4_1, 32, 20, 0, 2, 0.1f, 0.5f},      {DType::Q5_0, 32, 22, 0, -1, 0.05f, 0},
      {DType::Q5_1, 32, 24, 0, 2, 0.05f, 0.5f},     {DType::IQ4_NL, 32, 18, 0, -1, 0.008f, 0},
      {DType::Q2_K, 256, 84, 80, 82, 0.05f, 0.02f}, {DType::Q3_K, 256, 110, 108, -1, 0.01f, 0},
      {DType::Q4_K, 256, 144, 0, 2, 0.002f, 0.002f}, {DType::Q5_K, 256, 176, 0, 2, 0.001f, 0.001f},
      {DType::Q6_K, 256, 210, 208, -1, 0.0002f, 0},  {DType::IQ4_XS, 256, 136, 0, -1, 0.0002f, 0},
  };
  return f;
}

inline const QFormat& quant_format(fuselm::DType dt) {
  for (const QFormat& f : quant_formats())
    if (f.dt == dt) return f;
  fail_at(__FILE__, __LINE__, "no such block format");
}

// N rows of K values (K a multiple of the block), starting `offset` bytes into the buffer.
inline std::vector<uint8_t> random_quant_rows(Rng& rng, const QFormat& f, int64_t N, int64_t K, size_t offset) {
  const size_t nblocks = size_t(N * (K / f.values));
  std::vector<uint8_t> w(offset + nblocks * size_t(f.bytes));
  for (size_t i = offset; i < w.size(); i++) w[i] = uint8_t(rng.next());
  for (size_t b = 0; b < nblocks; b++) {
    uint8_t* p = w.data() + offset + b * size_t(f.bytes);
    const uint16_t d = fuselm::f32_to_f16((rng.next() & 1 ? -1.f : 1.f) * rng.uniform(0.5f, 1.f) * f.d_scale);
    std::memcpy(p + f.d_at, &d, 2);
    if (f.m_at >= 0) {
      const uint16_t m = fuselm::f32_to_f16((rng.next() & 1 ? -1.f : 1.f) * rng.uniform(0.5f, 1.f) * f.m_scale);
      std::memcpy(p + f.m_at, &m, 2);
    }
  }
  return w;
}

namespace detail {
inline float h(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return fuselm::f16_to_f32(v);
}
constexpr int kNl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
inline void k4(const uint8_t* s, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = s[j] & 63, mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}
// value v (0..255 or 0..31) of the block at p
inline float value(fuselm::DType dt, const uint8_t* p, int v) {
  using fuselm::DType;
  switch (dt) {
    case DType::Q8_0: return h(p) * float(int8_t(p[2 + v]));
    case DType::Q4_0: return h(p) * float(((v < 16 ? p[2 + v] : p[2 + v - 16] >> 4) & 15) - 8);
    case DType::Q4_1: return h(p) * float((v < 16 ? p[4 + v] : p[4 + v - 16] >> 4) & 15) + h(p + 2);
    case DType::IQ4_NL: return h(p) * float(kNl[(v < 16 ? p[2 + v] : p[2 + v - 16] >> 4) & 15]);
    case DType::Q5_0:
    case DType::Q5_1: {
      const bool one = dt == DType::Q5_1;
      uint32_t qh;
      std::memcpy(&qh, p + (one ? 4 : 2), 4);
      const uint8_t* qs = p + (one ? 8 : 6);
      const int q = (((v < 16 ? qs[v] : qs[v - 16] >> 4) & 15) | int((qh >> v) & 1) << 4);
      return one ? h(p) * float(q) + h(p + 2) : h(p) * float(q - 16);
    }
    case DType::Q2_K: {  // 128-value halves; in each, 4 bit pairs of 32 bytes; scale per 16
      const int half = v / 128, r = v % 128, shift = 2 * (r / 32), l = r % 32;
      const int q = (p[16 + 32 * half + l] >> shift) & 3, sc = p[8 * half + r / 16];
      return h(p + 80) * float(sc & 15) * float(q) - h(p + 82) * float(sc >> 4);
    }
    case DType::Q3_K: {
      const int half = v / 128, r = v % 128, s = r / 32, l = r % 32, is = 8 * half + r / 16;
      const int q = ((p[32 + 32 * half + l] >> (2 * s)) & 3) - ((p[l] >> (4 * half + s)) & 1 ? 0 : 4);
      const uint8_t* sb = p + 96;
      const int lo = is < 8 ? sb[is] & 15 : sb[is - 8] >> 4, hi = (sb[8 + is % 4] >> (2 * (is / 4))) & 3;
      return h(p + 108) * float((lo | hi << 4) - 32) * float(q);
    }
    case DType::Q4_K:
    case DType::Q5_K: {
      const bool five = dt == DType::Q5_K;
      const int j = v / 32, l = v % 32;
      int q = (p[(five ? 48 : 16) + 32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
      if (five) q |= ((p[16 + l] >> j) & 1) << 4;
      int sc, mn;
      k4(p + 4, j, sc, mn);
      return h(p) * float(sc) * float(q) - h(p + 2) * float(mn);
    }
    case DType::Q6_K: {
      const int half = v / 128, r = v % 128, g = r / 32, l = r % 32;
      const int lo = (p[64 * half + 32 * (g % 2) + l] >> (4 * (g / 2))) & 15;
      const int hi = (p[128 + 32 * half + l] >> (2 * g)) & 3;
      return h(p + 208) * float(int8_t(p[192 + 8 * half + 2 * g + l / 16])) * float((lo | hi << 4) - 32);
    }
    case DType::IQ4_XS: {
      const int ib = v / 32, l = v % 32;
      uint16_t sh;
      std::memcpy(&sh, p + 2, 2);
      const int ls = ((p[4 + ib / 2] >> (4 * (ib % 2))) & 15) | ((sh >> (2 * ib)) & 3) << 4;
      const int n = (l < 16 ? p[8 + 16 * ib + l] : p[8 + 16 * ib + l - 16] >> 4) & 15;
      return h(p) * float(ls - 32) * float(kNl[n]);
    }
    default:
      fail_at(__FILE__, __LINE__, "not a block format");
  }
}
}  // namespace detail

// Row n of K values.
inline void dequant_quant_row(const QFormat& f, const uint8_t* rows, int64_t n, int64_t K, float* out) {
  const int64_t nb = K / f.values;
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* p = rows + size_t(n * nb + b) * size_t(f.bytes);
    for (int v = 0; v < f.values; v++) out[b * f.values + v] = detail::value(f.dt, p, v);
  }
}

}  // namespace emu_tests
