// IQ4_NL: blocks of 32 with an f16 scale d and 4-bit indices into a fixed non-uniform table of
// 16 levels (denser near zero, where most weights are): x = d * kIq4nl[q]. llama-quantize writes
// it where a Q2_K / Q3_K tensor's rows are not whole 256-blocks.
//
// Searched fit (llama.cpp's, without an importance matrix): weights x_i^2; the scale that maps
// the value of largest magnitude onto +127 (past the top level), then 15 candidates mapping it
// onto -127 + k, k = -7..7, each
// with its weighted least-squares scale for the levels it rounds to; the best kept, the levels
// then recomputed against the scale as stored in f16. Plain fit: the first candidate alone.
#include <cmath>

#include "quant/quant.h"
#include "quant/search.h"
#include "tensor.h"

namespace fuselm::quant {

namespace {

constexpr int8_t kIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// The index of the table level nearest to v, ties to the upper one. The levels are integers,
// so every boundary between two (their midpoint) is a multiple of 1/2 and the answer is constant
// on each [k/2, (k + 1)/2): a table over floor(2v) replaces the search (the hot loop tries 16
// scales per block).
struct LevelTable {
  uint8_t at[512];  // index floor(2v) + 256, v in [-128, 128)
  LevelTable() {
    for (int k = -256; k < 256; k++) {
      const float v = float(k) / 2;
      int best = 0;
      for (int i = 1; i < 16; i++)
        if (v - kIq4nl[best] >= kIq4nl[i] - v) best = i;  // at a midpoint the upper level wins
      at[k + 256] = uint8_t(best);
    }
  }
};
const LevelTable kLevels;

int nearest_level(float v) {
  if (v <= kIq4nl[0]) return 0;
  if (v >= kIq4nl[15]) return 15;
  return kLevels.at[int(std::floor(2 * v)) + 256];
}

}  // namespace

void iq4_nl_row(const float* x, uint8_t* out, int64_t n, bool search) {
  for (int64_t b = 0; b < n / 32; b++, out += 18, x += 32) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
      if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
    uint8_t L[32];
    if (amax < 1e-15f) {
      for (int j = 0; j < 18; j++) out[j] = 0;  // d = 0
      continue;
    }
    float d = max / kIq4nl[0];
    if (search) {
      double best = -1;
      // k = -8: the table the other way round (the largest value onto +127, clamped to the top
      // level 113); then k = -7..7: the largest value onto -127 + k
      for (int k = -8; k <= 7; k++) {
        const float id = k == -8 ? -float(kIq4nl[0]) / max : (float(k) + kIq4nl[0]) / max;
        double sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; j++) {
          const double w = double(x[j]) * x[j], q = kIq4nl[nearest_level(id * x[j])];
          sumqx += w * q * x[j];
          sumq2 += w * q * q;
        }
        if (sumq2 > 0 && (best < 0 || sumqx * sumqx > best * sumq2)) {
          d = float(sumqx / sumq2);
          best = sumqx / sumq2 * sumqx;
        }
      }
    }
    const uint16_t h = f32_to_f16(d);
    out[0] = uint8_t(h & 0xff);
    out[1] = uint8_t(h >> 8);
    const float dh = f16_to_f32(h), id = dh != 0 ? 1 / dh : 0;
    for (int j = 0; j < 32; j++) L[j] = uint8_t(nearest_level(id * x[j]));
    for (int j = 0; j < 16; j++) out[2 + j] = uint8_t(L[j] | (L[j + 16] << 4));
  }
}

}  // namespace fuselm::quant
