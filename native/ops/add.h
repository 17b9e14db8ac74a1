// add: out = a + b, elementwise.
#pragma once
#include "op.h"

namespace fuselm {

// out[t, :] = a[t, :] + b[t, :]          f32 [T, D]; out may alias a or b
struct AddArgs { float* out; const float* a; const float* b; int64_t T, D; };
void add_cpu(const AddArgs& a, const Exec& e);

namespace add_op {
enum Role { out, a, b };
inline AddArgs args(const Step& s) { return {s.data(out), s.data(a), s.data(b), s.n, s.t(out).cols()}; }
inline const OpDef def{
    "add",
    {{"out", Access::Out}, {"a", Access::In}, {"b", Access::In}},
    {},
    [](const Check& c) { c.activations({out, a, b}, c.tensor(out).cols()); },
};
}  // namespace add_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void add_cuda(const AddArgs& a, cudaStream_t stream);  // cuda/add.cu
FUSELM_CUDA_NAMESPACE_END
#endif
