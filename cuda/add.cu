// add: out = a + b elementwise over [T, D] f32; the CPU twin is native/cpu/add.cc.
// One f32 add per element (cuda/elementwise.cuh): exact, as the reference.
#include "elementwise.cuh"
#include "ops/add.h"

FUSELM_CUDA_NAMESPACE_BEGIN

struct AddF32 {
  __device__ float operator()(float a, float b) const { return a + b; }
};

void add_cuda(const AddArgs& a, cudaStream_t stream) { launch_binary_f32("add_f32_kernel", a.out, a.a, a.b, a.T * a.D, AddF32{}, stream); }

FUSELM_CUDA_OP(add_op::def, [](const Step& s, const CudaExec& x) { add_cuda(add_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
