// seq2seq_attention (native/ops/seq2seq_attention.h): T5's position-biased attention and the
// cross-attention of T5 and BART. The reference computes in double. The fast path gives each
// (token, head) pair to a task: its scores in a per-thread buffer (dot products in eight
// partial sums, which the compiler vectorizes), one max, the exponentials (vectorized on AVX2
// and AVX-512, with their sum), then the weighted sum of V rows. These models are small and their sequences short, so a plain softmax over the
// stored scores is enough.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/seq2seq_attention.h"
#include "cpu/vec_math.h"

namespace fuselm {

using seq2seq_attention_op::kv_end;

// The bias of head h for a key at distance d = j - i from the query.
static float rel_bias(const Seq2seqAttentionArgs& a, int64_t h, int64_t d) {
  const int64_t R = a.bias_range;
  return a.pos_bias[h * (2 * R + 1) + std::clamp<int64_t>(d, -R, R) + R];
}

static void seq2seq_attention_reference(const Seq2seqAttentionArgs& a) {
  const int64_t hd = a.head_dim, stride = a.n_heads * hd;
  std::vector<double> s;
  for (int64_t t = 0; t < a.T; t++) {
    const int64_t n = kv_end(a, t);
    s.assign(size_t(n), 0.0);
    for (int64_t h = 0; h < a.n_heads; h++) {
      const float* q = a.q + t * stride + h * hd;
      double mx = -INFINITY;
      for (int64_t j = 0; j < n; j++) {
        double d = 0;
        for (int64_t i = 0; i < hd; i++) d += double(q[i]) * a.k_cache[j * stride + h * hd + i];
        s[j] = d * a.scale + (a.pos_bias ? rel_bias(a, h, j - (a.pos0 + t)) : 0.0);
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < n; j++) sum += s[j] = std::exp(s[j] - mx);
      float* o = a.out + t * stride + h * hd;
      for (int64_t i = 0; i < hd; i++) {
        double acc = 0;
        for (int64_t j = 0; j < n; j++) acc += s[j] * a.v_cache[j * stride + h * hd + i];
        o[i] = float(acc / sum);
      }
    }
  }
}

namespace {

// s[j] = exp(s[j] - mx) for j < n; returns their sum.
using ExpSumFn = float (*)(float* s, int64_t n, float mx);

float exp_sum_portable(float* s, int64_t n, float mx) {
  float sum = 0;
  for (int64_t j = 0; j < n; j++) sum += s[j] = std::exp(s[j] - mx);
  return sum;
}

#if defined(__x86_64__)
FUSELM_AVX512 float exp_sum_avx512(float* s, int64_t n, float mx) {
  const __m512 m = _mm512_set1_ps(mx);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    const __m512 v = vec::exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), m));
    _mm512_mask_storeu_ps(s + j, k, v);
    acc = _mm512_mask_add_ps(acc, k, acc, v);
  }
  return vec::hsum512(acc);
}

FUSELM_AVX2 float exp_sum_avx2(float* s, int64_t n, float mx) {
  const __m256 m = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = vec::exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
    _mm256_storeu_ps(s + j, v);
    acc = _mm256_add_ps(acc, v);
  }
  return vec::hsum256(acc) + exp_sum_portable(s + j, n - j, mx);
}
#endif

ExpSumFn pick_exp_sum(Impl impl) {
#if defined(__x86_64__)
  if (impl == Impl::kAvx512) return exp_sum_avx512;
  if (impl == Impl::kAvx2) return exp_sum_avx2;
#endif
  (void)impl;
  return exp_sum_portable;
}

}  // namespace

static void seq2seq_attention_fast(const Seq2seqAttentionArgs& a, const Exec& e) {
  const ExpSumFn exp_sum = pick_exp_sum(e.impl);
  const int64_t hd = a.head_dim, stride = a.n_heads * hd;
  const int64_t max_keys = std::max(kv_end(a, 0), kv_end(a, a.T - 1));
  e.pool->run(a.T * a.n_heads, [&](int64_t task, int) {
    const int64_t t = task / a.n_heads, h = task % a.n_heads, n = kv_end(a, t);
    thread_local std::vector<float> buf;
    if (buf.size() < size_t(n + hd)) buf.resize(size_t(n + hd));
    float* s = buf.data();
    float* acc = s + n;
    const float* q = a.q + t * stride + h * hd;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
      const float* k = a.k_cache + j * stride + h * hd;
      // eight partial sums: a loop the compiler vectorizes without reassociating floats itself
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 8 <= hd; i += 8)
        for (int u = 0; u < 8; u++) part[u] += q[i + u] * k[i + u];
      float d = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
      for (; i < hd; i++) d += q[i] * k[i];
      s[j] = d * a.scale + (a.pos_bias ? rel_bias(a, h, j - (a.pos0 + t)) : 0.0f);
      mx = std::max(mx, s[j]);
    }
    const float sum = exp_sum(s, n, mx);
    std::fill(acc, acc + hd, 0.0f);
    for (int64_t j = 0; j < n; j++) {
      const float* v = a.v_cache + j * stride + h * hd;
      for (int64_t i = 0; i < hd; i++) acc[i] += s[j] * v[i];
    }
    float* o = a.out + t * stride + h * hd;
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < hd; i++) o[i] = acc[i] * inv;
  }, a.T * a.n_heads * max_keys * hd * 2);  // ~multiply-adds
}

void seq2seq_attention_cpu(const Seq2seqAttentionArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return seq2seq_attention_reference(a);
  seq2seq_attention_fast(a, e);
}

FUSELM_CPU_OP(seq2seq_attention_op::def, [](const Step& s, const Exec& e) { seq2seq_attention_cpu(seq2seq_attention_op::args(s), e); });

}  // namespace fuselm
