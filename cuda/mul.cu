// mul: out = a * b elementwise over [T, D] f32; the CPU twin is native/cpu/mul.cc. One f32
// multiply per element (cuda/elementwise.cuh): exact, as the reference.
#include "elementwise.cuh"
#include "ops/mul.h"

FUSELM_CUDA_NAMESPACE_BEGIN

struct MulF32 {
  __device__ float operator()(float a, float b) const { return a * b; }
};

FUSELM_CUDA_OP(mul_op::def, [](const Step& s, const CudaExec& x) {
  const MulArgs a = mul_op::args(s);
  launch_binary_f32("mul_f32_kernel", a.out, a.a, a.b, a.T * a.D, MulF32{}, x.stream);
});

FUSELM_CUDA_NAMESPACE_END
