// argmax: ids[t] = the index of row t's largest value (greedy decoding's choice, made where the
// logits are, so only the id leaves a GPU). Lowest index on ties; NaN never compares greater,
// so it never wins. The reference scans each row; the fast path splits rows across threads
// (vocabularies are scanned once, a memory-bound pass the compiler handles well).
#include "backend.h"

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

void argmax_cpu(const ArgmaxArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) {
    for (int64_t t = 0; t < a.T; t++) a.ids[t] = argmax_row(a.x + t * a.V, a.V);
    return;
  }
  e.pool->run(a.T, [&](int64_t t, int) { a.ids[t] = argmax_row(a.x + t * a.V, a.V); }, a.T * a.V);
}

}  // namespace fuselm
