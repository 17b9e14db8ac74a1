// rms_norm: out = x / rms(x) * weight, per row.
#pragma once
#include "op.h"

namespace fuselm {

// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w      f32 x,out [T, D], w [D]; out may alias x
struct RmsNormArgs { float* out; const float* x; const float* w; int64_t T, D; float eps; };
void rms_norm_cpu(const RmsNormArgs& a, const Exec& e);

namespace rms_norm_op {
enum Role { out, x, weight };
enum Param { eps };
inline RmsNormArgs args(const Step& s) { return {s.data(out), s.data(x), s.data(weight), s.n, s.t(x).cols(), s.node.f(eps)}; }
inline const OpDef def{
    "rms_norm",
    {{"out", Access::Out}, {"x", Access::In}, {"weight", Access::In}},
    {{"eps", ParamType::Float, true, 0}},
    [](const Check& c) {
      const int64_t D = c.tensor(x).cols();
      c.activations({out, x}, D);
      c.f32(weight);
      c.numel(weight, D);
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
