// attention_tiled: prefill attention for what the FA2 kernel (cuda/attention_fa2.cu) does not
// take: f32 caches, and f16/bf16 caches of head dims outside its set (AttentionArgs,
// native/ops/attention.h; the semantics of attention_cpu, native/cpu/attention.cc): q, out f32
// [T, n_heads * hd], caches f32, f16 or bf16 [ctx, n_kv_heads * hd], hd 1..256, causal
// (optionally a sliding window) or not, GQA, scores optionally soft-capped. No shared prefix
// (beam search's prefix is split-KV's). Arithmetic is f32 throughout (CUDA cores, not tensor
// cores): an f32 cache keeps its precision, as on the CPU.
//
// Why not split-KV for these: it gives each (token, head) its own pass over the keys, so a
// prefill of T tokens reads the K/V rows T times from L2. Here a block takes 32 queries of one
// head and streams the keys through shared memory in tiles of 32, so each K/V row read from
// global memory serves 32 queries.
//  - The block's queries sit in shared memory (f32, pre-scaled by scale * log2 e: the softmax
//    uses exp2); K and V tiles, widened to f32, share one buffer (K, then V), rows an odd
//    number of floats apart (hd | 1) so the 32 lanes reading 32 different key rows hit 32
//    distinct banks.
//  - Warp w owns query rows 8w .. 8w + 7. S = Q K^T: lane j scores key j of the tile against
//    the warp's 8 rows (the query values are shared-memory broadcasts). Online softmax per row
//    over the warp (max by shuffles); each lane keeps its share of the running sum.
//  - O += P V: P goes through shared memory (8 x 32 per warp); lane i accumulates dims
//    i, i + 32, ... (NE of them) of the 8 rows, reading V rows with consecutive lanes on
//    consecutive dims.
//  - Only the key tiles some query of the block can see are visited (causal: up to the last
//    query's position; window: from the first query's window start); keys past the visible
//    range are neither loaded (zeros in the buffer) nor weighted.
#include <cmath>
#include <cstdint>
#include <string>

#include "convert.cuh"
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int kTiledWarps = 4;
constexpr int kTiledRowsPerWarp = 8;
constexpr int kTiledBlockM = kTiledWarps * kTiledRowsPerWarp;  // queries per block
constexpr int kTiledBlockN = 32;                               // keys per tile: one per lane
constexpr int kTiledThreads = 32 * kTiledWarps;

struct TiledParams {
  float* out;
  const float* q;
  const void* k;
  const void* v;
  int64_t T, n_heads, group, hd, pos0, window;
  float qscale;  // scale * log2(e)
  float cap2;    // softcap * log2(e) (0: none)
  bool causal;
};

// Element i of a cache (KIND 0 f32, 1 f16, 2 bf16), widened to f32.
template <int KIND>
__device__ __forceinline__ float tiled_load(const void* base, int64_t i) {
  if constexpr (KIND == 0) return static_cast<const float*>(base)[i];
  const uint16_t b = static_cast<const uint16_t*>(base)[i];
  return KIND == 2 ? bf16_bits_to_f32(b) : f16_bits_to_f32(b);
}

// Keys k0 .. k0 + 31 of one KV head (columns col .. col + hd - 1) into the [32][pitch] tile;
// keys at or past key_hi as zeros.
template <int KIND>
__device__ __forceinline__ void tiled_load_tile(float* tile, const void* cache, int64_t kv_stride, int64_t col,
                                                int64_t hd, int64_t pitch, int64_t k0, int64_t key_hi) {
  for (int64_t idx = threadIdx.x; idx < kTiledBlockN * hd; idx += kTiledThreads) {
    const int64_t j = idx / hd, d = idx % hd, key = k0 + j;
    tile[j * pitch + d] = key < key_hi ? tiled_load<KIND>(cache, key * kv_stride + col + d) : 0.0f;
  }
}

