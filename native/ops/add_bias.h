// add_bias: out[t] = x[t] + bias, a bias vector added to every row.
#pragma once
#include "op.h"

namespace fuselm {

// out[t, :] = x[t, :] + bias[:]           f32 x,out [T, D], bias [D]; out may alias x
struct AddBiasArgs { float* out; const float* x; const float* bias; int64_t T, D; };
void add_bias_cpu(const AddBiasArgs& a, const Exec& e);

namespace add_bias_op {
enum Role { out, x, bias };
inline AddBiasArgs args(const Step& s) { return {s.data(out), s.data(x), s.data(bias), s.n, s.t(x).cols()}; }
inline const OpDef def{
    "add_bias",
    {{"out", Access::Out}, {"x", Access::In}, {"bias", Access::In}},
    {},
    [](const Check& c) {
      const int64_t D = c.tensor(x).cols();
      c.activations({out, x}, D);
      c.f32(bias);
      c.numel(bias, D);
    },
};
}  // namespace add_bias_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void add_bias_cuda(const AddBiasArgs& a, cudaStream_t stream);  // cuda/add_bias.cu
FUSELM_CUDA_NAMESPACE_END
#endif
