// lora: y[t] += Σ_j scales[t, j] · Σ_{k ∈ seg j} (a[k] · x[t]) · bt[k] (native/ops/lora.h). The
// reference goes row by row, adapter by adapter, rank by rank. The fast path does the same sums
// in two passes over the threads: first every (row, rank) dot product a[k] · x[t] a row's
// scales do not switch off, each times its scale, then every row's outputs in column chunks,
// each the sum over its ranks of h · bt[k] (the reference's order of ranks; only the dot
// products' summation order differs, as the compiler vectorizes them).
#include <algorithm>
#include <vector>

#include "ops/lora.h"

namespace fuselm {

static void lora_reference(const LoraArgs& a) {
  for (int64_t t = 0; t < a.T; t++) {
    const float* x = a.x + t * a.K;
    float* y = a.y + t * a.N;
    for (int64_t j = 0; j < a.J; j++) {
      const float s = a.scales[t * a.J + j];
      if (s == 0.0f) continue;
      for (int64_t k = a.seg[j]; k < a.seg[j + 1]; k++) {
        float h = 0.0f;
        for (int64_t i = 0; i < a.K; i++) h += a.a[k * a.K + i] * x[i];
        h *= s;
        for (int64_t o = 0; o < a.N; o++) y[o] += h * a.bt[k * a.N + o];
      }
    }
  }
}

namespace {
// columns of y one task updates (a few KB of bt per rank: stays in L1 across the ranks)
constexpr int64_t kChunk = 512;
// Multiply-adds under which the op runs on the calling thread: a decode step's r = 16 term of a
// 2048-wide projection is ~10 us alone, about what two wake-and-join rounds of the pool cost
// (a model has seven such ops per layer, so the rounds would dominate).
constexpr int64_t kInlineWork = 1 << 20;

float dot(const float* __restrict a, const float* __restrict x, int64_t K) {
  float s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= K; i += 8)
    for (int l = 0; l < 8; l++) s[l] += a[i + l] * x[i + l];
  float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < K; i++) r += a[i] * x[i];
  return r;
}
}  // namespace

void lora_cpu(const LoraArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return lora_reference(a);
  if (a.T <= 0 || a.R <= 0) return;
  // each rank's adapter, so a (row, rank) task finds its scale
  std::vector<int32_t> owner(size_t(a.R));
  for (int64_t j = 0; j < a.J; j++)
    for (int64_t k = a.seg[j]; k < a.seg[j + 1]; k++) owner[size_t(k)] = int32_t(j);
  std::vector<float> h(size_t(a.T * a.R));
  const bool inline_only = a.T * a.R * (a.K + a.N) < kInlineWork;
  e.pool->run(a.T * a.R, [&](int64_t task, int) {
    const int64_t t = task / a.R, k = task % a.R;
    const float s = a.scales[t * a.J + owner[size_t(k)]];
    h[size_t(task)] = s == 0.0f ? 0.0f : s * dot(a.a + k * a.K, a.x + t * a.K, a.K);
  }, inline_only ? 0 : a.T * a.R * a.K);
  const int64_t chunks = (a.N + kChunk - 1) / kChunk;
  e.pool->run(a.T * chunks, [&](int64_t task, int) {
    const int64_t t = task / chunks, o0 = task % chunks * kChunk, o1 = std::min(a.N, o0 + kChunk);
    float* __restrict y = a.y + t * a.N;
    const float* hr = h.data() + t * a.R;
    for (int64_t k = 0; k < a.R; k++) {
      const float hk = hr[k];
      if (a.scales[t * a.J + owner[size_t(k)]] == 0.0f) continue;
      const float* __restrict b = a.bt + k * a.N;
      for (int64_t o = o0; o < o1; o++) y[o] += hk * b[o];
    }
  }, inline_only ? 0 : a.T * a.R * a.N);
}

FUSELM_CPU_OP(lora_op::def, [](const Step& s, const Exec& e) { lora_cpu(lora_op::args(s), e); });

}  // namespace fuselm
