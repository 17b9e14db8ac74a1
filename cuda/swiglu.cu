// swiglu: out = silu(gate) * up elementwise over [T, D] f32, silu(g) = g / (1 + exp(-g)); the
// CPU twin is native/cpu/swiglu.cc. Grid-stride over float4 vectors when all pointers are
// 16-byte aligned, else single floats. For g -> -inf, exp(-g) = inf and g / inf = -0; for
// g -> +inf, exp(-g) = 0: no NaN from large |g| (a true division, not __fdividef, which
// returns 0 or NaN for huge divisors). __expf's error (a few ulp for |g| < 16) is within the
// parity tolerance. out may alias gate or up.
#include <cstdint>

#include "ops.h"
#include "ops/swiglu.h"

FUSELM_CUDA_NAMESPACE_BEGIN

__device__ __forceinline__ float swiglu_one(float g, float u) { return g / (1.0f + __expf(-g)) * u; }

template <int VEC>
static __global__ void swiglu_f32_kernel(float* out, const float* gate, const float* up, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (VEC == 4) {
    const int64_t nv = n / 4;
    const float4* gv = reinterpret_cast<const float4*>(gate);
    const float4* uv = reinterpret_cast<const float4*>(up);
    float4* ov = reinterpret_cast<float4*>(out);
    for (int64_t i = first; i < nv; i += stride) {
      const float4 g = gv[i], u = uv[i];
      ov[i] = make_float4(swiglu_one(g.x, u.x), swiglu_one(g.y, u.y), swiglu_one(g.z, u.z), swiglu_one(g.w, u.w));
    }
    const int64_t tail = nv * 4 + first;
    if (tail < n) out[tail] = swiglu_one(gate[tail], up[tail]);
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = swiglu_one(gate[i], up[i]);
  }
}

void swiglu_cuda(const SwigluArgs& a, cudaStream_t stream) {
  const int64_t n = a.T * a.D;
  if (n <= 0) return;
  const bool vec = (reinterpret_cast<uintptr_t>(a.out) | reinterpret_cast<uintptr_t>(a.gate) |
                    reinterpret_cast<uintptr_t>(a.up)) % 16 == 0;
  const unsigned threads = 256;
  if (vec)
    launch_kernel("swiglu_f32_kernel<4>", swiglu_f32_kernel<4>, dim3(elementwise_blocks((n + 3) / 4, threads)),
                  dim3(threads), 0, stream, a.out, a.gate, a.up, n);
  else
    launch_kernel("swiglu_f32_kernel<1>", swiglu_f32_kernel<1>, dim3(elementwise_blocks(n, threads)), dim3(threads),
                  0, stream, a.out, a.gate, a.up, n);
}

FUSELM_CUDA_OP(swiglu_op::def, [](const Step& s, const CudaExec& x) { swiglu_cuda(swiglu_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
