// add_norm: the residual add fused into the next norm (AddNormArgs, cuda/ops.h), over [T, D]
// f32: x[t] += r[t], then out[t] = RMSNorm(x[t]) * w when b is null (Llama), else
// LayerNorm(x[t]) * w + b (GPT-2, BERT). The unfused pair is add_cpu then rms_norm_cpu or
// layer_norm_cpu; fused, the row crosses global memory once each way: x and r are read,
// x (the new residual stream) and out are written, 16 bytes per element.
//
// One block per row; the sum x + r stays in registers (each thread VPT items of VEC floats,
// item i at threadIdx.x + k * blockDim.x, VEC = 4 as float4 when every pointer is 16-byte
// aligned and D % 4 == 0) while the statistics are reduced, in f32 by block sums from
// reduce.cuh: RMS, one sum of squares; LayerNorm, two passes over the registers (mean, then
// the sum of (v - mean)^2, which does not cancel the way sum(v^2) - mean^2 does). The sum is
// rounded to f32 once, exactly as add_cpu rounds it, so x matches the unfused pair bit for bit
// and the norm sees the same values. Outputs follow the references' order: (v * scale) * w,
// (v - mean) * scale * w + b. out must not alias x (it would overwrite the residual stream).
// With quantize_to (decode: the matmuls on out read it as int8), the block then quantizes its
// row of out, a warp per 32 values (quantize_x.cuh's quantize_block_q8, so the bits are
// quantize_x_q8_kernel's), into the matmul workspace: one launch fewer per norm.
//
// Rows up to 16384 floats on the scalar path (VPT up to 32, at most 512 threads), 32768 with
// float4 (VPT at most 8, 32 registers of row, up to 1024 threads); longer rows throw
// E_INVALID_ARG. VPT 16 and 32 run under 512-thread launch bounds: 1024 would cap a thread at
// 64 registers, where VPT 16 spilled (ptxas, sm_90); VPT 32 (unaligned rows of 4097 to 16384
// floats) still spills about 24 bytes at 128.
#include <cstdint>
#include <string>

#include "ops.h"
#include "quantize_x.cuh"
#include "reduce.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

