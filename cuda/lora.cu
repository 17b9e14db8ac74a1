// lora: y[t] += Σ_j scales[t, j] · Σ_{k ∈ seg j} (a[k] · x[t]) · bt[k] (native/ops/lora.h); the
// CPU twin is native/cpu/lora.cc. One block per row: each warp takes ranks in turn, its lanes
// summing strided products of a[k] and x[t] (warp_sum), times the rank's adapter's scale, into
// shared memory (0 where the row's scale switches the adapter off); then each thread adds the
// ranks' h · bt[k] to its columns, in rank order as the reference does.
#include <cstdint>

#include "ops.h"
#include "ops/lora.h"
#include "reduce.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

static __global__ void lora_f32_kernel(float* y, const float* x, const float* a, const float* bt, const int32_t* seg,
                                       const float* scales, int64_t K, int64_t N, int64_t R, int64_t J) {
  float* h = dynamic_smem<float>();
  const int64_t t = blockIdx.x;
  const float* xr = x + t * K;
  const float* sr = scales + t * J;
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  for (int64_t k = warp; k < R; k += n_warps) {
    int64_t j = 0;
    while (seg[j + 1] <= k) j++;
    const float s = sr[j];
    float d = 0.0f;
    if (s != 0.0f) {
      for (int64_t i = lane; i < K; i += 32) d += a[k * K + i] * xr[i];
      d = warp_sum(d);
    }
    if (lane == 0) h[k] = s * d;
  }
  __syncthreads();
  float* yr = y + t * N;
  for (int64_t o = threadIdx.x; o < N; o += blockDim.x) {
    float acc = yr[o];
    for (int64_t k = 0; k < R; k++)
      if (h[k] != 0.0f) acc += h[k] * bt[k * N + o];
    yr[o] = acc;
  }
}

void lora_cuda(const LoraArgs& a, cudaStream_t stream) {
  if (a.T <= 0 || a.R <= 0) return;
  launch_kernel("lora_f32_kernel", lora_f32_kernel, dim3(unsigned(a.T)), dim3(256), size_t(a.R) * sizeof(float), stream, a.y, a.x,
                a.a, a.bt, a.seg, a.scales, a.K, a.N, a.R, a.J);
}

FUSELM_CUDA_OP(lora_op::def, [](const Step& s, const CudaExec& x) { lora_cuda(lora_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
