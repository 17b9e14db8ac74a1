// rms_norm: out = x / rms(x) * weight, per row.
#pragma once
#include "op.h"

namespace fuselm {

// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w      f32 x,out [T, D], w [D]; out may alias x.
// With group_size g (Qwen3's and Gemma-3's per-head q/k norms), each row of x is cut into runs of
// g values, each normalized on its own with the same w [g]: the args see T * cols / g rows of D = g.
struct RmsNormArgs { float* out; const float* x; const float* w; int64_t T, D; float eps; };
void rms_norm_cpu(const RmsNormArgs& a, const Exec& e);

namespace rms_norm_op {
enum Role { out, x, weight };
enum Param { eps, group_size };
inline RmsNormArgs args(const Step& s) {
  const int64_t cols = s.t(x).cols(), g = s.node.i(group_size) ? s.node.i(group_size) : cols;
  return {s.data(out), s.data(x), s.data(weight), s.n * (cols / g), g, s.node.f(eps)};
}
inline const OpDef def{
    "rms_norm",
    {{"out", Access::Out}, {"x", Access::In}, {"weight", Access::In}},
    {{"eps", ParamType::Float, true, 0}, {"groupSize", ParamType::Int, false, 0}},
    [](const Check& c) {
      const int64_t cols = c.tensor(x).cols(), g = c.node.i(group_size);
      c.activations({out, x}, cols);
      if (g < 0 || (g && cols % g)) c.fail("groupSize must be 0 (the whole row) or divide the row's " + std::to_string(cols) + " values, got " + std::to_string(g));
      c.f32(weight);
      c.numel(weight, g ? g : cols);
      if (!(c.node.p[eps] >= 0)) c.fail("eps must be >= 0");
    },
};
}  // namespace rms_norm_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void rms_norm_cuda(const RmsNormArgs& a, cudaStream_t stream);  // cuda/rms_norm.cu
FUSELM_CUDA_NAMESPACE_END
#endif
