// seq2seq_attention (native/ops/seq2seq_attention.h): T5's position-biased attention and the
// encoder-decoder models' cross-attention; the CPU twin is native/cpu/seq2seq_attention.cc.
// One block per (token, head). Keys come in chunks of kChunk: each thread scores its strided
// keys into shared memory, the block takes the chunk's max and sum, rescales the running
// output (online softmax across chunks), and each thread accumulates its own output dims over
// the chunk's V rows. Small models and short sequences: plain f32, no tensor cores.
#include <cmath>
#include <cstdint>
#include <string>

#include "ops.h"
#include "ops/seq2seq_attention.h"
#include "reduce.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

namespace {
constexpr int kThreads = 128;
constexpr int kChunk = 256;
constexpr int kDimsPerThread = 8;  // head_dim <= kThreads * kDimsPerThread

__device__ __forceinline__ float block_max(float v, float* scratch) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float m = lane < n_warps ? scratch[lane] : -INFINITY;
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  __syncthreads();
  return m;
}
}  // namespace

static __global__ void seq2seq_attention_f32_kernel(Seq2seqAttentionArgs a) {
  float* sc = dynamic_smem<float>();  // [kChunk] scores, then [32] reduction scratch
  float* scratch = sc + kChunk;
  const int64_t t = blockIdx.x / a.n_heads, h = blockIdx.x % a.n_heads;
  const int64_t hd = a.head_dim, stride = a.n_heads * hd, i_pos = a.pos0 + t;
  const int64_t n = a.causal ? i_pos + 1 : a.keys > 0 ? a.keys : a.pos0 + a.T;
  const int64_t R = a.bias_range;
  const float* q = a.q + t * stride + h * hd;
  float m = -INFINITY, l = 0.0f, acc[kDimsPerThread];
  for (int k = 0; k < kDimsPerThread; k++) acc[k] = 0.0f;
  for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
    const int64_t cn = n - j0 < kChunk ? n - j0 : kChunk;
    float cmax = -INFINITY;
    for (int64_t jj = threadIdx.x; jj < cn; jj += kThreads) {
      const float* k = a.k_cache + (j0 + jj) * stride + h * hd;
      float d = 0.0f;
      for (int64_t i = 0; i < hd; i++) d += q[i] * k[i];
      float s = d * a.scale;
      if (a.pos_bias) {
        int64_t dist = j0 + jj - i_pos;
        dist = dist < -R ? -R : dist > R ? R : dist;
        s += a.pos_bias[h * (2 * R + 1) + dist + R];
      }
      sc[jj] = s;
      cmax = fmaxf(cmax, s);
    }
    cmax = block_max(cmax, scratch);  // its barriers also publish sc
    const float m_new = fmaxf(m, cmax), corr = expf(m - m_new);  // m = -inf at first: corr 0
    float ps = 0.0f;
    for (int64_t jj = threadIdx.x; jj < cn; jj += kThreads) ps += sc[jj] = expf(sc[jj] - m_new);
    ps = block_sum(ps, scratch);  // its barriers publish the exponentials
    l = l * corr + ps;
    for (int k = 0; k < kDimsPerThread; k++) {
      const int64_t i = threadIdx.x + int64_t(k) * kThreads;
      if (i >= hd) break;
      float s = acc[k] * corr;
      for (int64_t jj = 0; jj < cn; jj++) s += sc[jj] * a.v_cache[(j0 + jj) * stride + h * hd + i];
      acc[k] = s;
    }
    m = m_new;
    __syncthreads();  // every thread is done with sc before the next chunk's scores
  }
  float* o = a.out + t * stride + h * hd;
  for (int k = 0; k < kDimsPerThread; k++) {
    const int64_t i = threadIdx.x + int64_t(k) * kThreads;
    if (i < hd) o[i] = acc[k] / l;
  }
}

void seq2seq_attention_cuda(const Seq2seqAttentionArgs& a, cudaStream_t stream) {
  if (a.T <= 0) return;
  if (a.head_dim > kThreads * kDimsPerThread)
    throw Error("E_UNSUPPORTED", "seq2seq_attention_cuda: head_dim " + std::to_string(a.head_dim) + " > " +
                                     std::to_string(kThreads * kDimsPerThread));
  if (a.T * a.n_heads > 0x7fffffff) throw Error("E_UNSUPPORTED", "seq2seq_attention_cuda: too many (token, head) pairs");
  launch_kernel("seq2seq_attention_f32_kernel", seq2seq_attention_f32_kernel, dim3(unsigned(a.T * a.n_heads)), dim3(kThreads),
                (kChunk + 32) * sizeof(float), stream, a);
}

FUSELM_CUDA_OP(seq2seq_attention_op::def, [](const Step& s, const CudaExec& x) {
  seq2seq_attention_cuda(seq2seq_attention_op::args(s), x.stream);
});

FUSELM_CUDA_NAMESPACE_END
