// layer_norm: out = (x - mean) / sqrt(var + eps) * weight + bias, per row.
#pragma once
#include "op.h"

namespace fuselm {

// out[t] = (x[t] - mean) / sqrt(var + eps) * w + b   f32 x,out [T, D], w,b [D]; out may alias x
struct LayerNormArgs { float* out; const float* x; const float* w; const float* b; int64_t T, D; float eps; };
void layer_norm_cpu(const LayerNormArgs& a, const Exec& e);

namespace layer_norm_op {
enum Role { out, x, weight, bias };
enum Param { eps };
inline LayerNormArgs args(const Step& s) {
  return {s.data(out), s.data(x), s.data(weight), s.data(bias), s.n, s.t(x).cols(), s.node.f(eps)};
}
inline const OpDef def{
    "layer_norm",
    {{"out", Access::Out}, {"x", Access::In}, {"weight", Access::In}, {"bias", Access::In}},
    {{"eps", ParamType::Float, true, 0}},
    [](const Check& c) {
      const int64_t D = c.tensor(x).cols();
      c.activations({out, x}, D);
      c.f32(weight);
      c.numel(weight, D);
      c.f32(bias);
      c.numel(bias, D);
      if (!(c.node.p[eps] >= 0)) c.fail("eps must be >= 0");
    },
};
}  // namespace layer_norm_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void layer_norm_cuda(const LayerNormArgs& a, cudaStream_t stream);  // cuda/layer_norm.cu
FUSELM_CUDA_NAMESPACE_END
#endif
