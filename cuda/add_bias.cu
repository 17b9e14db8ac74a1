// add_bias: out[t, :] = x[t, :] + bias[:] over [T, D] f32 (the projection biases of GPT-2,
// BERT and Qwen2); the CPU twin is native/cpu/add_bias.cc. Grid-stride over the T * D
// elements, the bias column being the index modulo D: float4 vectors when x, bias and out are
// 16-byte aligned and D % 4 == 0 (so a vector never straddles two rows and its bias is one
// float4 too), else single floats. One f32 add per element, as in the reference: exact. out
// may alias x (each element is read and written by the same thread).
#include <cstdint>

#include "ops.h"
#include "ops/add_bias.h"

FUSELM_CUDA_NAMESPACE_BEGIN

template <int VEC>
static __global__ void add_bias_f32_kernel(float* out, const float* x, const float* bias, int64_t n, int64_t D) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (VEC == 4) {
    const float4* xv = reinterpret_cast<const float4*>(x);
    const float4* bv = reinterpret_cast<const float4*>(bias);
    float4* ov = reinterpret_cast<float4*>(out);
    const int64_t nv = n / 4, dv = D / 4;
    for (int64_t i = first; i < nv; i += stride) {
      const float4 a = xv[i], c = bv[i % dv];
      ov[i] = make_float4(a.x + c.x, a.y + c.y, a.z + c.z, a.w + c.w);
    }
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = x[i] + bias[i % D];
  }
}

void add_bias_cuda(const AddBiasArgs& a, cudaStream_t stream) {
  const int64_t n = a.T * a.D;
  if (n <= 0) return;
  const bool vec = a.D % 4 == 0 && (reinterpret_cast<uintptr_t>(a.out) | reinterpret_cast<uintptr_t>(a.x) |
                                    reinterpret_cast<uintptr_t>(a.bias)) % 16 == 0;
  const unsigned threads = 256;
  if (vec)
    launch_kernel("add_bias_f32_kernel<4>", add_bias_f32_kernel<4>, dim3(elementwise_blocks(n / 4, threads)),
                  dim3(threads), 0, stream, a.out, a.x, a.bias, n, a.D);
  else
    launch_kernel("add_bias_f32_kernel<1>", add_bias_f32_kernel<1>, dim3(elementwise_blocks(n, threads)),
                  dim3(threads), 0, stream, a.out, a.x, a.bias, n, a.D);
}

FUSELM_CUDA_OP(add_bias_op::def, [](const Step& s, const CudaExec& x) { add_bias_cuda(add_bias_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
