// swiglu: out = silu(gate) * up elementwise over [T, D] f32 (the function in cuda/swiglu.cuh);
// the CPU twin is native/cpu/swiglu.cc. Elementwise (cuda/elementwise.cuh). out may alias gate or up.
#include "elementwise.cuh"
#include "ops/swiglu.h"
#include "swiglu.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

void swiglu_cuda(const SwigluArgs& a, cudaStream_t stream) {
  launch_binary_f32("swiglu_f32_kernel", a.out, a.gate, a.up, a.T * a.D, SwigluF32{}, stream);
}

FUSELM_CUDA_OP(swiglu_op::def, [](const Step& s, const CudaExec& x) { swiglu_cuda(swiglu_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
