// gemv: the decode-shaped matmul y[t, n] = sum_k x[t, k] * w[n, k] (MatmulArgs, native/ops/matmul.h;
// the CPU twin is native/cpu/matmul.cc), x f32 [T, K], w [N, K] in f16, bf16, f32 or q8_0,
// y f32 [T, N]. Bandwidth-bound for T = 1: each weight is read once. One warp per output row
// (4 rows per block), grid.y = tokens (for small T a row is re-read per token, from L2).
// f16/bf16/f32 rows are read 16 bytes per lane (8 halves or 4 floats, with x read as float4s)
// when the pointers are 16-byte aligned and K allows (K % 8 for halves, K % 4 for f32), else
// one value per lane; q8_0: the row is streamed through shared memory by 16-byte loads, 32
// blocks at a time, then each lane takes a block (below). Every lane keeps an f32 partial sum;
// a butterfly of shuffles adds them. Not yet tuned: no split-K for short N.
#include <cstdint>
#include <string>

#include "convert.cuh"
#include "ops.h"
#include "q8_0_block.cuh"
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

// q8_0: the row streams through shared memory in 16-byte loads. GGUF's 34-byte blocks are only
// 2-byte aligned, so a warp takes its row 32 blocks (1088 bytes) at a time as a byte range:
// the 16-byte-aligned middle by 16-byte loads, every lane issuing its (up to 3) loads before
// storing any, so several are in flight; the few bytes before the first and after the last
// 16-byte boundary by 2-byte loads. Nothing outside the row is read. The range lands in the
// warp's staging buffer at its offset from the 16-byte boundary below it (so the 16-byte stores
// are aligned), then lane b takes block b from there (load_q8_block) with x as float4s when
// aligned (K % 32 == 0 keeps every block's x aligned) and sums q * x in f32 scaled by d.
constexpr int kQ8ChunkBlocks = 32;                                // a block per lane
constexpr int kQ8ChunkBytes = kQ8ChunkBlocks * kQ8BlockBytes;     // 1088
constexpr int kQ8Stage = kQ8ChunkBytes + 16;                      // staging bytes per warp
constexpr int kQ8LoadsPerLane = (kQ8ChunkBytes / 16 + 31) / 32;   // 16-byte loads per lane: 3

template <bool XVEC>
static __global__ void gemv_q8_0_kernel(float* y, const float* x, const uint8_t* w, int64_t K, int64_t N) {
  const int lane = int(threadIdx.x) & 31;
  uint8_t* stage = dynamic_smem<uint8_t>() + (threadIdx.x >> 5) * kQ8Stage;
  const int64_t n = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (n >= N) return;  // whole warps leave together; each warp has its own staging buffer
  const int64_t t = blockIdx.y;
  const int64_t nb = K / kQ8Block;
  const float* xt = x + t * K;
  const uint8_t* wr = w + n * nb * kQ8BlockBytes;
  float acc = 0.0f;
  for (int64_t b0 = 0; b0 < nb; b0 += kQ8ChunkBlocks) {
    const int nblk = int(nb - b0 < kQ8ChunkBlocks ? nb - b0 : kQ8ChunkBlocks);
    const uintptr_t cs = reinterpret_cast<uintptr_t>(wr + b0 * kQ8BlockBytes), ce = cs + uintptr_t(nblk) * kQ8BlockBytes;
    const uintptr_t origin = cs & ~uintptr_t(15);                   // stage[i] holds byte origin + i
    const uintptr_t as = (cs + 15) & ~uintptr_t(15), ae = ce & ~uintptr_t(15);
    if (as < ae) {
      const int nvec = int((ae - as) / 16);
      uint4 v[kQ8LoadsPerLane];
      for (int k = 0; k < kQ8LoadsPerLane; k++)
        if (lane + 32 * k < nvec) v[k] = reinterpret_cast<const uint4*>(as)[lane + 32 * k];
      for (int k = 0; k < kQ8LoadsPerLane; k++)
        if (lane + 32 * k < nvec) reinterpret_cast<uint4*>(stage + (as - origin))[lane + 32 * k] = v[k];
    }
    // the unaligned ends, 2 bytes a lane: [cs, as) and [ae, ce) (all of [cs, ce) if no middle)
    const uintptr_t head_end = as < ce ? as : ce, tail_start = ae > head_end ? ae : head_end;
    const int head = int(head_end - cs) / 2, tail = int(ce - tail_start) / 2;
    if (lane < head) reinterpret_cast<uint16_t*>(stage + (cs - origin))[lane] = reinterpret_cast<const uint16_t*>(cs)[lane];
    for (int i = lane; i < tail; i += 32)
      reinterpret_cast<uint16_t*>(stage + (tail_start - origin))[i] = reinterpret_cast<const uint16_t*>(tail_start)[i];
    __syncwarp();
    if (lane < nblk) {
      float d;
      uint32_t q[8];
      const uint8_t* blk = stage + (cs - origin) + lane * kQ8BlockBytes;
      smem_bounds_check(blk, kQ8BlockBytes);
      load_q8_block(blk, d, q);
      const float* xb = xt + (b0 + lane) * kQ8Block;
      float s = 0.0f;
      for (int j = 0; j < 8; j++) {
        float4 xv;
        if (XVEC) xv = reinterpret_cast<const float4*>(xb)[j];
        else xv = make_float4(xb[4 * j], xb[4 * j + 1], xb[4 * j + 2], xb[4 * j + 3]);
        s += float(int8_t(q[j] & 0xff)) * xv.x + float(int8_t((q[j] >> 8) & 0xff)) * xv.y +
             float(int8_t((q[j] >> 16) & 0xff)) * xv.z + float(int8_t(q[j] >> 24)) * xv.w;
      }
      acc += d * s;
    }
    __syncwarp();  // the staging buffer is reused by the next chunk
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
    case DType::Q8_0:
      if (a.K % kQ8Block) throw Error("E_INVALID_ARG", "matmul_gemv_cuda: q8_0 rows must hold whole 32-value blocks");
      if (reinterpret_cast<uintptr_t>(a.w) % 2)
        throw Error("E_INVALID_ARG", "matmul_gemv_cuda: q8_0 weights must be 2-byte aligned");
      if (aligned16(a.x))
        launch_kernel("gemv_q8_0_kernel<xvec>", gemv_q8_0_kernel<true>, grid, block, kGemvWarps * kQ8Stage, stream, a.y,
                      a.x, static_cast<const uint8_t*>(a.w), a.K, a.N);
      else
        launch_kernel("gemv_q8_0_kernel", gemv_q8_0_kernel<false>, grid, block, kGemvWarps * kQ8Stage, stream, a.y, a.x,
                      static_cast<const uint8_t*>(a.w), a.K, a.N);
      return;
    default:
      throw Error("E_INVALID_ARG", std::string("matmul_gemv_cuda: unsupported weight dtype ") + dtype_name(a.w_dtype));
  }
}

FUSELM_CUDA_NAMESPACE_END
