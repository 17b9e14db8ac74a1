// swiglu: out = silu(gate) * up, elementwise (the gated MLP of Llama-family models).
#pragma once
#include "op.h"

namespace fuselm {

// out[t] = silu(gate[t]) * up[t]           f32 [T, D]; out may alias gate or up
struct SwigluArgs { float* out; const float* gate; const float* up; int64_t T, D; };
void swiglu_cpu(const SwigluArgs& a, const Exec& e);

namespace swiglu_op {
enum Role { out, gate, up };
inline SwigluArgs args(const Step& s) { return {s.data(out), s.data(gate), s.data(up), s.n, s.t(out).cols()}; }
inline const OpDef def{
    "swiglu",
    {{"out", Access::Out}, {"gate", Access::In}, {"up", Access::In}},
    {},
    [](const Check& c) { c.activations({out, gate, up}, c.tensor(out).cols()); },
};
}  // namespace swiglu_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void swiglu_cuda(const SwigluArgs& a, cudaStream_t stream);  // cuda/swiglu.cu
FUSELM_CUDA_NAMESPACE_END
#endif
