// rms_norm: out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w over [T, D] f32; the CPU twin is
// native/cpu/rms_norm.cc. One block per row: each thread sums the squares of its strided
// elements in f32 (16-byte float4 loads when x, w, out are 16-byte aligned and D % 4 == 0),
// warp shuffles and one shared-memory step reduce them, then each thread writes
// (x * scale) * w for the same elements (the reference's order). out may alias x: every thread
// reads its elements before it writes them, and all reads of the sum pass end at the block
// barrier inside block_sum.
#include <cstdint>

#include "ops.h"
#include "ops/rms_norm.h"
#include "reduce.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

template <int VEC>
static __global__ void rms_norm_f32_kernel(float* out, const float* x, const float* w, int64_t D, float eps) {
  float* scratch = dynamic_smem<float>();
  const int64_t row = int64_t(blockIdx.x) * D;
  const float* xr = x + row;
  float* orow = out + row;
  const int64_t nv = D / VEC;  // VEC == 4: D % 4 == 0
  float ss = 0.0f;
  if (VEC == 4) {
    const float4* xv = reinterpret_cast<const float4*>(xr);
    for (int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
      const float4 v = xv[i];
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  } else {
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) ss += xr[i] * xr[i];
  }
  ss = block_sum(ss, scratch);
  const float scale = rsqrtf(ss / float(D) + eps);
  if (VEC == 4) {
    const float4* xv = reinterpret_cast<const float4*>(xr);
    const float4* wv = reinterpret_cast<const float4*>(w);
    float4* ov = reinterpret_cast<float4*>(orow);
    for (int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
      const float4 v = xv[i], g = wv[i];
      ov[i] = make_float4(v.x * scale * g.x, v.y * scale * g.y, v.z * scale * g.z, v.w * scale * g.w);
    }
  } else {
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) orow[i] = xr[i] * scale * w[i];
  }
}


void rms_norm_cuda(const RmsNormArgs& a, cudaStream_t stream) {
  if (a.T <= 0 || a.D <= 0) return;
  const bool vec = a.D % 4 == 0 && aligned16(a.x) && aligned16(a.w) && aligned16(a.out);
  const int64_t items = vec ? a.D / 4 : a.D;
  // One pass of whole warps over the row when it fits in 256 threads (4 warps at least, so
  // short rows still have several loads in flight), else 256 threads with a few loads each.
  int64_t threads = (items + 31) / 32 * 32;
  threads = threads < 128 ? 128 : threads > 256 ? 256 : threads;
  const size_t smem = 32 * sizeof(float);
  if (vec)
    launch_kernel("rms_norm_f32_kernel<4>", rms_norm_f32_kernel<4>, dim3(unsigned(a.T)), dim3(unsigned(threads)), smem,
                  stream, a.out, a.x, a.w, a.D, a.eps);
  else
    launch_kernel("rms_norm_f32_kernel<1>", rms_norm_f32_kernel<1>, dim3(unsigned(a.T)), dim3(unsigned(threads)), smem,
                  stream, a.out, a.x, a.w, a.D, a.eps);
}

FUSELM_CUDA_OP(rms_norm_op::def, [](const Step& s, const CudaExec& x) { rms_norm_cuda(rms_norm_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