template <int VEC>
__device__ __forceinline__ void add_norm_load(float (&v)[VEC], const float* p) {
  if constexpr (VEC == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else {
    v[0] = *p;
  }
}

template <int VEC>
__device__ __forceinline__ void add_norm_store(float* p, const float (&v)[VEC]) {
  if constexpr (VEC == 4)
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  else
    *p = v[0];
}

template <bool LN, int VEC, int VPT>
static __global__ void __launch_bounds__(VPT > 8 ? 512 : 1024)
    add_norm_f32_kernel(float* out, float* x, const float* r, const float* w, const float* b, int64_t D, float eps,
                        int8_t* q, float* qd) {
  float* scratch = dynamic_smem<float>();
  const int64_t row = int64_t(blockIdx.x) * D, items = D / VEC;
  float v[VPT][VEC] = {};
  float s = 0.0f;  // LN: the sum; RMS: the sum of squares
  for (int k = 0; k < VPT; k++) {
    const int64_t i = threadIdx.x + int64_t(k) * blockDim.x;
    if (i < items) {
      float d[VEC];
      add_norm_load<VEC>(v[k], x + row + i * VEC);
      add_norm_load<VEC>(d, r + row + i * VEC);
      for (int j = 0; j < VEC; j++) {
        v[k][j] += d[j];
        s += LN ? v[k][j] : v[k][j] * v[k][j];
      }
      add_norm_store<VEC>(x + row + i * VEC, v[k]);
    }
  }
  s = block_sum(s, scratch);
  float mean = 0.0f, scale;
  if (LN) {
    mean = s / float(D);
    float sq = 0.0f;
    for (int k = 0; k < VPT; k++) {
      const int64_t i = threadIdx.x + int64_t(k) * blockDim.x;
      if (i < items) {
        for (int j = 0; j < VEC; j++) sq += (v[k][j] - mean) * (v[k][j] - mean);
      }
    }
    scale = rsqrtf(block_sum(sq, scratch) / float(D) + eps);
  } else {
    scale = rsqrtf(s / float(D) + eps);
  }
  for (int k = 0; k < VPT; k++) {
    const int64_t i = threadIdx.x + int64_t(k) * blockDim.x;
    if (i < items) {
      float g[VEC], o[VEC];
      add_norm_load<VEC>(g, w + i * VEC);
      if (LN) {
        float c[VEC];
        add_norm_load<VEC>(c, b + i * VEC);
        for (int j = 0; j < VEC; j++) o[j] = (v[k][j] - mean) * scale * g[j] + c[j];
      } else {
        for (int j = 0; j < VEC; j++) o[j] = v[k][j] * scale * g[j];
      }
      add_norm_store<VEC>(out + row + i * VEC, o);
    }
  }
  if (q) {
    __syncthreads();  // the row of out is written (each warp quantizes values other threads wrote)
    const int lane = int(threadIdx.x) & 31;
    const int64_t nb = D / kQ8Block;
    for (int64_t blk = threadIdx.x >> 5; blk < nb; blk += blockDim.x >> 5)
      quantize_block_q8(out[row + blk * kQ8Block + lane], lane, q + row + blk * kQ8Block, qd + int64_t(blockIdx.x) * nb + blk);
  }
}


template <bool LN, int VEC, int VPT>
static void add_norm_launch(const AddNormArgs& a, unsigned threads, cudaStream_t stream) {
  int8_t* q = nullptr;
  float* qd = nullptr;
  if (a.quantize_to) quantized_x_q8_at(a.T, a.D, a.quantize_to, q, qd);
  launch_kernel(LN ? "add_norm_f32_kernel<layer_norm>" : "add_norm_f32_kernel<rms_norm>",
                add_norm_f32_kernel<LN, VEC, VPT>, dim3(unsigned(a.T)), dim3(threads), 32 * sizeof(float), stream,
                a.out, a.x, a.r, a.w, a.b, a.D, a.eps, q, qd);
}

template <bool LN, int VEC>
static void add_norm_dispatch(const AddNormArgs& a, int vpt, unsigned threads, cudaStream_t stream) {
  switch (vpt) {
    case 1: return add_norm_launch<LN, VEC, 1>(a, threads, stream);
    case 2: return add_norm_launch<LN, VEC, 2>(a, threads, stream);
    case 4: return add_norm_launch<LN, VEC, 4>(a, threads, stream);
    case 8: return add_norm_launch<LN, VEC, 8>(a, threads, stream);
  }
  if constexpr (VEC == 1) {  // 16 and 32 only on the scalar path
    if (vpt == 16) return add_norm_launch<LN, 1, 16>(a, threads, stream);
    add_norm_launch<LN, 1, 32>(a, threads, stream);
  }
}

void add_norm_cuda(const AddNormArgs& a, cudaStream_t stream) {
  if (a.T <= 0 || a.D <= 0) return;
  if (a.out == a.x) throw Error("E_INVALID_ARG", "add_norm_cuda: out must not alias x (x is the residual stream)");
  if (a.quantize_to && (a.D % kQ8Block || reinterpret_cast<uintptr_t>(a.quantize_to) % 256))
    throw Error("E_INVALID_ARG", "add_norm_cuda: quantizing out needs rows of whole 32-value blocks (got " +
                                     std::to_string(a.D) + ") and a 256-byte aligned workspace");
  const bool vec = a.D % 4 == 0 && aligned16(a.out) && aligned16(a.x) && aligned16(a.r) && aligned16(a.w) &&
                   (a.b == nullptr || aligned16(a.b));
  const int64_t items = vec ? a.D / 4 : a.D;
  const int max_vpt = vec ? 8 : 32;
  const int64_t max_items = vec ? 1024 * 8 : 512 * 32;  // the thread counts the launch bounds allow
  if (items > max_items)
    throw Error("E_INVALID_ARG", "add_norm_cuda: rows of " + std::to_string(a.D) + " floats are longer than " +
                                     std::to_string(max_items * (vec ? 4 : 1)) + " (" +
                                     (vec ? "float4" : "unaligned") + " path)");
  // Up to 256 threads with few items each; more items per thread before more threads.
  int vpt = 1;
  while (vpt < max_vpt && items > 256 * int64_t(vpt)) vpt *= 2;
  const unsigned threads = unsigned((items + vpt - 1) / vpt + 31) / 32 * 32;
  if (a.b != nullptr) {
    if (vec)
      add_norm_dispatch<true, 4>(a, vpt, threads, stream);
    else
      add_norm_dispatch<true, 1>(a, vpt, threads, stream);
  } else {
    if (vec)
      add_norm_dispatch<false, 4>(a, vpt, threads, stream);
    else
      add_norm_dispatch<false, 1>(a, vpt, threads, stream);
  }
}

FUSELM_CUDA_NAMESPACE_END
