// The k-quant super-block formats: Q4_K, Q5_K (8 sub-blocks of 32, each with a 6-bit scale
// and a 6-bit min under the f16 super-scales d and dmin), Q6_K (16 sub-blocks of 16, each
// with an int8 scale under the f16 d), Q2_K (16 sub-blocks of 16, 4-bit scale and min under d,
// dmin) and Q3_K (16 sub-blocks of 16, 6-bit signed scales under d). Layouts in
// lib/formats/quants.ts.
//
// Searched fits follow llama.cpp's k-quant design (written from its description):
//  - Q4_K / Q5_K: each sub-block gets the asymmetric search of search.h, weighted by
//    w_i = rms(sub-block) + |x_i| (favoring the large values that matter most to a matmul),
//    over 21 grid scales (Q4_K: rmin -1, step 0.1) or 16 (Q5_K: rmin -0.5, step 0.1);
//  - Q6_K: each sub-block gets the symmetric search weighted by x_i^2;
//  - Q2_K: the asymmetric search weighted by |x_i|, on absolute errors, 16 grid scales;
//  - Q3_K: the symmetric fit refined level by level (search.h fit_symmetric_refined);
//  - the sub-block scales (and mins) are then quantized to 6 bits (Q6_K: 8 bits signed)
//    against the largest, and the levels recomputed against the scales as stored.
// Plain fits: each sub-block's own min/max (Q6_K, Q3_K: signed max) fit, then the same scale
// quantization and level recomputation: the baseline the searched fit is measured against.
#include <algorithm>
#include <cmath>

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

