// rope: rotary position embedding, in place, llama (adjacent pairs) or NeoX (split halves) layout.
// The reference computes every angle pos * freq_scale * base^(-2i/n_rot) and its cos/sin in
// double. The fast path keeps angles in double too, but computes cos/sin exactly only at the
// first token of a block of tokens and steps to the next position by an exact rotation (angle
// addition, in double: the error after 16 steps is ~1e-15, far below float rounding), so the
// table costs a few flops per pair instead of a cos and a sin. (llama.cpp instead multiplies
// theta by base^(-2/n_rot) in float pair after pair: cos/sin errors up to ~5e-4 at position
// 4096 for n_rot 128. Measured here: rel 5e-8 against the reference, test/ops/rope.test.ts.)
// The table, rounded to float once, is shared by all heads of the token and kept for the next
// call at the same positions (the other layers of the step); the rotation itself is
// x' = x * cos + swap(x) * (-sin, sin) per pair, in SIMD.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/rope.h"
#include "cpu/vec_math.h"

namespace fuselm {

// Rotates one head of one token. Angles are computed in double, as the reference.
static void rope_head_ref(float* h, int64_t n_rot, double pos, double theta_base, double freq_scale, bool neox, const float* ff,
                          double mscale) {
  for (int64_t i = 0; i < n_rot / 2; i++) {
    double theta = pos * freq_scale * std::pow(theta_base, -2.0 * double(i) / double(n_rot));
    if (ff) theta /= double(ff[i]);
    double c = std::cos(theta) * mscale, s = std::sin(theta) * mscale;
    int64_t i0 = neox ? i : 2 * i;
    int64_t i1 = neox ? i + n_rot / 2 : 2 * i + 1;
    double x0 = h[i0], x1 = h[i1];
    h[i0] = float(x0 * c - x1 * s);
    h[i1] = float(x0 * s + x1 * c);
  }
}

static void rope_reference(const RopeArgs& a) {
  for (int64_t t = 0; t < a.T; t++)
    for (int64_t h = 0; h < a.n_heads; h++)
      rope_head_ref(a.x + (t * a.n_heads + h) * a.head_dim, a.n_rot, double(a.pos0 + t), a.theta_base,
                    a.freq_scale, a.neox, a.freq_factors, a.mscale);
}

namespace {

constexpr int64_t kMaxRot = 1024;  // n_rot <= 1024, checked when the graph is built

// A token's table in the form the rotation wants, c and s of n_rot floats each. llama:
// c[2i] = c[2i+1] = cos, s[2i] = -sin, s[2i+1] = sin. NeoX: c[i] = cos, s[i] = sin (first half).
struct Table {
  const float* c;
  const float* s;
};

// Rotates all heads of one token with its table.
using RotateFn = void (*)(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, bool neox, Table tb);

// The tables of the last call on this thread. A forward step rotates q and k of every layer at
// the same positions, so all but the first call of a step find their tables here.
struct TableCache {
  int64_t pos0 = -1, T = 0, n_rot = 0;
  float theta_base = 0, freq_scale = 0, mscale = 0;
  bool neox = false;
  std::vector<float> freq_factors;  // a copy: the same values, not merely the same address
  std::vector<float> tab;  // [T, 2, n_rot]: c then s
};

void rotate_portable(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, bool neox, Table tb) {
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; h++) {
    float* p = x + h * head_dim;
    if (neox) {
      for (int64_t i = 0; i < half; i++) {
        const float x0 = p[i], x1 = p[i + half];
        p[i] = x0 * tb.c[i] - x1 * tb.s[i];
        p[i + half] = x0 * tb.s[i] + x1 * tb.c[i];
      }
    } else {
      for (int64_t i = 0; i < n_rot; i += 2) {
        const float x0 = p[i], x1 = p[i + 1];
        p[i] = x0 * tb.c[i] + x1 * tb.s[i];
        p[i + 1] = x1 * tb.c[i + 1] + x0 * tb.s[i + 1];
      }
    }
  }
}

#if defined(__x86_64__)

FUSELM_AVX512 void rotate_avx512(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, bool neox,
                                        Table tb) {
  const int64_t half = n_rot / 2;
  const int64_t len = neox ? half : n_rot;  // table entries
  const int64_t full = len / 16 * 16;
  const __mmask16 tail = __mmask16((1u << (len - full)) - 1);
  for (int64_t h = 0; h < n_heads; h++) {
    float* p = x + h * head_dim;
    if (neox) {
      float* q = p + half;
      for (int64_t i = 0; i < full; i += 16) {
        const __m512 c = _mm512_loadu_ps(tb.c + i), s = _mm512_loadu_ps(tb.s + i);
        const __m512 x0 = _mm512_loadu_ps(p + i), x1 = _mm512_loadu_ps(q + i);
        _mm512_storeu_ps(p + i, _mm512_fnmadd_ps(x1, s, _mm512_mul_ps(x0, c)));
        _mm512_storeu_ps(q + i, _mm512_fmadd_ps(x0, s, _mm512_mul_ps(x1, c)));
      }
      if (tail) {
        const __m512 c = _mm512_maskz_loadu_ps(tail, tb.c + full), s = _mm512_maskz_loadu_ps(tail, tb.s + full);
        const __m512 x0 = _mm512_maskz_loadu_ps(tail, p + full), x1 = _mm512_maskz_loadu_ps(tail, q + full);
        _mm512_mask_storeu_ps(p + full, tail, _mm512_fnmadd_ps(x1, s, _mm512_mul_ps(x0, c)));
        _mm512_mask_storeu_ps(q + full, tail, _mm512_fmadd_ps(x0, s, _mm512_mul_ps(x1, c)));
      }
    } else {
      for (int64_t i = 0; i < full; i += 16) {
        const __m512 v = _mm512_loadu_ps(p + i);
        const __m512 sw = _mm512_permute_ps(v, 0xB1);  // (x1, x0) in each pair
        _mm512_storeu_ps(p + i, _mm512_fmadd_ps(sw, _mm512_loadu_ps(tb.s + i), _mm512_mul_ps(v, _mm512_loadu_ps(tb.c + i))));
      }
      if (tail) {
        const __m512 v = _mm512_maskz_loadu_ps(tail, p + full);
        const __m512 y = _mm512_fmadd_ps(_mm512_permute_ps(v, 0xB1), _mm512_maskz_loadu_ps(tail, tb.s + full),
                                         _mm512_mul_ps(v, _mm512_maskz_loadu_ps(tail, tb.c + full)));
        _mm512_mask_storeu_ps(p + full, tail, y);
      }
    }
  }
}

FUSELM_AVX2 void rotate_avx2(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, bool neox,
                                    Table tb) {
  const int64_t half = n_rot / 2;
  const int64_t len = neox ? half : n_rot;
  const int64_t full = len / 8 * 8;
  for (int64_t h = 0; h < n_heads; h++) {
    float* p = x + h * head_dim;
    for (int64_t i = 0; i < len; i += 8) {
      const bool whole = i < full;
      const __m256i mk = vec::first_lanes256(int(std::min<int64_t>(8, len - i)));
      const __m256 c = whole ? _mm256_loadu_ps(tb.c + i) : _mm256_maskload_ps(tb.c + i, mk);
      const __m256 s = whole ? _mm256_loadu_ps(tb.s + i) : _mm256_maskload_ps(tb.s + i, mk);
      if (neox) {
        const __m256 x0 = whole ? _mm256_loadu_ps(p + i) : _mm256_maskload_ps(p + i, mk);
        const __m256 x1 = whole ? _mm256_loadu_ps(p + half + i) : _mm256_maskload_ps(p + half + i, mk);
        const __m256 y0 = _mm256_fnmadd_ps(x1, s, _mm256_mul_ps(x0, c));
        const __m256 y1 = _mm256_fmadd_ps(x0, s, _mm256_mul_ps(x1, c));
        if (whole) {
          _mm256_storeu_ps(p + i, y0);
          _mm256_storeu_ps(p + half + i, y1);
        } else {
          _mm256_maskstore_ps(p + i, mk, y0);
          _mm256_maskstore_ps(p + half + i, mk, y1);
        }
      } else {
        const __m256 v = whole ? _mm256_loadu_ps(p + i) : _mm256_maskload_ps(p + i, mk);
        const __m256 y = _mm256_fmadd_ps(_mm256_permute_ps(v, 0xB1), s, _mm256_mul_ps(v, c));
        if (whole) _mm256_storeu_ps(p + i, y);
        else _mm256_maskstore_ps(p + i, mk, y);
      }
    }
  }
}

#endif  // __x86_64__

}  // namespace

