// swiglu: out = silu(gate) * up elementwise over [T, D] f32, silu(g) = g / (1 + exp(-g)); the
// CPU twin is native/cpu/swiglu.cc. Elementwise (cuda/elementwise.cuh). For g -> -inf,
// exp(-g) = inf and g / inf = -0; for g -> +inf, exp(-g) = 0: no NaN from large |g| (a true
// division, not __fdividef, which returns 0 or NaN for huge divisors). __expf's error (a few ulp for |g| < 16) is within the
// parity tolerance. out may alias gate or up.
#include "elementwise.cuh"
#include "ops/swiglu.h"

FUSELM_CUDA_NAMESPACE_BEGIN

struct SwigluF32 {
  __device__ float operator()(float g, float u) const { return g / (1.0f + __expf(-g)) * u; }
};

void swiglu_cuda(const SwigluArgs& a, cudaStream_t stream) {
  launch_binary_f32("swiglu_f32_kernel", a.out, a.gate, a.up, a.T * a.D, SwigluF32{}, stream);
}

FUSELM_CUDA_OP(swiglu_op::def, [](const Step& s, const CudaExec& x) { swiglu_cuda(swiglu_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
