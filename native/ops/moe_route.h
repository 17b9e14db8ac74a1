// moe_route: a mixture-of-experts router's choice per token, from the router's logits: the k
// experts with the largest scores (softmax over the experts, or a sigmoid per expert) and their
// weights, renormalized to sum to 1 or not as the architecture says (Mixtral and Qwen3-MoE do,
// Qwen2-MoE does not). With one expert, k = 1 and the sigmoid it is Qwen2-MoE's shared-expert
// gate: weight sigmoid(logit), expert 0.
#pragma once
#include <string>

#include "op.h"

namespace fuselm {

// ids[t, j], weights[t, j] = the j-th largest score of logits[t] (ties: the lower expert first)
// and its weight.            logits f32 [T, E], ids i32 [T, k], weights f32 [T, k], k <= E
struct MoeRouteArgs { int32_t* ids; float* weights; const float* logits; int64_t T, E, k; bool normalize, sigmoid; };
void moe_route_cpu(const MoeRouteArgs& a, const Exec& e);

namespace moe_route_op {
enum Role { ids, weights, logits };
enum Param { normalize, sigmoid };
inline MoeRouteArgs args(const Step& s) {
  return {s.data<int32_t>(ids), s.data(weights), s.data(logits), s.n, s.t(logits).cols(), s.t(ids).cols(), s.node.b(normalize), s.node.b(sigmoid)};
}
inline const OpDef def{
    "moe_route",
    {{"ids", Access::Out}, {"weights", Access::Out}, {"logits", Access::In}},
    {{"normalize", ParamType::Bool, true, 0}, {"sigmoid", ParamType::Bool, false, 0}},
    [](const Check& c) {
      const Tensor& L = c.f32(logits);
      const Tensor& I = c.tensor(ids);
      if (I.dtype != DType::I32) c.fail("ids must be i32, got " + I.describe());
      const int64_t k = I.cols();
      if (k < 1 || k > L.cols()) c.fail("ids must hold 1 .. " + std::to_string(L.cols()) + " experts per row (logits' columns), got " + std::to_string(k));
      c.f32(weights);
      c.cols(weights, k);
      c.rows(ids, c.max_rows);
      c.rows(weights, c.max_rows);
      c.rows(logits, c.max_rows);
    },
};
}  // namespace moe_route_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void moe_route_cuda(const MoeRouteArgs& a, cudaStream_t stream);  // cuda/moe_route.cu
FUSELM_CUDA_NAMESPACE_END
#endif
