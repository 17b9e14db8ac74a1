// scale: out = x * s elementwise over [T, D] f32; the CPU twin is native/cpu/scale.cc.
// Grid-stride over float4 vectors when both pointers are 16-byte aligned (the tail by the
// first threads), else over single floats. out may alias x. Exact, as the reference.
#include <cstdint>

#include "ops.h"
#include "ops/scale.h"

FUSELM_CUDA_NAMESPACE_BEGIN

template <int VEC>
static __global__ void scale_f32_kernel(float* out, const float* x, int64_t n, float s) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (VEC == 4) {
    const int64_t nv = n / 4;
    const float4* xv = reinterpret_cast<const float4*>(x);
    float4* ov = reinterpret_cast<float4*>(out);
    for (int64_t i = first; i < nv; i += stride) {
      const float4 v = xv[i];
      ov[i] = make_float4(v.x * s, v.y * s, v.z * s, v.w * s);
    }
    const int64_t tail = nv * 4 + first;
    if (tail < n) out[tail] = x[tail] * s;
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = x[i] * s;
  }
}

static void scale_cuda(const ScaleArgs& a, cudaStream_t stream) {
  const int64_t n = a.T * a.D;
  if (n <= 0) return;
  const unsigned threads = 256;
  if (aligned16(a.out) && aligned16(a.x))
    launch_kernel("scale_f32_kernel<4>", scale_f32_kernel<4>, dim3(elementwise_blocks((n + 3) / 4, threads)), dim3(threads), 0,
                  stream, a.out, a.x, n, a.s);
  else
    launch_kernel("scale_f32_kernel<1>", scale_f32_kernel<1>, dim3(elementwise_blocks(n, threads)), dim3(threads), 0, stream,
                  a.out, a.x, n, a.s);
}

FUSELM_CUDA_OP(scale_op::def, [](const Step& s, const CudaExec& x) { scale_cuda(scale_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