void rope_cpu(const RopeArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return rope_reference(a);
  RotateFn rotate = rotate_portable;
#if defined(__x86_64__)
  if (e.impl == Impl::kAvx512) rotate = rotate_avx512;
  else if (e.impl == Impl::kAvx2) rotate = rotate_avx2;
#endif
  const int64_t pairs = a.n_rot / 2, W = a.n_heads * a.head_dim;
  // Tokens per task: up to 16 (one exact cos/sin table, then angle-addition steps), fewer when
  // that leaves threads idle.
  const int64_t block = std::clamp<int64_t>(a.T / (4 * e.pool->size()), 1, 16);

  thread_local TableCache cache;
  const bool same_factors = a.freq_factors ? cache.freq_factors.size() == size_t(pairs) &&
                                                   std::equal(a.freq_factors, a.freq_factors + pairs, cache.freq_factors.begin())
                                             : cache.freq_factors.empty();
  const bool hit = cache.pos0 == a.pos0 && cache.T >= a.T && cache.n_rot == a.n_rot && cache.theta_base == a.theta_base &&
                   cache.freq_scale == a.freq_scale && cache.mscale == a.mscale && cache.neox == a.neox && same_factors;
  if (!hit) {
    cache.pos0 = a.pos0, cache.T = a.T, cache.n_rot = a.n_rot;
    cache.theta_base = a.theta_base, cache.freq_scale = a.freq_scale, cache.mscale = a.mscale, cache.neox = a.neox;
    cache.freq_factors.assign(a.freq_factors, a.freq_factors ? a.freq_factors + pairs : a.freq_factors);
    cache.tab.assign(size_t(a.T * 2 * a.n_rot), 0.0f);
  }
  float* const tab = cache.tab.data();  // not `cache` inside the task: that names each worker's own

  // Per pair, in double: the angle per position, freq_scale * base^(-2i/n_rot) (by repeated
  // multiplication: after 512 steps still ~1e-13 relative), and the step's exact cos/sin.
  double freq[kMaxRot / 2], step_c[kMaxRot / 2], step_s[kMaxRot / 2];
  if (!hit) {
    const double ratio = std::pow(double(a.theta_base), -2.0 / double(a.n_rot));
    freq[0] = double(a.freq_scale);
    for (int64_t i = 1; i < pairs; i++) freq[i] = freq[i - 1] * ratio;
    if (a.freq_factors)
      for (int64_t i = 0; i < pairs; i++) freq[i] /= double(a.freq_factors[i]);
    if (block > 1)
      for (int64_t i = 0; i < pairs; i++) {
        step_c[i] = std::cos(freq[i]);
        step_s[i] = std::sin(freq[i]);
      }
  }

  e.pool->run((a.T + block - 1) / block, [&](int64_t task, int) {
    const int64_t t0 = task * block, t1 = std::min(a.T, t0 + block);
    if (!hit) {  // this task's rows of the table
      double c[kMaxRot / 2], s[kMaxRot / 2];
      for (int64_t t = t0; t < t1; t++) {
        if (t == t0) {
          const double pos = double(a.pos0 + t0);
          for (int64_t i = 0; i < pairs; i++) {
            c[i] = std::cos(pos * freq[i]);
            s[i] = std::sin(pos * freq[i]);
          }
        } else {  // angle addition: (pos + 1) * f = pos * f + f
          for (int64_t i = 0; i < pairs; i++) {
            const double cn = c[i] * step_c[i] - s[i] * step_s[i];
            s[i] = s[i] * step_c[i] + c[i] * step_s[i];
            c[i] = cn;
          }
        }
        float* tc = tab + t * 2 * a.n_rot;
        float* ts = tc + a.n_rot;
        const double m = a.mscale;
        if (a.neox) {
          for (int64_t i = 0; i < pairs; i++) {
            tc[i] = float(c[i] * m);
            ts[i] = float(s[i] * m);
          }
        } else {
          for (int64_t i = 0; i < pairs; i++) {
            tc[2 * i] = tc[2 * i + 1] = float(c[i] * m);
            ts[2 * i] = -float(s[i] * m);
            ts[2 * i + 1] = float(s[i] * m);
          }
        }
      }
    }
    for (int64_t t = t0; t < t1; t++) {
      const float* tc = tab + t * 2 * a.n_rot;
      rotate(a.x + t * W, a.n_heads, a.head_dim, a.n_rot, a.neox, Table{tc, tc + a.n_rot});
    }
  }, a.T * a.n_heads * a.n_rot);
}

FUSELM_CPU_OP(rope_op::def, [](const Step& s, const Exec& e) { rope_cpu(rope_op::args(s), e); });

}  // namespace fuselm
