// relu: out = max(x, 0). The reference is a plain loop; the fast path splits the values into
// chunks across threads, each a loop the compiler vectorizes (NaN kept: x > 0 ? x : 0 would
// drop it, so the test is x < 0).
#include <algorithm>

#include "ops/relu.h"

namespace fuselm {

static void relu_reference(const ReluArgs& a) {
  for (int64_t i = 0; i < a.n; i++) a.out[i] = a.x[i] < 0.0f ? 0.0f : a.x[i];
}

namespace {
constexpr int64_t kChunk = 16384;  // elements per task
}

void relu_cpu(const ReluArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return relu_reference(a);
  const int64_t tasks = (a.n + kChunk - 1) / kChunk;
  e.pool->run(tasks, [&](int64_t c, int) {
    const int64_t i0 = c * kChunk, i1 = std::min(a.n, i0 + kChunk);
    for (int64_t i = i0; i < i1; i++) a.out[i] = a.x[i] < 0.0f ? 0.0f : a.x[i];
  }, a.n);
}

FUSELM_CPU_OP(relu_op::def, [](const Step& s, const Exec& e) { relu_cpu(relu_op::args(s), e); });

}  // namespace fuselm
