// add_bias: out[t, :] = x[t, :] + bias[:] over [T, D] f32 (the q/k/v biases of Qwen2, the
// biases of GPT-2 and BERT projections). The reference adds row by row in plain C++; the fast
// path is the same sum (exact: one float add per element, so it matches the reference bit for
// bit) over rows split across threads, in a loop the compiler vectorizes.
#include "ops/add_bias.h"

namespace fuselm {

static void add_bias_reference(const AddBiasArgs& a) {
  for (int64_t t = 0; t < a.T; t++)
    for (int64_t i = 0; i < a.D; i++) a.out[t * a.D + i] = a.x[t * a.D + i] + a.bias[i];
}

namespace {
void row_fast(float* __restrict out, const float* x, const float* __restrict b, int64_t D) {
  // out may alias x, so no __restrict on x; each element is read before it is written
  for (int64_t i = 0; i < D; i++) out[i] = x[i] + b[i];
}
}  // namespace

void add_bias_cpu(const AddBiasArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return add_bias_reference(a);
  e.pool->run(a.T, [&](int64_t t, int) { row_fast(a.out + t * a.D, a.x + t * a.D, a.bias, a.D); }, a.T * a.D);
}

FUSELM_CPU_OP(add_bias_op::def, [](const Step& s, const Exec& e) { add_bias_cpu(add_bias_op::args(s), e); });

}  // namespace fuselm
