// add: out = a + b elementwise over [T, D] f32; the CPU twin is native/cpu/add.cc.
// Grid-stride over float4 vectors when all three pointers are 16-byte aligned (the n % 4 tail
// by the first threads), else over single floats. out may alias a or b (each element is read
// and written by the same thread).
#include <cstdint>

#include "ops.h"
#include "ops/add.h"

FUSELM_CUDA_NAMESPACE_BEGIN

template <int VEC>
static __global__ void add_f32_kernel(float* out, const float* a, const float* b, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (VEC == 4) {
    const int64_t nv = n / 4;
    const float4* av = reinterpret_cast<const float4*>(a);
    const float4* bv = reinterpret_cast<const float4*>(b);
    float4* ov = reinterpret_cast<float4*>(out);
    for (int64_t i = first; i < nv; i += stride) {
      const float4 x = av[i], y = bv[i];
      ov[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
    }
    const int64_t tail = nv * 4 + first;
    if (tail < n) out[tail] = a[tail] + b[tail];
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = a[i] + b[i];
  }
}

void add_cuda(const AddArgs& a, cudaStream_t stream) {
  const int64_t n = a.T * a.D;
  if (n <= 0) return;
  const bool vec = (reinterpret_cast<uintptr_t>(a.out) | reinterpret_cast<uintptr_t>(a.a) |
                    reinterpret_cast<uintptr_t>(a.b)) % 16 == 0;
  const unsigned threads = 256;
  if (vec)
    launch_kernel("add_f32_kernel<4>", add_f32_kernel<4>, dim3(elementwise_blocks((n + 3) / 4, threads)),
                  dim3(threads), 0, stream, a.out, a.a, a.b, n);
  else
    launch_kernel("add_f32_kernel<1>", add_f32_kernel<1>, dim3(elementwise_blocks(n, threads)), dim3(threads), 0,
                  stream, a.out, a.a, a.b, n);
}

FUSELM_CUDA_OP(add_op::def, [](const Step& s, const CudaExec& x) { add_cuda(add_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
