// gelu: out = gelu(x), elementwise; exact (erf) or GPT-2's tanh approximation.
#pragma once
#include "op.h"

namespace fuselm {

// out = gelu(x) elementwise over n f32 values; tanh: GPT-2's tanh approximation
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), else the exact 0.5 x (1 + erf(x / sqrt 2)).
struct GeluArgs { float* out; const float* x; int64_t n; bool tanh_approx; };
void gelu_cpu(const GeluArgs& a, const Exec& e);

namespace gelu_op {
enum Role { out, x };
enum Param { tanh_approx };
inline GeluArgs args(const Step& s) { return {s.data(out), s.data(x), s.n * s.t(x).cols(), s.node.b(tanh_approx)}; }
inline const OpDef def{
    "gelu",
    {{"out", Access::Out}, {"x", Access::In}},
    {{"tanhApprox", ParamType::Bool, true, 0}},
    [](const Check& c) { c.activations({out, x}, c.tensor(x).cols()); },
};
}  // namespace gelu_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void gelu_cuda(const GeluArgs& a, cudaStream_t stream);  // cuda/gelu.cu
FUSELM_CUDA_NAMESPACE_END
#endif
