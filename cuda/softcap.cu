// softcap: out = cap * tanh(x / cap) over [T, D] f32 (Gemma-2's final logit soft-capping); the
// CPU twin is native/cpu/softcap.cc. Accurate tanhf (a few ulp), not a fast intrinsic: the
// logits feed sampling and must agree with the CPU's. Elementwise (cuda/elementwise.cuh).
#include <cmath>

#include "elementwise.cuh"
#include "ops/softcap.h"

FUSELM_CUDA_NAMESPACE_BEGIN

struct SoftcapF32 {
  float cap, inv;
  __device__ float operator()(float x) const { return cap * tanhf(x * inv); }
};

FUSELM_CUDA_OP(softcap_op::def, [](const Step& s, const CudaExec& x) {
  const SoftcapArgs a = softcap_op::args(s);
  launch_unary_f32("softcap_f32_kernel", a.out, a.x, a.T * a.D, SoftcapF32{a.cap, 1.0f / a.cap}, x.stream);
});

FUSELM_CUDA_NAMESPACE_END
