// layer_norm: out[t] = (x[t] - mean) / sqrt(var + eps) * w + b over [T, D] f32 (GPT-2, BERT);
// the CPU twin is native/cpu/layer_norm.cc. One block per row. The row is read from global
// memory once, into registers: each thread holds VPT items of VEC floats (item i of the row
// at threadIdx.x + k * blockDim.x; VEC = 4 as 16-byte float4 loads when x, w, b, out are
// 16-byte aligned and D % 4 == 0). Mean and variance are two passes over those registers in
// f32 (the mean by a block sum, then the sum of (x - mean)^2 by a second block sum: no
// cancellation, unlike sum(x^2) - mean^2), and each thread writes (x - mean) * scale * w + b
// for its items (the reference's order). out may alias x: the row is in registers before the
// first write.
//
// Rows up to 16384 floats on the scalar path (VPT up to 32, at most 512 threads), 32768 with
// float4 (VPT at most 8, 32 registers of row, up to 1024 threads); longer rows throw
// E_INVALID_ARG. VPT 16 and 32 run under 512-thread launch bounds: 1024 would cap a thread at
// 64 registers, where VPT 16 spilled (ptxas, sm_90); VPT 32 (unaligned rows of 4097 to 16384
// floats) still spills about 24 bytes at 128.
#include <cstdint>
#include <string>

#include "ops.h"
#include "ops/layer_norm.h"
#include "reduce.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

template <int VEC>
__device__ __forceinline__ void layer_norm_load(float (&v)[VEC], const float* p) {
  if constexpr (VEC == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else {
    v[0] = *p;
  }
}

template <int VEC>
__device__ __forceinline__ void layer_norm_store(float* p, const float (&v)[VEC]) {
  if constexpr (VEC == 4)
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  else
    *p = v[0];
}

template <int VEC, int VPT>
static __global__ void __launch_bounds__(VPT > 8 ? 512 : 1024)
    layer_norm_f32_kernel(float* out, const float* x, const float* w, const float* b, int64_t D, float eps) {
  float* scratch = dynamic_smem<float>();
  const int64_t row = int64_t(blockIdx.x) * D, items = D / VEC;
  float v[VPT][VEC] = {};
  float sum = 0.0f;
  for (int k = 0; k < VPT; k++) {
    const int64_t i = threadIdx.x + int64_t(k) * blockDim.x;
    if (i < items) {
      layer_norm_load<VEC>(v[k], x + row + i * VEC);
      for (int j = 0; j < VEC; j++) sum += v[k][j];
    }
  }
  const float mean = block_sum(sum, scratch) / float(D);
  float sq = 0.0f;
  for (int k = 0; k < VPT; k++) {
    const int64_t i = threadIdx.x + int64_t(k) * blockDim.x;
    if (i < items) {
      for (int j = 0; j < VEC; j++) sq += (v[k][j] - mean) * (v[k][j] - mean);
    }
  }
  const float scale = rsqrtf(block_sum(sq, scratch) / float(D) + eps);
  for (int k = 0; k < VPT; k++) {
    const int64_t i = threadIdx.x + int64_t(k) * blockDim.x;
    if (i < items) {
      float g[VEC], c[VEC], o[VEC];
      layer_norm_load<VEC>(g, w + i * VEC);
      layer_norm_load<VEC>(c, b + i * VEC);
      for (int j = 0; j < VEC; j++) o[j] = (v[k][j] - mean) * scale * g[j] + c[j];
      layer_norm_store<VEC>(out + row + i * VEC, o);
    }
  }
}


template <int VEC, int VPT>
static void layer_norm_launch(const LayerNormArgs& a, unsigned threads, cudaStream_t stream) {
  launch_kernel("layer_norm_f32_kernel", layer_norm_f32_kernel<VEC, VPT>, dim3(unsigned(a.T)), dim3(threads),
                32 * sizeof(float), stream, a.out, a.x, a.w, a.b, a.D, a.eps);
}

template <int VEC>
static void layer_norm_dispatch(const LayerNormArgs& a, int vpt, unsigned threads, cudaStream_t stream) {
  switch (vpt) {
    case 1: return layer_norm_launch<VEC, 1>(a, threads, stream);
    case 2: return layer_norm_launch<VEC, 2>(a, threads, stream);
    case 4: return layer_norm_launch<VEC, 4>(a, threads, stream);
    case 8: return layer_norm_launch<VEC, 8>(a, threads, stream);
  }
  if constexpr (VEC == 1) {  // 16 and 32 only on the scalar path
    if (vpt == 16) return layer_norm_launch<1, 16>(a, threads, stream);
    layer_norm_launch<1, 32>(a, threads, stream);
  }
}

void layer_norm_cuda(const LayerNormArgs& a, cudaStream_t stream) {
  if (a.T <= 0 || a.D <= 0) return;
  const bool vec = a.D % 4 == 0 && aligned16(a.x) && aligned16(a.w) && aligned16(a.b) && aligned16(a.out);
  const int64_t items = vec ? a.D / 4 : a.D;
  const int max_vpt = vec ? 8 : 32;
  const int64_t max_items = vec ? 1024 * 8 : 512 * 32;  // the thread counts the launch bounds allow
  if (items > max_items)
    throw Error("E_INVALID_ARG", "layer_norm_cuda: rows of " + std::to_string(a.D) + " floats are longer than " +
                                     std::to_string(max_items * (vec ? 4 : 1)) + " (" +
                                     (vec ? "float4" : "unaligned") + " path)");
  // Up to 256 threads with few items each; more items per thread before more threads.
  int vpt = 1;
  while (vpt < max_vpt && items > 256 * int64_t(vpt)) vpt *= 2;
  const unsigned threads = unsigned((items + vpt - 1) / vpt + 31) / 32 * 32;
  if (vec)
    layer_norm_dispatch<4>(a, vpt, threads, stream);
  else
    layer_norm_dispatch<1>(a, vpt, threads, stream);
}

FUSELM_CUDA_OP(layer_norm_op::def, [](const Step& s, const CudaExec& x) { layer_norm_cuda(layer_norm_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
