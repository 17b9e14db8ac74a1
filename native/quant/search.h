// The scale searches shared by the block formats. Both minimize a weighted squared error
// sum_i w_i (x_i - xhat_i)^2 over a small set of candidate scales: for each candidate the
// integer levels are rounded, then the best scale (and min) for those levels is solved in
// closed form by weighted least squares, and the best candidate kept. This is the method
// llama.cpp's k-quants use (its make_qx_quants and make_qkx2_quants); the candidate grids and
// the weightings follow its published choices so files match its quality.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace fuselm::quant {

// Round to nearest, halves to even (the default rounding mode), as an int. Ties are common
// here (levels of scaled grid values), and llama.cpp breaks them to even too, so the same
// search picks the same levels.
// Adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits (the FPU rounds the
// sum to even); valid for |v| < 2^22, which every caller's values are (levels and scale
// ratios below a few thousand). A library nearbyint costs a call per value on baseline x86-64.
inline int round_int(float v) {
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}
inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Symmetric fit: x ~ scale * (L - nmax) with L in [0, 2*nmax - 1] (the range of a signed
// nmax-offset code, e.g. Q4_0's nibble - 8). Returns the scale (0 for an all-zero group).
// The start is the plain fit (the value of largest magnitude maps to -nmax, which uses the
// one extra negative level); then 18 nearby grid scales -(nmax + 0.1 k)/max, k = -9..9, each
// with its least-squares scale sum(w x l) / sum(w l^2).
inline float fit_symmetric(int n, int nmax, const float* x, const float* w, uint8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++) {
    float a = std::fabs(x[i]);
    if (a > amax) { amax = a; max = x[i]; }
  }
  if (amax < 1e-15f) {
    for (int i = 0; i < n; i++) L[i] = uint8_t(nmax);  // all (near) zero: scale 0, level 0
    return 0;
  }
  double best = 0;
  float scale = 0;
  bool have = false;
  for (int k = -9; k <= 9; k++) {
    const float iscale = -(float(nmax) + 0.1f * float(k)) / max;
    // sums in double: candidates often tie to a few f32 ulps (a group dominated by one large
    // value), and f32 sums would pick among them by rounding noise
    double sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
      const int l = clampi(round_int(iscale * x[i]), -nmax, nmax - 1);
      sumlx += double(w[i]) * x[i] * l;
      suml2 += double(w[i]) * l * l;
    }
    // the weighted error of the least-squares scale is sum(w x^2) - sumlx^2/suml2: the larger
    // sumlx^2/suml2, the better
    if (suml2 > 0 && (!have || sumlx * sumlx > best * suml2)) {
      have = true;
      scale = float(sumlx / suml2);
      best = sumlx / suml2 * sumlx;
      for (int i = 0; i < n; i++) L[i] = uint8_t(nmax + clampi(round_int(iscale * x[i]), -nmax, nmax - 1));
    }
  }
  return scale;
}

// Asymmetric fit: x ~ scale * L - mn with L in [0, nmax], mn >= 0 (the group's minimum is
// clamped to at most 0, so a zero stays representable with the min as stored). Returns the
// scale and sets *mn. Starts from the min/max fit, then tries nstep + 1 grid scales
// (rmin + rdelta k + nmax) / (max - min); for each, the weighted least-squares (scale, min)
// pair of the rounded levels (a 2x2 solve), kept when its weighted error is lower.
// mad: weigh absolute errors instead of squared ones (Q2_K's choice: with 4 levels a few large
// errors matter less than many small ones).
inline float fit_asymmetric(int n, int nmax, const float* x, const float* w, uint8_t* L, float* mn,
                            float rmin, float rdelta, int nstep, bool mad = false) {
  float lo = x[0], hi = x[0], sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; i++) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    std::memset(L, 0, size_t(n));
    *mn = -lo;
    return 0;
  }
  float iscale = float(nmax) / (hi - lo), scale = 1 / iscale;
  float best_err = 0;
  for (int i = 0; i < n; i++) {
    L[i] = uint8_t(clampi(round_int(iscale * (x[i] - lo)), 0, nmax));
    const float d = scale * float(L[i]) + lo - x[i];
    best_err += w[i] * (mad ? std::fabs(d) : d * d);
  }
  uint8_t aux[256];
  for (int k = 0; k <= nstep; k++) {
    iscale = (rmin + rdelta * float(k) + float(nmax)) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      const int l = clampi(round_int(iscale * (x[i] - lo)), 0, nmax);
      aux[i] = uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D <= 0) continue;
    float s = (sum_w * sum_xl - sum_x * sum_l) / D;
    float m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (m > 0) {  // a positive offset is not representable: fit the scale alone through 0
      m = 0;
      s = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; i++) {
      const float d = s * float(aux[i]) + m - x[i];
      err += w[i] * (mad ? std::fabs(d) : d * d);
    }
    if (err < best_err) {
      std::memcpy(L, aux, size_t(n));
      best_err = err;
      scale = s;
      lo = m;
    }
  }
  *mn = -lo;
  return scale;
}

// Symmetric fit refined level by level (Q3_K's, after llama.cpp's make_q3_quants): from the
// plain fit's levels (largest magnitude onto -nmax), each level in turn is moved to the one the
// current least-squares scale (without it) would pick, kept when the weighted error drops;
// up to 5 passes, until none changes. Weights x_i^2. Levels L in [0, 2 nmax - 1]; returns the scale.
inline float fit_symmetric_refined(int n, int nmax, const float* x, uint8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++) {
    const float a = std::fabs(x[i]);
    if (a > amax) { amax = a; max = x[i]; }
  }
  if (amax < 1e-15f) {
    for (int i = 0; i < n; i++) L[i] = uint8_t(nmax);
    return 0;
  }
  const float iscale = -float(nmax) / max;
  int l[256];
  double sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    l[i] = clampi(round_int(iscale * x[i]), -nmax, nmax - 1);
    const double w = double(x[i]) * x[i];
    sumlx += w * x[i] * l[i];
    suml2 += w * l[i] * l[i];
  }
  for (int pass = 0; pass < 5; pass++) {
    int changed = 0;
    for (int i = 0; i < n; i++) {
      const double w = double(x[i]) * x[i];
      double slx = sumlx - w * x[i] * l[i];
      if (slx <= 0) continue;
      double sl2 = suml2 - w * l[i] * l[i];
      const int nl = clampi(round_int(float(x[i] * sl2 / slx)), -nmax, nmax - 1);
      if (nl == l[i]) continue;
      slx += w * x[i] * nl;
      sl2 += w * nl * nl;
      // the error with the least-squares scale falls as sumlx^2 / suml2 grows
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        l[i] = nl;
        sumlx = slx;
        suml2 = sl2;
        changed++;
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; i++) L[i] = uint8_t(l[i] + nmax);
  return suml2 > 0 ? float(sumlx / suml2) : 0;
}

}  // namespace fuselm::quant
