// relu: out = max(x, 0) over f32 (T5 v1.0's FFN activation); the CPU twin is native/cpu/relu.cc.
// Elementwise (cuda/elementwise.cuh); NaN stays NaN, as on the CPU.
#include "elementwise.cuh"
#include "ops/relu.h"

FUSELM_CUDA_NAMESPACE_BEGIN

struct ReluF32 {
  __device__ float operator()(float x) const { return x < 0.0f ? 0.0f : x; }
};

void relu_cuda(const ReluArgs& a, cudaStream_t stream) { launch_unary_f32("relu_f32_kernel", a.out, a.x, a.n, ReluF32{}, stream); }

FUSELM_CUDA_OP(relu_op::def, [](const Step& s, const CudaExec& x) { relu_cuda(relu_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
