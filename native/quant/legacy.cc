// The 32-value block formats: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (layouts in lib/formats/quants.ts).
//
// Plain fits (llama.cpp's reference quantizers, which it also uses for these formats when no
// importance matrix is given): Q4_0/Q5_0 map the value of largest magnitude onto the most
// negative level; Q4_1/Q5_1 map [min, max] onto [0, 15/31].
// Searched fits: the symmetric / asymmetric least-squares searches of search.h, weighted by
// w_i = sqrt(sigma^2 + x_i^2) (sigma^2 the row's mean square), the weighting llama.cpp applies
// with a unit importance matrix: errors on large weights cost more. The levels are then
// recomputed against the scale and min as rounded to f16, which is what the file holds.
// Q8_0 has one quantizer, bit-exact with llama.cpp's reference (its error is already far below
// the other formats'; a searched 8-bit scale would gain little and could emit -128, which
// some int8 dot products mishandle).
#include <algorithm>
#include <cmath>
#include <vector>

#include "quant/quant.h"
#include "quant/search.h"
#include "tensor.h"

namespace fuselm::quant {

namespace {

void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  p[0] = uint8_t(h & 0xff);
  p[1] = uint8_t(h >> 8);
}
float f16_at(const uint8_t* p) { return f16_to_f32(uint16_t(p[0] | (p[1] << 8))); }

// sqrt(sigma^2 + x^2) per value, sigma^2 = mean square of the row
std::vector<float> row_weights(const float* x, int64_t n) {
  double s2 = 0;
  for (int64_t i = 0; i < n; i++) s2 += double(x[i]) * x[i];
  const float sigma2 = float(s2 / double(n));
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) w[size_t(i)] = std::sqrt(sigma2 + x[i] * x[i]);
  return w;
}

// Levels L (0..2^bits - 1) of one block into qs (low nibbles values 0..15, high 16..31) and, for
// 5 bits, the fifth bits into the u32 qh (bit j = value j).
void pack_nibbles(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < 16; j++) qs[j] = uint8_t((L[j] & 15) | ((L[j + 16] & 15) << 4));
}
void pack_fifth_bits(const uint8_t* L, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < 32; j++) h |= uint32_t(L[j] >> 4) << j;
  for (int b = 0; b < 4; b++) qh[b] = uint8_t(h >> (8 * b));
}

// Symmetric formats (Q4_0: nmax 8, Q5_0: nmax 16): x = d * (L - nmax). Writes d at p[0..1]
// and returns the levels in L.
void symmetric_block(const float* x, const float* w, int nmax, bool search, uint8_t* p, uint8_t* L) {
  if (!search) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
      if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
    const float d = max / float(-nmax), id = d != 0 ? 1 / d : 0;
    put_f16(p, d);
    // truncation of x/d + nmax + 0.5 (as llama.cpp's reference: the same as rounding here,
    // since x/d + nmax >= 0)
    for (int j = 0; j < 32; j++) L[j] = uint8_t(std::min(2 * nmax - 1, int(int8_t(x[j] * id + float(nmax) + 0.5f))));
    return;
  }
  const float d = fit_symmetric(32, nmax, x, w, L);
  put_f16(p, d);
  const float dh = f16_at(p);
  if (dh == 0) return;  // every level decodes to 0 anyway
  for (int j = 0; j < 32; j++) L[j] = uint8_t(nmax + clampi(round_int(x[j] / dh), -nmax, nmax - 1));
}

// Asymmetric formats (Q4_1: nmax 15, Q5_1: nmax 31): x = d * L + m. Writes d, m at p[0..3].
void asymmetric_block(const float* x, const float* w, int nmax, bool search, uint8_t* p, uint8_t* L) {
  if (!search) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; j++) { lo = std::min(lo, x[j]); hi = std::max(hi, x[j]); }
    const float d = (hi - lo) / float(nmax), id = d != 0 ? 1 / d : 0;
    put_f16(p, d);
    put_f16(p + 2, lo);
    for (int j = 0; j < 32; j++) L[j] = uint8_t(std::min(nmax, int(int8_t((x[j] - lo) * id + 0.5f))));
    return;
  }
  float mn = 0;
  const float d = nmax == 15 ? fit_asymmetric(32, 15, x, w, L, &mn, -1.0f, 0.1f, 20)
                             : fit_asymmetric(32, 31, x, w, L, &mn, -0.5f, 0.1f, 15);
  put_f16(p, d);
  put_f16(p + 2, -mn);
  const float dh = f16_at(p), mh = f16_at(p + 2);
  if (dh == 0) return;
  for (int j = 0; j < 32; j++) L[j] = uint8_t(clampi(round_int((x[j] - mh) / dh), 0, nmax));
}

}  // namespace

void q4_0_row(const float* x, uint8_t* out, int64_t n, bool search) {
  const std::vector<float> w = search ? row_weights(x, n) : std::vector<float>();
  uint8_t L[32];
  for (int64_t b = 0; b < n / 32; b++, out += 18) {
    symmetric_block(x + 32 * b, search ? w.data() + 32 * b : nullptr, 8, search, out, L);
    pack_nibbles(L, out + 2);
  }
}

void q5_0_row(const float* x, uint8_t* out, int64_t n, bool search) {
  const std::vector<float> w = search ? row_weights(x, n) : std::vector<float>();
  uint8_t L[32];
  for (int64_t b = 0; b < n / 32; b++, out += 22) {
    symmetric_block(x + 32 * b, search ? w.data() + 32 * b : nullptr, 16, search, out, L);
    pack_fifth_bits(L, out + 2);
    pack_nibbles(L, out + 6);
  }
}

void q4_1_row(const float* x, uint8_t* out, int64_t n, bool search) {
  const std::vector<float> w = search ? row_weights(x, n) : std::vector<float>();
  uint8_t L[32];
  for (int64_t b = 0; b < n / 32; b++, out += 20) {
    asymmetric_block(x + 32 * b, search ? w.data() + 32 * b : nullptr, 15, search, out, L);
    pack_nibbles(L, out + 4);
  }
}

void q5_1_row(const float* x, uint8_t* out, int64_t n, bool search) {
  const std::vector<float> w = search ? row_weights(x, n) : std::vector<float>();
  uint8_t L[32];
  for (int64_t b = 0; b < n / 32; b++, out += 24) {
    asymmetric_block(x + 32 * b, search ? w.data() + 32 * b : nullptr, 31, search, out, L);
    pack_fifth_bits(L, out + 4);
    pack_nibbles(L, out + 8);
  }
}

void q8_0_row(const float* x, uint8_t* out, int64_t n, bool /*search*/) {
  for (int64_t b = 0; b < n / 32; b++, out += 34) {
    const float* v = x + 32 * b;
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127, id = d != 0 ? 1 / d : 0;
    put_f16(out, d);  // the levels use the unrounded d, as the reference does
    for (int j = 0; j < 32; j++) out[2 + j] = uint8_t(int8_t(std::roundf(v[j] * id)));
  }
}

}  // namespace fuselm::quant
