// argmax: ids[t] = the index of row t's largest value (greedy decoding's choice, made where the
// logits are, so only the id leaves a GPU). Lowest index on ties; NaN never compares greater,
// so it never wins. The reference scans each row keeping the best so far. The fast path finds
// the row's maximum with eight independent running maxima (lanes the compiler turns into one
// vector compare-and-select: no loop-carried branch), then the first index holding it; rows
// whose maximum is -inf (or NaN only) go to the reference's rules. Rows split across threads.
#include <cmath>

#include "ops/argmax.h"

namespace fuselm {

static int32_t argmax_row(const float* x, int64_t V) {
  int64_t best = 0;
  float best_v = x[0];
  for (int64_t i = 1; i < V; i++)
    if (x[i] > best_v || (best_v != best_v && x[i] == x[i])) {  // a NaN so far loses to any number
      best_v = x[i];
      best = i;
    }
  return int32_t(best);
}

static int32_t argmax_row_fast(const float* x, int64_t V) {
  constexpr int kLanes = 8;
  float m[kLanes];
  for (int k = 0; k < kLanes; k++) m[k] = -INFINITY;
  int64_t i = 0;
  for (; i + kLanes <= V; i += kLanes)
    for (int k = 0; k < kLanes; k++) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
  float mx = -INFINITY;
  for (int k = 0; k < kLanes; k++) mx = m[k] > mx ? m[k] : mx;
  for (; i < V; i++) mx = x[i] > mx ? x[i] : mx;
  if (mx == -INFINITY) return argmax_row(x, V);
  for (int64_t j = 0;; j++)
    if (x[j] == mx) return int32_t(j);
}

void argmax_cpu(const ArgmaxArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) {
    for (int64_t t = 0; t < a.T; t++) a.ids[t] = argmax_row(a.x + t * a.V, a.V);
    return;
  }
  e.pool->run(a.T, [&](int64_t t, int) { a.ids[t] = argmax_row_fast(a.x + t * a.V, a.V); }, a.T * a.V);
}

FUSELM_CPU_OP(argmax_op::def, [](const Step& s, const Exec& e) { argmax_cpu(argmax_op::args(s), e); });

}  // namespace fuselm
