// softcap: out = cap * tanh(x / cap) over [T, D] f32 (Gemma-2's final logit soft-capping); the
// CPU twin is native/cpu/softcap.cc. Accurate tanhf (a few ulp), not a fast intrinsic: the
// logits feed sampling and must agree with the CPU's. Grid-stride over float4 vectors when x
// and out are 16-byte aligned (the tail by the first threads), else single floats. out may
// alias x.
#include <cmath>
#include <cstdint>

#include "ops.h"
#include "ops/softcap.h"

FUSELM_CUDA_NAMESPACE_BEGIN

template <int VEC>
static __global__ void softcap_f32_kernel(float* out, const float* x, int64_t n, float cap) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const float inv = 1.0f / cap;
  if (VEC == 4) {
    const int64_t nv = n / 4;
    const float4* xv = reinterpret_cast<const float4*>(x);
    float4* ov = reinterpret_cast<float4*>(out);
    for (int64_t i = first; i < nv; i += stride) {
      const float4 v = xv[i];
      ov[i] = make_float4(cap * tanhf(v.x * inv), cap * tanhf(v.y * inv), cap * tanhf(v.z * inv), cap * tanhf(v.w * inv));
    }
    const int64_t tail = nv * 4 + first;
    if (tail < n) out[tail] = cap * tanhf(x[tail] * inv);
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = cap * tanhf(x[i] * inv);
  }
}

static void softcap_cuda(const SoftcapArgs& a, cudaStream_t stream) {
  const int64_t n = a.T * a.D;
  if (n <= 0) return;
  const unsigned threads = 256;
  if (aligned16(a.out) && aligned16(a.x))
    launch_kernel("softcap_f32_kernel<4>", softcap_f32_kernel<4>, dim3(elementwise_blocks((n + 3) / 4, threads)), dim3(threads), 0,
                  stream, a.out, a.x, n, a.cap);
  else
    launch_kernel("softcap_f32_kernel<1>", softcap_f32_kernel<1>, dim3(elementwise_blocks(n, threads)), dim3(threads), 0, stream,
                  a.out, a.x, n, a.cap);
}

FUSELM_CUDA_OP(softcap_op::def, [](const Step& s, const CudaExec& x) { softcap_cuda(softcap_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
