// moe_matmul: each token's k expert projections (native/ops/moe_matmul.h), on matmul's kernels.
//
// Reference: every (token, slot) on its own, a one-row matmul (matmul's plain reference) on the
// slice of the chosen expert, the weighted slots summed in slot order in f32.
//
// Fast path: the (token, slot) pairs are grouped by expert; each expert that was chosen runs
// one matmul (matmul_cpu: SIMD, threads, the weights as stored) over its rows gathered into a
// contiguous block, and the results go back to their slots. So decode reads only the chosen
// experts' weights, and prefill reads each chosen expert once for all its tokens. The weighted
// sum is then taken in the reference's order: with block-format weights (whose kernels match
// their integer reference exactly) the two agree bit for bit.
#include <algorithm>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "ops/moe_matmul.h"

namespace fuselm {

namespace {

size_t expert_bytes(const MoeMatmulArgs& a) { return size_t(a.N) * row_bytes(a.w_dtype, a.K); }

const void* expert(const MoeMatmulArgs& a, int64_t t, int64_t j) {
  const int32_t id = a.ids[t * a.k + j];
  if (id < 0 || id >= a.E)
    throw Error("E_INVALID_ARG", "moe_matmul: row " + std::to_string(t) + " slot " + std::to_string(j) + " names expert " +
                                     std::to_string(id) + ", expected 0.." + std::to_string(a.E - 1));
  return static_cast<const uint8_t*>(a.w) + size_t(id) * expert_bytes(a);
}

const float* slot_x(const MoeMatmulArgs& a, int64_t t, int64_t j) {
  return a.x_per_slot ? a.x + (t * a.k + j) * a.K : a.x + t * a.K;
}

// out[t] += sum_j weights[t, j] * y[t, j], y [T, k, N]
void combine(const MoeMatmulArgs& a, const float* y) {
  for (int64_t t = 0; t < a.T; t++) {
    float* o = a.out + t * a.N;
    for (int64_t j = 0; j < a.k; j++) {
      const float wj = a.weights[t * a.k + j];
      const float* yj = y + (t * a.k + j) * a.N;
      for (int64_t n = 0; n < a.N; n++) o[n] += wj * yj[n];
    }
  }
}

void moe_matmul_reference(const MoeMatmulArgs& a, const Exec& e) {
  // unweighted, slot (t, j) is row t * k + j of out viewed as [T * k, N]
  std::vector<float> y(a.weights ? size_t(a.T * a.k * a.N) : 0);
  float* dst = a.weights ? y.data() : a.out;
  for (int64_t t = 0; t < a.T; t++)
    for (int64_t j = 0; j < a.k; j++)
      matmul_cpu({dst + (t * a.k + j) * a.N, slot_x(a, t, j), expert(a, t, j), a.w_dtype, 1, a.K, a.N}, e);
  if (a.weights) combine(a, y.data());
}

}  // namespace

void moe_matmul_cpu(const MoeMatmulArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) return moe_matmul_reference(a, e);
  const int64_t slots = a.T * a.k;
  // Scratch kept per calling thread, grown to the largest call (a decode loop never allocates).
  static thread_local std::vector<float> xs, ys, y;  // gathered x, an expert's results, the weighted slots
  static thread_local std::vector<int64_t> order, start, fill;
  if (xs.size() < size_t(slots * a.K)) xs.resize(size_t(slots * a.K));
  if (ys.size() < size_t(slots * a.N)) ys.resize(size_t(slots * a.N));
  if (a.weights && y.size() < size_t(slots * a.N)) y.resize(size_t(slots * a.N));
  float* dst = a.weights ? y.data() : a.out;  // unweighted: slot s is row s of out as [T * k, N]
  // counting sort of the slots by expert: start[e] .. start[e + 1] - 1 in `order`
  start.assign(size_t(a.E + 1), 0);
  for (int64_t s = 0; s < slots; s++) {
    expert(a, s / a.k, s % a.k);  // checks the id
    start[size_t(a.ids[s]) + 1]++;
  }
  for (int64_t x = 0; x < a.E; x++) start[size_t(x + 1)] += start[size_t(x)];
  order.resize(size_t(slots));
  fill.assign(start.begin(), start.end() - 1);
  for (int64_t s = 0; s < slots; s++) order[size_t(fill[size_t(a.ids[s])]++)] = s;
  for (int64_t x = 0; x < a.E; x++) {
    const int64_t r0 = start[size_t(x)], rows = start[size_t(x + 1)] - r0;
    if (!rows) continue;  // an expert nobody chose is never read
    const void* wx = static_cast<const uint8_t*>(a.w) + size_t(x) * expert_bytes(a);
    if (rows == 1) {  // one row (decode): straight from x into its slot
      const int64_t s = order[size_t(r0)];
      matmul_cpu({dst + s * a.N, slot_x(a, s / a.k, s % a.k), wx, a.w_dtype, 1, a.K, a.N}, e);
      continue;
    }
    for (int64_t r = 0; r < rows; r++) {
      const int64_t s = order[size_t(r0 + r)];
      const float* src = slot_x(a, s / a.k, s % a.k);
      std::copy(src, src + a.K, xs.data() + r * a.K);
    }
    matmul_cpu({ys.data(), xs.data(), wx, a.w_dtype, rows, a.K, a.N, true}, e);  // as the reference's one-row calls
    for (int64_t r = 0; r < rows; r++) {
      const int64_t s = order[size_t(r0 + r)];
      std::copy(ys.data() + r * a.N, ys.data() + (r + 1) * a.N, dst + s * a.N);
    }
  }
  if (a.weights) combine(a, y.data());
}

FUSELM_CPU_OP(moe_matmul_op::def, [](const Step& s, const Exec& e) { moe_matmul_cpu(moe_matmul_op::args(s), e); });

}  // namespace fuselm
