// moe_route: softmax (or a sigmoid per expert) over a row of router logits, the k largest, their
// weights renormalized to sum 1 when asked. One row is a handful of experts: the reference is
// the implementation (double softmax, selection by repeated scans); rows split across threads.
// The experts are chosen by their logits (softmax and sigmoid keep the order; the scores could
// round to ties the logits do not have), the largest first, the lower expert first on ties, as
// cuda/moe_route.cu does. The softmax is llama.cpp's and transformers' (max subtracted, then
// exp / sum), in double here.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ops/moe_route.h"

namespace fuselm {

static void moe_route_row(const MoeRouteArgs& a, int64_t t, std::vector<double>& p) {
  const float* l = a.logits + t * a.E;
  if (a.sigmoid) {
    for (int64_t e = 0; e < a.E; e++) p[size_t(e)] = 1.0 / (1.0 + std::exp(-double(l[e])));
  } else {
    double mx = -INFINITY, sum = 0;
    for (int64_t e = 0; e < a.E; e++) mx = std::max(mx, double(l[e]));
    for (int64_t e = 0; e < a.E; e++) sum += p[size_t(e)] = std::exp(double(l[e]) - mx);
    for (int64_t e = 0; e < a.E; e++) p[size_t(e)] /= sum;
  }
  int32_t* ids = a.ids + t * a.k;
  float* w = a.weights + t * a.k;
  double chosen = 0;
  for (int64_t j = 0; j < a.k; j++) {
    // the largest score not taken yet; on ties the lowest expert
    int64_t best = -1;
    for (int64_t e = 0; e < a.E; e++) {
      bool taken = false;
      for (int64_t i = 0; i < j; i++) taken = taken || ids[i] == e;
      if (!taken && (best < 0 || l[e] > l[best])) best = e;
    }
    ids[j] = int32_t(best);
    chosen += p[size_t(best)];
  }
  for (int64_t j = 0; j < a.k; j++) w[j] = float(a.normalize ? p[size_t(ids[j])] / chosen : p[size_t(ids[j])]);
}

void moe_route_cpu(const MoeRouteArgs& a, const Exec& e) {
  if (e.impl == Impl::kReference) {
    std::vector<double> p(size_t(a.E));
    for (int64_t t = 0; t < a.T; t++) moe_route_row(a, t, p);
    return;
  }
  e.pool->run(a.T, [&](int64_t t, int) {
    thread_local std::vector<double> p;
    if (p.size() < size_t(a.E)) p.resize(size_t(a.E));
    moe_route_row(a, t, p);
  }, a.T * a.E * 16);
}

FUSELM_CPU_OP(moe_route_op::def, [](const Step& s, const Exec& e) { moe_route_cpu(moe_route_op::args(s), e); });

}  // namespace fuselm
