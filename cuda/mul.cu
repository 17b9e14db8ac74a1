// mul: out = a * b elementwise over [T, D] f32; the CPU twin is native/cpu/mul.cc. Grid-stride
// over float4 vectors when all three pointers are 16-byte aligned (the tail by the first
// threads), else over single floats. out may alias a or b. Exact, as the reference.
#include <cstdint>

#include "ops.h"
#include "ops/mul.h"

FUSELM_CUDA_NAMESPACE_BEGIN

template <int VEC>
static __global__ void mul_f32_kernel(float* out, const float* a, const float* b, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (VEC == 4) {
    const int64_t nv = n / 4;
    const float4* av = reinterpret_cast<const float4*>(a);
    const float4* bv = reinterpret_cast<const float4*>(b);
    float4* ov = reinterpret_cast<float4*>(out);
    for (int64_t i = first; i < nv; i += stride) {
      const float4 x = av[i], y = bv[i];
      ov[i] = make_float4(x.x * y.x, x.y * y.y, x.z * y.z, x.w * y.w);
    }
    const int64_t tail = nv * 4 + first;
    if (tail < n) out[tail] = a[tail] * b[tail];
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = a[i] * b[i];
  }
}

static void mul_cuda(const MulArgs& a, cudaStream_t stream) {
  const int64_t n = a.T * a.D;
  if (n <= 0) return;
  const unsigned threads = 256;
  if (aligned16(a.out) && aligned16(a.a) && aligned16(a.b))
    launch_kernel("mul_f32_kernel<4>", mul_f32_kernel<4>, dim3(elementwise_blocks((n + 3) / 4, threads)), dim3(threads), 0, stream,
                  a.out, a.a, a.b, n);
  else
    launch_kernel("mul_f32_kernel<1>", mul_f32_kernel<1>, dim3(elementwise_blocks(n, threads)), dim3(threads), 0, stream, a.out,
                  a.a, a.b, n);
}

FUSELM_CUDA_OP(mul_op::def, [](const Step& s, const CudaExec& x) { mul_cuda(mul_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