// Q4_K/Q5_K's 12 scale bytes: sub-blocks 0..3 keep scale and min in the low 6 bits of bytes
// j and j + 4; sub-blocks 4..7 keep their low 4 bits in byte j + 4 (scale low nibble, min
// high nibble) and their top 2 bits in the top 2 bits of bytes j - 4 (scale) and j (min).
void pack_scale_min(uint8_t* s, int j, int sc, int m) {
  if (j < 4) {
    s[j] = uint8_t(sc);
    s[j + 4] = uint8_t(m);
  } else {
    s[j + 4] = uint8_t((sc & 0xf) | ((m & 0xf) << 4));
    s[j - 4] |= uint8_t((sc >> 4) << 6);
    s[j] |= uint8_t((m >> 4) << 6);
  }
}
void unpack_scale_min(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// One Q4_K/Q5_K super-block: fills d, dmin and the scales at p, the levels (0..nmax) in L.
void qk_super_block(const float* x, int nmax, bool search, uint8_t* p, uint8_t* L) {
  float scales[8], mins[8], w[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; j++) {
    const float* v = x + 32 * j;
    if (search) {
      float s2 = 0;
      for (int l = 0; l < 32; l++) s2 += v[l] * v[l];
      const float av = std::sqrt(s2 / 32);
      for (int l = 0; l < 32; l++) w[l] = av + std::fabs(v[l]);
      scales[j] = nmax == 15 ? fit_asymmetric(32, 15, v, w, L + 32 * j, &mins[j], -1.0f, 0.1f, 20)
                             : fit_asymmetric(32, 31, v, w, L + 32 * j, &mins[j], -0.5f, 0.1f, 15);
    } else {
      float lo = std::min(0.0f, *std::min_element(v, v + 32)), hi = *std::max_element(v, v + 32);
      scales[j] = (hi - lo) / float(nmax);
      mins[j] = -lo;
    }
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63 / max_scale : 0, inv_min = max_min > 0 ? 63 / max_min : 0;
  uint8_t* s = p + 4;
  std::fill(s, s + 12, uint8_t(0));
  for (int j = 0; j < 8; j++)
    pack_scale_min(s, j, std::min(63, round_int(inv_scale * scales[j])), std::min(63, round_int(inv_min * mins[j])));
  put_f16(p, max_scale / 63);
  put_f16(p + 2, max_min / 63);
  const float d = f16_at(p), dmin = f16_at(p + 2);
  for (int j = 0; j < 8; j++) {
    int sc, m;
    unpack_scale_min(s, j, &sc, &m);
    const float ds = d * float(sc), dm = dmin * float(m);
    for (int l = 0; l < 32; l++)
      L[32 * j + l] = ds == 0 ? 0 : uint8_t(clampi(round_int((x[32 * j + l] + dm) / ds), 0, nmax));
  }
}

}  // namespace

void q4_k_row(const float* x, uint8_t* out, int64_t n, bool search) {
  uint8_t L[256];
  for (int64_t b = 0; b < n / 256; b++, out += 144, x += 256) {
    qk_super_block(x, 15, search, out, L);
    uint8_t* qs = out + 16;
    // 64 values per 32 bytes: the first 32 in the low nibbles, the next 32 in the high ones
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++) qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void q5_k_row(const float* x, uint8_t* out, int64_t n, bool search) {
  uint8_t L[256];
  for (int64_t b = 0; b < n / 256; b++, out += 176, x += 256) {
    qk_super_block(x, 31, search, out, L);
    uint8_t *qh = out + 16, *qs = out + 48;
    std::fill(qh, qh + 32, uint8_t(0));
    // as Q4_K for the low 4 bits; the fifth bit of value 64c + l goes to bit 2c of qh[l], that
    // of 64c + 32 + l to bit 2c + 1
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++) {
        const int a = L[64 * c + l], b2 = L[64 * c + 32 + l];
        qs[32 * c + l] = uint8_t((a & 15) | ((b2 & 15) << 4));
        qh[l] |= uint8_t(((a >> 4) << (2 * c)) | ((b2 >> 4) << (2 * c + 1)));
      }
  }
}

void q6_k_row(const float* x, uint8_t* out, int64_t n, bool search) {
  int8_t L[256];
  uint8_t U[16];
  float w[16];
  for (int64_t b = 0; b < n / 256; b++, out += 210, x += 256) {
    float scales[16];
    float max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++) {
      const float* v = x + 16 * j;
      if (search) {
        for (int l = 0; l < 16; l++) w[l] = v[l] * v[l];
        scales[j] = fit_symmetric(16, 32, v, w, U);
      } else {
        float amax = 0, max = 0;
        for (int l = 0; l < 16; l++)
          if (std::fabs(v[l]) > amax) { amax = std::fabs(v[l]); max = v[l]; }
        scales[j] = max / -32;
      }
      if (std::fabs(scales[j]) > max_abs) { max_abs = std::fabs(scales[j]); max_scale = scales[j]; }
    }
    uint8_t *ql = out, *qh = out + 128;
    int8_t* sc = reinterpret_cast<int8_t*>(out + 192);
    if (max_abs == 0) {  // an all-zero super-block
      std::fill(out, out + 210, uint8_t(0));
      continue;
    }
    // the sub-block scales as int8 against the largest (which maps to -128, the extra level)
    const float iscale = -128 / max_scale;
    put_f16(out + 208, 1 / iscale);
    const float d = f16_at(out + 208);
    for (int j = 0; j < 16; j++) {
      sc[j] = int8_t(std::min(127, round_int(iscale * scales[j])));
      const float ds = d * float(sc[j]);
      for (int l = 0; l < 16; l++) L[16 * j + l] = ds == 0 ? 0 : int8_t(clampi(round_int(x[16 * j + l] / ds), -32, 31));
    }
    // 128 values per half: ql[l] holds values l (low nibble) and l + 64 (high), ql[l + 32]
    // values l + 32 and l + 96; qh[l] their top 2 bits in that order
    for (int h = 0; h < 2; h++) {
      const int8_t* v = L + 128 * h;
      for (int l = 0; l < 32; l++) {
        const int q1 = v[l] + 32, q2 = v[l + 32] + 32, q3 = v[l + 64] + 32, q4 = v[l + 96] + 32;
        ql[64 * h + l] = uint8_t((q1 & 15) | ((q3 & 15) << 4));
        ql[64 * h + l + 32] = uint8_t((q2 & 15) | ((q4 & 15) << 4));
        qh[32 * h + l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

void q2_k_row(const float* x, uint8_t* out, int64_t n, bool search) {
  uint8_t L[256];
  float w[16];
  for (int64_t b = 0; b < n / 256; b++, out += 84, x += 256) {
    float scales[16], mins[16], max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
      const float* v = x + 16 * j;
      if (search) {
        for (int l = 0; l < 16; l++) w[l] = std::fabs(v[l]);
        scales[j] = fit_asymmetric(16, 3, v, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, /*mad=*/true);
      } else {
        const float lo = std::min(0.0f, *std::min_element(v, v + 16)), hi = *std::max_element(v, v + 16);
        scales[j] = (hi - lo) / 3;
        mins[j] = -lo;
      }
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    // scales[16]: scale in the low nibble, min in the high one, each against the largest / 15
    uint8_t* sc = out;
    std::fill(sc, sc + 16, uint8_t(0));
    if (max_scale > 0)
      for (int j = 0; j < 16; j++) sc[j] = uint8_t(std::min(15, round_int(15 / max_scale * scales[j])));
    if (max_min > 0)
      for (int j = 0; j < 16; j++) sc[j] |= uint8_t(std::min(15, round_int(15 / max_min * mins[j])) << 4);
    put_f16(out + 80, max_scale > 0 ? max_scale / 15 : 0);
    put_f16(out + 82, max_min > 0 ? max_min / 15 : 0);
    const float d = f16_at(out + 80), dmin = f16_at(out + 82);
    for (int j = 0; j < 16; j++) {
      const float ds = d * float(sc[j] & 0xf), dm = dmin * float(sc[j] >> 4);
      for (int l = 0; l < 16; l++) L[16 * j + l] = ds == 0 ? 0 : uint8_t(clampi(round_int((x[16 * j + l] + dm) / ds), 0, 3));
    }
    // 128 values per 32 bytes: value 32k + l (k = 0..3) in bits 2k of byte l
    uint8_t* qs = out + 16;
    for (int h = 0; h < 2; h++)
      for (int l = 0; l < 32; l++) {
        const uint8_t* v = L + 128 * h;
        qs[32 * h + l] = uint8_t(v[l] | (v[l + 32] << 2) | (v[l + 64] << 4) | (v[l + 96] << 6));
      }
  }
}

void q3_k_row(const float* x, uint8_t* out, int64_t n, bool search) {
  uint8_t L[256];
  for (int64_t b = 0; b < n / 256; b++, out += 110, x += 256) {
    float scales[16], max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++) {
      const float* v = x + 16 * j;
      if (search) {
        scales[j] = fit_symmetric_refined(16, 4, v, L + 16 * j);
      } else {
        float amax = 0, max = 0;
        for (int l = 0; l < 16; l++)
          if (std::fabs(v[l]) > amax) { amax = std::fabs(v[l]); max = v[l]; }
        scales[j] = max / -4;
      }
      if (std::fabs(scales[j]) > max_abs) { max_abs = std::fabs(scales[j]); max_scale = scales[j]; }
    }
    uint8_t *hmask = out, *qs = out + 32, *s = out + 96;
    std::fill(out, out + 110, uint8_t(0));
    if (max_abs == 0) continue;  // d = 0: an all-zero super-block
    // 16 six-bit scales (offset by 32): low nibbles two per byte in s[0..7] (j and j + 8), the
    // top 2 bits of scale j in bits 2 (j / 4) of s[8 + j % 4]
    const float iscale = -32 / max_scale;
    for (int j = 0; j < 16; j++) {
      const int l = clampi(round_int(iscale * scales[j]), -32, 31) + 32;
      if (j < 8) s[j] = uint8_t(l & 0xf);
      else s[j - 8] |= uint8_t((l & 0xf) << 4);
      s[8 + j % 4] |= uint8_t((l >> 4) << (2 * (j / 4)));
    }
    put_f16(out + 108, 1 / iscale);
    const float d = f16_at(out + 108);
    for (int j = 0; j < 16; j++) {
      const int low = j < 8 ? (s[j] & 0xf) : (s[j - 8] >> 4);
      const int sc = (low | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
      const float ds = d * float(sc);
      for (int l = 0; l < 16; l++) L[16 * j + l] = ds == 0 ? 4 : uint8_t(clampi(round_int(x[16 * j + l] / ds), -4, 3) + 4);
    }
    // the high bit (level >= 4) of value i in bit i / 32 of hmask[i % 32]; the low 2 bits packed as Q2_K's
    for (int i = 0; i < 256; i++)
      if (L[i] > 3) {
        hmask[i % 32] |= uint8_t(1 << (i / 32));
        L[i] -= 4;
      }
    for (int h = 0; h < 2; h++)
      for (int l = 0; l < 32; l++) {
        const uint8_t* v = L + 128 * h;
        qs[32 * h + l] = uint8_t(v[l] | (v[l + 32] << 2) | (v[l + 64] << 4) | (v[l + 96] << 6));
      }
  }
}

}  // namespace fuselm::quant
