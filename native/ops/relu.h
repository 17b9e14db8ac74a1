// relu: out = max(x, 0), elementwise (T5 v1.0's FFN activation).
#pragma once
#include "op.h"

namespace fuselm {

// out = max(x, 0) elementwise over n f32 values; out may alias x. NaN stays NaN.
struct ReluArgs { float* out; const float* x; int64_t n; };
void relu_cpu(const ReluArgs& a, const Exec& e);

namespace relu_op {
enum Role { out, x };
inline ReluArgs args(const Step& s) { return {s.data(out), s.data(x), s.n * s.t(x).cols()}; }
inline const OpDef def{
    "relu",
    {{"out", Access::Out}, {"x", Access::In}},
    {},
    [](const Check& c) { c.activations({out, x}, c.tensor(x).cols()); },
};
}  // namespace relu_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void relu_cuda(const ReluArgs& a, cudaStream_t stream);  // cuda/relu.cu
FUSELM_CUDA_NAMESPACE_END
#endif
