// gelu: out = gelu(x) elementwise over n f32 values; the CPU twin is native/cpu/gelu.cc.
// Exact (BERT): 0.5 x (1 + erf(x / sqrt 2)), evaluated as 0.5 x erfc(-x / sqrt 2), which is
// the same function without the cancellation of 1 + erf for negative x (there erfc is small
// and keeps its relative accuracy). GPT-2's tanh approximation 0.5 x (1 + tanh(u)),
// u = sqrt(2/pi) (x + 0.044715 x^3), evaluated as x / (1 + exp(-2u)) (0.5 (1 + tanh u) is the
// logistic function of 2u), again without 1 + tanh cancelling; exp(-2u) = inf for very
// negative x gives x / inf = -0, and x^3 = +-inf for huge |x| gives x or -0: no NaN from
// finite x. Accurate expf / erfcf (a few ulp), not the fast intrinsics. Elementwise
// (cuda/elementwise.cuh); out may alias x.
#include <cmath>

#include "elementwise.cuh"
#include "ops/gelu.h"

FUSELM_CUDA_NAMESPACE_BEGIN

template <bool TANH>
struct GeluF32 {
  __device__ float operator()(float x) const {
    if (TANH) {
      const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
      return x / (1.0f + expf(-2.0f * u));
    }
    return 0.5f * x * erfcf(-0.7071067811865476f * x);
  }
};

void gelu_cuda(const GeluArgs& a, cudaStream_t stream) {
  if (a.tanh_approx)
    launch_unary_f32("gelu_tanh_f32_kernel", a.out, a.x, a.n, GeluF32<true>{}, stream);
  else
    launch_unary_f32("gelu_erf_f32_kernel", a.out, a.x, a.n, GeluF32<false>{}, stream);
}

FUSELM_CUDA_OP(gelu_op::def, [](const Step& s, const CudaExec& x) { gelu_cuda(gelu_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
