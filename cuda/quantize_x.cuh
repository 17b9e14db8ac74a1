// Activations quantized for the int8 matmul kernels (the W8A8 q8_0 GEMM, cuda/gemm_q8_0.cu, and
// the dp4a GEMV for the GGUF block formats, cuda/gemv_quant.cu): x f32 [T, K] -> the matmul
// workspace, per block of 32 values exactly as the CPU's quantize_row_q8_cpu (and llama.cpp's
// block_q8_0): amax = max|x| (taken over the f32 bit patterns with the sign cleared, so a NaN
// wins), q = x * (127 / amax) rounded to nearest even, clamped to +-127, NaN -> 0, d = amax /
// 127 rounded to f16, kept as f32. Each step is one IEEE operation (the multiply and the
// rounding adds spelled _rn so nvcc cannot fuse them), so q and d equal the CPU's bit for bit.
// Layout: q int8 [T, K] at 0, then d f32 [T, K / 32] at the next 256-byte boundary.
#pragma once
#include <cstdint>

#include "common.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int kQuantWarps = 8;  // q8_0 blocks per thread block

inline size_t quantize_x_q8_scales_at(int64_t T, int64_t K) { return (size_t(T * K) + 255) / 256 * 256; }
inline size_t quantize_x_q8_bytes(int64_t T, int64_t K) {
  return quantize_x_q8_scales_at(T, K) + size_t(T * (K / kQ8Block)) * sizeof(float);
}

// One block of 32 values, one per lane of a warp (v: lane's value): its int8 to q[lane], its
// scale to *d (lane 0). Every kernel that quantizes activations goes through this.
__device__ __forceinline__ void quantize_block_q8(float v, int lane, int8_t* q, float* d) {
  uint32_t m = __float_as_uint(v) & 0x7fffffffu;
  for (int off = 16; off > 0; off >>= 1) {
    const uint32_t o = __shfl_xor_sync(0xffffffffu, m, off);
    m = o > m ? o : m;
  }
  const float amax = __uint_as_float(m);
  // IEEE divisions (no fast math in this build)
  const float dv = __half2float(__float2half_rn(amax / 127.f));
  const float id = amax != 0.f ? 127.f / amax : 0.f;
  float s = __fmul_rn(v, id);
  s = s > 127.f ? 127.f : s < -127.f ? -127.f : s == s ? s : 0.f;
  const float r = __fadd_rn(__fadd_rn(s, 0x1.8p23f), -0x1.8p23f);  // round to nearest even
  q[lane] = int8_t(int32_t(r));
  if (lane == 0) *d = dv;
}

static __global__ void quantize_x_q8_kernel(int8_t* q, float* d, const float* x, int64_t blocks) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t b = int64_t(blockIdx.x) * kQuantWarps + (threadIdx.x >> 5);
  if (b >= blocks) return;  // whole warps leave together
  quantize_block_q8(x[b * kQ8Block + lane], lane, q + b * kQ8Block, d + b);
}

// The two parts of T tokens' quantized x in `workspace`.
inline void quantized_x_q8_at(int64_t T, int64_t K, void* workspace, int8_t*& q, float*& d) {
  q = static_cast<int8_t*>(workspace);
  d = reinterpret_cast<float*>(static_cast<uint8_t*>(workspace) + quantize_x_q8_scales_at(T, K));
}

// Quantizes x [T, K] (K % 32 == 0) into `workspace` (256-byte aligned, quantize_x_q8_bytes(T, K)
// bytes) and points q and d at the two parts.
inline void quantize_x_q8_cuda(const float* x, int64_t T, int64_t K, void* workspace, int8_t*& q, float*& d,
                               cudaStream_t stream) {
  quantized_x_q8_at(T, K, workspace, q, d);
  const int64_t blocks = T * (K / kQ8Block);
  launch_kernel("quantize_x_q8_kernel", quantize_x_q8_kernel, dim3(unsigned((blocks + kQuantWarps - 1) / kQuantWarps)),
                dim3(32 * kQuantWarps), 0, stream, q, d, x, blocks);
}

FUSELM_CUDA_NAMESPACE_END