// grid (n_heads, query tiles), kTiledThreads threads; shared memory tiled_smem_bytes(hd).
// NE: dims per lane, ceil(hd / 32) rounded up to 1, 2, 4 or 8.
template <int KIND, int NE>
static __global__ void __launch_bounds__(kTiledThreads) attention_tiled_kernel(TiledParams p) {
  constexpr int R = kTiledRowsPerWarp;
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t hd = p.hd, pitch = hd | 1;
  const int64_t h = blockIdx.x, kv_col = h / p.group * hd;
  const int64_t q_stride = p.n_heads * hd, kv_stride = p.n_heads / p.group * hd;
  const int64_t q0 = (int64_t(gridDim.y) - 1 - blockIdx.y) * kTiledBlockM;  // longest (last) query tiles first
  const int64_t q_last = q0 + kTiledBlockM - 1 < p.T - 1 ? q0 + kTiledBlockM - 1 : p.T - 1;
  const int64_t n_keys = p.pos0 + p.T;

  // the keys any query of this block can see: [key_lo, key_hi)
  const int64_t key_hi = p.causal ? p.pos0 + q_last + 1 : n_keys;
  int64_t key_lo = 0;
  if (p.causal && p.window > 0 && p.pos0 + q0 - p.window + 1 > 0) key_lo = p.pos0 + q0 - p.window + 1;

  float* qs = dynamic_smem<float>();               // [32][hd]
  float* kv = qs + kTiledBlockM * hd;              // [32][pitch]: the K tile, then the V tile
  float* ps = kv + kTiledBlockN * pitch;           // [32][32]: P of each row over the tile's keys
  for (int64_t idx = threadIdx.x; idx < kTiledBlockM * hd; idx += kTiledThreads) {
    const int64_t r = idx / hd, d = idx % hd, row = q0 + r;
    qs[idx] = row < p.T ? p.q[row * q_stride + h * hd + d] * p.qscale : 0.0f;
  }

  const int r0 = warp * R;  // this warp's first row in the block
  float m[R], l[R], acc[R][NE];
  FUSELM_UNROLL
  for (int r = 0; r < R; r++) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
    FUSELM_UNROLL
    for (int e = 0; e < NE; e++) acc[r][e] = 0.0f;
  }

  for (int64_t k0 = key_lo; k0 < key_hi; k0 += kTiledBlockN) {
    __syncthreads();  // the previous tile's V (and, first, the queries) done with
    tiled_load_tile<KIND>(kv, p.k, kv_stride, kv_col, hd, pitch, k0, key_hi);
    __syncthreads();

    // ---- S = Q K^T: lane j, key k0 + j, against the warp's 8 rows ----
    float s[R];
    FUSELM_UNROLL
    for (int r = 0; r < R; r++) s[r] = 0.0f;
    const float* krow = kv + lane * pitch;
    for (int64_t d = 0; d < hd; d++) {
      const float kd = krow[d];
      FUSELM_UNROLL
      for (int r = 0; r < R; r++) s[r] += qs[(r0 + r) * hd + d] * kd;
    }

    // ---- soft-cap, mask, online softmax per row ----
    const int64_t j = k0 + lane;
    FUSELM_UNROLL
    for (int r = 0; r < R; r++) {
      float v = s[r];
      if (p.cap2 > 0.0f) v = p.cap2 * tanhf(v / p.cap2);  // cap tanh(s / cap), the same in base-2 units
      const int64_t i = p.pos0 + q0 + r0 + r;
      const bool visible = j < key_hi && (!p.causal || (j <= i && (p.window <= 0 || i - j < p.window)));
      if (!visible) v = -INFINITY;
      float mx = v;
      FUSELM_UNROLL
      for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float m_new = fmaxf(m[r], mx);
      // a row with nothing visible yet keeps max -inf: subtract 0 so exp2 gives 0, not NaN
      const float base = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(m[r] - base), pv = exp2f(v - base);
      m[r] = m_new;
      l[r] = l[r] * alpha + pv;
      FUSELM_UNROLL
      for (int e = 0; e < NE; e++) acc[r][e] *= alpha;
      ps[(r0 + r) * kTiledBlockN + lane] = pv;
    }
    __syncthreads();  // every warp done with the K tile

    tiled_load_tile<KIND>(kv, p.v, kv_stride, kv_col, hd, pitch, k0, key_hi);
    __syncthreads();

    // ---- O += P V ----
    for (int jj = 0; jj < kTiledBlockN; jj++) {
      const float* vrow = kv + jj * pitch;
      float vd[NE];
      FUSELM_UNROLL
      for (int e = 0; e < NE; e++) vd[e] = lane + 32 * e < hd ? vrow[lane + 32 * e] : 0.0f;
      FUSELM_UNROLL
      for (int r = 0; r < R; r++) {
        const float pw = ps[(r0 + r) * kTiledBlockN + jj];
        FUSELM_UNROLL
        for (int e = 0; e < NE; e++) acc[r][e] += pw * vd[e];
      }
    }
  }

  // ---- normalize and write: each valid row has seen its own key, so its sum is >= 1 ----
  FUSELM_UNROLL
  for (int r = 0; r < R; r++) {
    const int64_t row = q0 + r0 + r;
    float sum = l[r];
    FUSELM_UNROLL
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (row >= p.T) continue;
    const float inv = 1.0f / sum;
    FUSELM_UNROLL
    for (int e = 0; e < NE; e++)
      if (lane + 32 * e < hd) p.out[row * q_stride + h * hd + lane + 32 * e] = acc[r][e] * inv;
  }
}

