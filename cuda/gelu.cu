// gelu: out = gelu(x) elementwise over n f32 values; the CPU twin is native/cpu/gelu.cc.
// Exact (BERT): 0.5 x (1 + erf(x / sqrt 2)), evaluated as 0.5 x erfc(-x / sqrt 2), which is
// the same function without the cancellation of 1 + erf for negative x (there erfc is small
// and keeps its relative accuracy). GPT-2's tanh approximation 0.5 x (1 + tanh(u)),
// u = sqrt(2/pi) (x + 0.044715 x^3), evaluated as x / (1 + exp(-2u)) (0.5 (1 + tanh u) is the
// logistic function of 2u), again without 1 + tanh cancelling; exp(-2u) = inf for very
// negative x gives x / inf = -0, and x^3 = +-inf for huge |x| gives x or -0: no NaN from
// finite x. Accurate expf / erfcf (a few ulp), not the fast intrinsics. Grid-stride over
// float4 vectors when x and out are 16-byte aligned (the n % 4 tail by the first threads),
// else single floats. out may alias x.
#include <cmath>
#include <cstdint>

#include "ops.h"
#include "ops/gelu.h"

FUSELM_CUDA_NAMESPACE_BEGIN

template <bool TANH>
__device__ __forceinline__ float gelu_one(float x) {
  if (TANH) {
    const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return x / (1.0f + expf(-2.0f * u));
  }
  return 0.5f * x * erfcf(-0.7071067811865476f * x);
}

template <bool TANH, int VEC>
static __global__ void gelu_f32_kernel(float* out, const float* x, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (VEC == 4) {
    const int64_t nv = n / 4;
    const float4* xv = reinterpret_cast<const float4*>(x);
    float4* ov = reinterpret_cast<float4*>(out);
    for (int64_t i = first; i < nv; i += stride) {
      const float4 v = xv[i];
      ov[i] = make_float4(gelu_one<TANH>(v.x), gelu_one<TANH>(v.y), gelu_one<TANH>(v.z), gelu_one<TANH>(v.w));
    }
    const int64_t tail = nv * 4 + first;
    if (tail < n) out[tail] = gelu_one<TANH>(x[tail]);
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = gelu_one<TANH>(x[i]);
  }
}

template <bool TANH>
static void gelu_launch(const GeluArgs& a, cudaStream_t stream) {
  const bool vec = (reinterpret_cast<uintptr_t>(a.out) | reinterpret_cast<uintptr_t>(a.x)) % 16 == 0;
  const unsigned threads = 256;
  if (vec)
    launch_kernel(TANH ? "gelu_tanh_f32_kernel<4>" : "gelu_erf_f32_kernel<4>", gelu_f32_kernel<TANH, 4>,
                  dim3(elementwise_blocks((a.n + 3) / 4, threads)), dim3(threads), 0, stream, a.out, a.x, a.n);
  else
    launch_kernel(TANH ? "gelu_tanh_f32_kernel<1>" : "gelu_erf_f32_kernel<1>", gelu_f32_kernel<TANH, 1>,
                  dim3(elementwise_blocks(a.n, threads)), dim3(threads), 0, stream, a.out, a.x, a.n);
}

void gelu_cuda(const GeluArgs& a, cudaStream_t stream) {
  if (a.n <= 0) return;
  if (a.tanh_approx)
    gelu_launch<true>(a, stream);
  else
    gelu_launch<false>(a, stream);
}

FUSELM_CUDA_OP(gelu_op::def, [](const Step& s, const CudaExec& x) { gelu_cuda(gelu_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
