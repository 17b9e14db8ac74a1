// scale: out = x * s elementwise over [T, D] f32; the CPU twin is native/cpu/scale.cc. One f32
// multiply per element (cuda/elementwise.cuh): exact, as the reference.
#include "elementwise.cuh"
#include "ops/scale.h"

FUSELM_CUDA_NAMESPACE_BEGIN

struct ScaleF32 {
  float s;
  __device__ float operator()(float x) const { return x * s; }
};

FUSELM_CUDA_OP(scale_op::def, [](const Step& st, const CudaExec& x) {
  const ScaleArgs a = scale_op::args(st);
  launch_unary_f32("scale_f32_kernel", a.out, a.x, a.T * a.D, ScaleF32{a.s}, x.stream);
});

FUSELM_CUDA_NAMESPACE_END