// queries, the K/V tile (pitch hd | 1 <= hd + 1) and P
static size_t tiled_smem_bytes(int64_t hd) {
  return size_t(kTiledBlockM * hd + kTiledBlockN * (hd + 1) + kTiledBlockM * kTiledBlockN) * sizeof(float);
}

bool attention_tiled_supports(const AttentionArgs& a) {
  if (a.prefix_len > 0) return false;  // a shared prefix (beam search) is split-KV's
  if (a.table.blocks) return false;    // a paged cache too
  if (a.kv_dtype != DType::F32 && a.kv_dtype != DType::F16 && a.kv_dtype != DType::BF16) return false;
  if (a.head_dim < 1 || a.head_dim > 256) return false;
  if (a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads || a.pos0 < 0 || a.window < 0) return false;
  // grid: x = heads (up to 2^31 - 1), y = query tiles (up to 65535)
  return a.n_heads <= 0x7fffffff && (a.T + kTiledBlockM - 1) / kTiledBlockM <= 65535;
}

template <int KIND, int NE>
static void tiled_launch(const TiledParams& p, cudaStream_t stream) {
  auto* kernel = attention_tiled_kernel<KIND, NE>;
  // the most any launch of this instance uses (hd <= 32 NE); raised once per kernel, as in FA2
  static const bool raised = (CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                              int(tiled_smem_bytes(32 * NE)))),
                              true);
  (void)raised;
  const char* const name = KIND == 0 ? "attention_tiled_kernel<f32>" : KIND == 1 ? "attention_tiled_kernel<f16>"
                                                                                 : "attention_tiled_kernel<bf16>";
  const dim3 grid(unsigned(p.n_heads), unsigned((p.T + kTiledBlockM - 1) / kTiledBlockM)), block(kTiledThreads);
  launch_kernel(name, kernel, grid, block, tiled_smem_bytes(p.hd), stream, p);
}

template <int KIND>
static void tiled_dispatch_ne(const TiledParams& p, cudaStream_t stream) {
  if (p.hd <= 32) return tiled_launch<KIND, 1>(p, stream);
  if (p.hd <= 64) return tiled_launch<KIND, 2>(p, stream);
  if (p.hd <= 128) return tiled_launch<KIND, 4>(p, stream);
  tiled_launch<KIND, 8>(p, stream);
}

void attention_tiled_cuda(const AttentionArgs& a, cudaStream_t stream) {
  if (a.T <= 0) return;
  if (!attention_tiled_supports(a))
    throw Error("E_INVALID_ARG", std::string("attention_tiled_cuda: unsupported shape (kv ") + dtype_name(a.kv_dtype) +
                                     ", head_dim " + std::to_string(a.head_dim) + ", heads " +
                                     std::to_string(a.n_heads) + "/" + std::to_string(a.n_kv_heads) + ", prefix " +
                                     std::to_string(a.prefix_len) + ")");
  TiledParams p{};
  p.out = a.out, p.q = a.q, p.k = a.k_cache, p.v = a.v_cache;
  p.T = a.T, p.n_heads = a.n_heads, p.group = a.n_heads / a.n_kv_heads, p.hd = a.head_dim, p.pos0 = a.pos0;
  p.window = a.causal ? a.window : 0;
  p.qscale = a.scale * 1.4426950408889634f;  // log2(e)
  p.cap2 = a.softcap * 1.4426950408889634f;
  p.causal = a.causal;
  switch (a.kv_dtype) {
    case DType::F32: return tiled_dispatch_ne<0>(p, stream);
    case DType::F16: return tiled_dispatch_ne<1>(p, stream);
    default: return tiled_dispatch_ne<2>(p, stream);
  }
}

FUSELM_CUDA_NAMESPACE_END
