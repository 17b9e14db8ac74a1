// gemv: the decode-shaped matmul y[t, n] = sum_k x[t, k] * w[n, k] (MatmulArgs, native/ops/matmul.h;
// the CPU twin is native/cpu/matmul.cc), x f32 [T, K], w [N, K] in f16, bf16 or f32 (the block
// formats, q8_0 included, go to the dp4a GEMV, cuda/gemv_quant.cu), y f32 [T, N].
// Bandwidth-bound for T = 1: each weight is read once. One warp per output row (4 rows per
// block), grid.y = tokens (for small T a row is re-read per token, from L2). Rows are read 16
// bytes per lane (8 halves or 4 floats, with x read as float4s) when the pointers are 16-byte
// aligned and K allows (K % 8 for halves, K % 4 for f32), else one value per lane. Every lane
// keeps an f32 partial sum; a butterfly of shuffles adds them. Not yet tuned: no split-K for
// short N.
#include <cstdint>
#include <string>

#include "convert.cuh"
#include "ops.h"
#include "reduce.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int kGemvWarps = 4;  // rows per block

template <bool BF16, int VEC>
static __global__ void gemv_half_kernel(float* y, const float* x, const uint16_t* w, int64_t K, int64_t N) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t n = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (n >= N) return;  // whole warps leave together
  const int64_t t = blockIdx.y;
  const float* xt = x + t * K;
  const uint16_t* wr = w + n * K;
  float acc = 0.0f;
  if (VEC == 8) {
    const uint4* wv = reinterpret_cast<const uint4*>(wr);
    const float4* xv = reinterpret_cast<const float4*>(xt);
    for (int64_t c = lane; c < K / 8; c += 32) {
      const uint4 q = wv[c];
      const float4 x0 = xv[2 * c], x1 = xv[2 * c + 1];
      const float2 w0 = half2_bits_to_f32<BF16>(q.x), w1 = half2_bits_to_f32<BF16>(q.y);
      const float2 w2 = half2_bits_to_f32<BF16>(q.z), w3 = half2_bits_to_f32<BF16>(q.w);
      acc += x0.x * w0.x + x0.y * w0.y + x0.z * w1.x + x0.w * w1.y + x1.x * w2.x + x1.y * w2.y + x1.z * w3.x +
             x1.w * w3.y;
    }
  } else {
    for (int64_t k = lane; k < K; k += 32) acc += xt[k] * (BF16 ? bf16_bits_to_f32(wr[k]) : f16_bits_to_f32(wr[k]));
  }
  acc = warp_sum(acc);
  if (lane == 0) y[t * N + n] = acc;
}

template <int VEC>
static __global__ void gemv_f32_kernel(float* y, const float* x, const float* w, int64_t K, int64_t N) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t n = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (n >= N) return;
  const int64_t t = blockIdx.y;
  const float* xt = x + t * K;
  const float* wr = w + n * K;
  float acc = 0.0f;
  if (VEC == 4) {
    const float4* wv = reinterpret_cast<const float4*>(wr);
    const float4* xv = reinterpret_cast<const float4*>(xt);
    for (int64_t c = lane; c < K / 4; c += 32) {
      const float4 a = xv[c], b = wv[c];
      acc += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
    }
  } else {
    for (int64_t k = lane; k < K; k += 32) acc += xt[k] * wr[k];
  }
  acc = warp_sum(acc);
  if (lane == 0) y[t * N + n] = acc;
}

void matmul_gemv_cuda(const MatmulArgs& a, cudaStream_t stream) {
  if (a.T <= 0 || a.N <= 0) return;
  if (a.T > 65535) throw Error("E_INVALID_ARG", "matmul_gemv_cuda: at most 65535 tokens (grid.y)");
  if (a.K <= 0) {
    CUDA_CHECK(cudaMemsetAsync(a.y, 0, size_t(a.T * a.N) * sizeof(float), stream));
    return;
  }
  const dim3 grid(unsigned((a.N + kGemvWarps - 1) / kGemvWarps), unsigned(a.T)), block(32 * kGemvWarps);
  const bool al = aligned16(a.x) && aligned16(a.w);
  switch (a.w_dtype) {
    case DType::F16:
    case DType::BF16: {
      const uint16_t* w = static_cast<const uint16_t*>(a.w);
      const bool vec = al && a.K % 8 == 0;
      if (a.w_dtype == DType::F16) {
        if (vec)
          launch_kernel("gemv_f16_kernel<8>", gemv_half_kernel<false, 8>, grid, block, 0, stream, a.y, a.x, w, a.K, a.N);
        else
          launch_kernel("gemv_f16_kernel<1>", gemv_half_kernel<false, 1>, grid, block, 0, stream, a.y, a.x, w, a.K, a.N);
      } else {
        if (vec)
          launch_kernel("gemv_bf16_kernel<8>", gemv_half_kernel<true, 8>, grid, block, 0, stream, a.y, a.x, w, a.K, a.N);
        else
          launch_kernel("gemv_bf16_kernel<1>", gemv_half_kernel<true, 1>, grid, block, 0, stream, a.y, a.x, w, a.K, a.N);
      }
      return;
    }
    case DType::F32: {
      const float* w = static_cast<const float*>(a.w);
      if (al && a.K % 4 == 0)
        launch_kernel("gemv_f32_kernel<4>", gemv_f32_kernel<4>, grid, block, 0, stream, a.y, a.x, w, a.K, a.N);
      else
        launch_kernel("gemv_f32_kernel<1>", gemv_f32_kernel<1>, grid, block, 0, stream, a.y, a.x, w, a.K, a.N);
      return;
    }
    default:
      throw Error("E_INVALID_ARG", std::string("matmul_gemv_cuda: unsupported weight dtype ") + dtype_name(a.w_dtype));
  }
}

FUSELM_CUDA_NAMESPACE_END
