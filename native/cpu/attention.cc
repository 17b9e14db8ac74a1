// attention: causal multi-head attention over the KV cache, with GQA.
// The reference computes each query's scores in double and normalizes with a plain softmax;
// the fast path streams keys once with an online softmax (running max and sum), so no
// score matrix is ever stored.
#include <cmath>
#include <vector>

#include "backend.h"

namespace fuselm {

static void attention_reference(const AttentionArgs& a) {
  const int64_t hd = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const int64_t q_stride = a.n_heads * hd, kv_stride = a.n_kv_heads * hd;
  std::vector<double> scores;
  for (int64_t t = 0; t < a.T; t++) {
    const int64_t n_keys = a.pos0 + t + 1;
    scores.assign(size_t(n_keys), 0.0);
    for (int64_t h = 0; h < a.n_heads; h++) {
      const float* q = a.q + t * q_stride + h * hd;
      const int64_t kvh = h / group;
      double mx = -INFINITY;
      for (int64_t j = 0; j < n_keys; j++) {
        const float* k = a.k_cache + j * kv_stride + kvh * hd;
        double s = 0;
        for (int64_t i = 0; i < hd; i++) s += double(q[i]) * k[i];
        scores[j] = s * a.scale;
        if (scores[j] > mx) mx = scores[j];
      }
      double sum = 0;
      for (int64_t j = 0; j < n_keys; j++) sum += scores[j] = std::exp(scores[j] - mx);
      float* o = a.out + t * q_stride + h * hd;
      for (int64_t i = 0; i < hd; i++) {
        double acc = 0;
        for (int64_t j = 0; j < n_keys; j++) acc += scores[j] * a.v_cache[j * kv_stride + kvh * hd + i];
        o[i] = float(acc / sum);
      }
    }
  }
}

// One (token, head) pair with an online softmax: out = sum_j softmax(s)_j v_j in one pass.
static void attention_one(const AttentionArgs& a, int64_t t, int64_t h, float* acc) {
  const int64_t hd = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const int64_t kv_stride = a.n_kv_heads * hd;
  const float* q = a.q + t * a.n_heads * hd + h * hd;
  const float* kbase = a.k_cache + (h / group) * hd;
  const float* vbase = a.v_cache + (h / group) * hd;
  const int64_t n_keys = a.pos0 + t + 1;
  float m = -INFINITY, l = 0;
  for (int64_t i = 0; i < hd; i++) acc[i] = 0;
  for (int64_t j = 0; j < n_keys; j++) {
    const float* k = kbase + j * kv_stride;
    float s = 0;
    for (int64_t i = 0; i < hd; i++) s += q[i] * k[i];
    s *= a.scale;
    const float* v = vbase + j * kv_stride;
    if (s > m) {  // new maximum: rescale what has been accumulated so far
      float c = std::exp(m - s);
      l = l * c + 1.0f;
      for (int64_t i = 0; i < hd; i++) acc[i] = acc[i] * c + v[i];
      m = s;
    } else {
      float p = std::exp(s - m);
      l += p;
      for (int64_t i = 0; i < hd; i++) acc[i] += p * v[i];
    }
  }
  float* o = a.out + t * a.n_heads * hd + h * hd;
  const float inv = 1.0f / l;
  for (int64_t i = 0; i < hd; i++) o[i] = acc[i] * inv;
}

void attention_cpu(const AttentionArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return attention_reference(a);
  e.pool->run(a.T * a.n_heads, [&](int64_t task, int) {
    float acc[1024];  // head_dim <= 1024, checked when the graph is built
    attention_one(a, task / a.n_heads, task % a.n_heads, acc);
  });
}

}  // namespace fuselm
