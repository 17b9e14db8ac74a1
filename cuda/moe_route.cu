// moe_route: a mixture-of-experts router's top-k per token (MoeRouteArgs, native/ops/moe_route.h);
// the CPU twin is native/cpu/moe_route.cc. One thread per token: a row is a handful of
// experts (8 to 128), read a few times. The k experts are picked by repeated scans of the
// logits for the largest below the last pick in (value, then lower index first) order, so no
// per-expert storage is needed and the picks equal the CPU's; the weights are softmax (max
// subtracted, f32 with expf) or sigmoid of the picked logits, renormalized when asked.
#include <cmath>

#include "ops.h"
#include "ops/moe_route.h"

FUSELM_CUDA_NAMESPACE_BEGIN

static __global__ void moe_route_kernel(int32_t* ids, float* weights, const float* logits, int64_t T, int64_t E, int64_t k,
                                        bool normalize, bool sigmoid) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= T) return;
  const float* l = logits + t * E;
  float mx = -INFINITY, sum = 0.0f;
  if (!sigmoid) {
    for (int64_t e = 0; e < E; e++) mx = fmaxf(mx, l[e]);
    for (int64_t e = 0; e < E; e++) sum += expf(l[e] - mx);
  }
  float chosen = 0.0f;
  float last = INFINITY;
  int64_t last_i = -1;
  for (int64_t j = 0; j < k; j++) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; e++) {
      // below the last pick: a smaller value, or an equal one at a higher index
      const bool below = l[e] < last || (l[e] == last && e > last_i);
      if (below && (best < 0 || l[e] > l[best])) best = e;
    }
    if (best < 0) best = last_i + 1 < E ? last_i + 1 : 0;  // NaN logits: the next expert, as the CPU picks
    last = l[best], last_i = best;
    const float p = sigmoid ? 1.0f / (1.0f + expf(-l[best])) : expf(l[best] - mx) / sum;
    ids[t * k + j] = int32_t(best);
    weights[t * k + j] = p;
    chosen += p;
  }
  if (normalize)
    for (int64_t j = 0; j < k; j++) weights[t * k + j] /= chosen;
}

void moe_route_cuda(const MoeRouteArgs& a, cudaStream_t stream) {
  if (a.T <= 0) return;
  const int threads = 64;
  launch_kernel("moe_route_kernel", moe_route_kernel, dim3(unsigned((a.T + threads - 1) / threads)), dim3(threads), 0, stream,
                a.ids, a.weights, a.logits, a.T, a.E, a.k, a.normalize, a.sigmoid);
}

FUSELM_CUDA_OP(moe_route_op::def, [](const Step& s, const CudaExec& x) { moe_route_cuda(moe_route_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
