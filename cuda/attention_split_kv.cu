// attention_split_kv: attention over the KV cache for any shape (AttentionArgs, native/ops/attention.h;
// the semantics and the plain reference are attention_cpu's, native/cpu/attention.cc): q, out
// f32 [T, n_heads * hd], caches f32, f16 or bf16 [ctx, n_kv_heads * hd], causal with an optional
// sliding window or not causal, GQA, hd 1..256, and a shared prefix (beam search: key j below
// prefix_len from the prefix caches, the rest from the own caches). Built for decode (T = 1,
// long contexts), where one (token, head) row alone must keep the GPU busy, and the fallback for
// every shape the FA2 kernel does not take.
//
// Split: each row's visible keys [lo, hi) are cut into n_chunks chunks of chunk_len keys (at
// least kSplitMinChunk each, at most kSplitMaxChunks, enough that the launch has about
// kSplitTargetRows (row, chunk) pairs). A block takes one token, one chunk, and G query heads of
// one KV head (G the largest of 8, 4, 2, 1 dividing the group size), so each K/V row it loads
// serves G heads. If there is one chunk the block writes out; otherwise it writes its partial
// (m, l, acc[hd]) -- the chunk's max score, the sum of exp(score - m) and the unnormalized
// output -- to the workspace, and the last of the row's chunk blocks to finish merges them by
// log-sum-exp: out = sum_c 2^(m_c - M) acc_c / sum_c 2^(m_c - M) l_c, M = max_c m_c. The last
// is found by an atomic counter per (token, head group), in a buffer of attention's own
// (AttentionArgs::counters: zero before the launch; the merging block sets its counter back to
// zero, so the buffer is zero again after every launch) -- one launch instead of a second
// merge kernel. The workspace cannot hold the counters: matmuls overwrite it between launches.
//
// Inside a block: lpk lanes (a power of two) share a key, each holding VPL 16-byte vectors of
// the head dimension (EPV = 4 floats or 8 halves each; lane i of the group takes vectors i,
// i + lpk, ...), so a warp works on 32 / lpk keys at once and each lane group on U keys per
// step, their K and V loads issued together, one step ahead: the next step's keys are loaded
// into registers before this step's math. A score is the lanes' partial dot products summed
// by xor-shuffles within the group. Scores are kept in base-2 units (q is scaled by
// scale * log2 e) so the softmax uses exp2f. Every lane group runs its own online softmax
// (m, l, acc) over its keys; at the end the groups of a warp merge by shuffles, the warps
// through shared memory. The vector loads need hd % EPV == 0 and 16-byte aligned caches;
// otherwise the same kernel runs with one value per lane (EPV = 1, VPL up to 8) and G = 1.
#include <cmath>
#include <cstdint>
#include <string>

#include "convert.cuh"
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int kSplitWarps = 4;               // warps per block
constexpr int64_t kSplitMinChunk = 64;       // fewest keys worth a block of their own (short contexts still fill the GPU)
constexpr int64_t kSplitMaxChunks = 128;     // most chunks per row (bounds the merge's work)
constexpr int64_t kSplitTargetRows = 4096;   // (row, chunk) pairs to aim for: ~4096 / G blocks

struct SplitKvParams {
  float* out;
  const float* q;
  const void* k;
  const void* v;
  const void* kp;  // the shared prefix's caches: keys 0 .. P - 1 (P = 0: none)
  const void* vp;
  int64_t P;
  const int32_t* blocks;  // paged: this sequence's block table row, key j in row blocks[j / bs] * bs + j % bs
  int64_t bs;
  float* partials;    // [T, n_heads, n_chunks, hd + 2] when n_chunks > 1
  uint32_t* counters;  // [T * n_heads] when n_chunks > 1: arrivals at (t, h0), zero before and after
  int64_t T, n_heads, n_kv_heads, hd, pos0, window;
  int64_t n_chunks, chunk_len;
  float qscale;  // scale * log2(e)
  float cap2;    // softcap * log2(e), the soft-cap in the scores' base-2 units (0: none)
  int lpk;       // lanes per key: a power of two, 1..32
  bool causal;
};

// EPV values of a cache row starting at element i (KIND 0 f32, 1 f16, 2 bf16): one 16-byte
// load when EPV is 4 (f32) or 8 (halves), else one value.
template <int KIND, int EPV>
__device__ __forceinline__ void load_kv(const void* base, int64_t i, float* x) {
  if constexpr (KIND == 0) {
    const float* p = static_cast<const float*>(base) + i;
    if constexpr (EPV == 4) {
      const float4 f = *reinterpret_cast<const float4*>(p);
      x[0] = f.x, x[1] = f.y, x[2] = f.z, x[3] = f.w;
    } else {
      x[0] = p[0];
    }
  } else {
    const uint16_t* p = static_cast<const uint16_t*>(base) + i;
    if constexpr (EPV == 8) {
      const uint4 w = *reinterpret_cast<const uint4*>(p);
      const float2 a = half2_bits_to_f32<KIND == 2>(w.x), b = half2_bits_to_f32<KIND == 2>(w.y);
      const float2 c = half2_bits_to_f32<KIND == 2>(w.z), d = half2_bits_to_f32<KIND == 2>(w.w);
      x[0] = a.x, x[1] = a.y, x[2] = b.x, x[3] = b.y, x[4] = c.x, x[5] = c.y, x[6] = d.x, x[7] = d.y;
    } else {
      x[0] = KIND == 2 ? bf16_bits_to_f32(p[0]) : f16_bits_to_f32(p[0]);
    }
  }
}

// The merge, by the last chunk block of G heads: part, the first head's partials
// [G][n_chunks][hd + 2]; out, its output row [G][hd]. Not inlined and given scalars: inlined,
// its code made the main loop of the G = 8 kernels spill on sm_90.
template <int G>
static __device__ FUSELM_NOINLINE void split_kv_merge(float* out, const float* part, int64_t n_chunks, int64_t hd, float* sm) {
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t pw = hd + 2;
  // one warp per head: weight[c] = 2^(m_c - M) (0 for an empty chunk), then 1 / L; partials
  // read through L2 (__ldcg), where the other blocks' stores are
  float* const weight = sm + 1;  // [G][n_chunks], then inv_l[G]
  float* const inv_l = weight + G * n_chunks;
  for (int h = warp; h < G; h += kSplitWarps) {  // warp-uniform
    const float* ph = part + h * n_chunks * pw;
    float M = -INFINITY;
    for (int64_t c = lane; c < n_chunks; c += 32) M = fmaxf(M, __ldcg(ph + c * pw));
    for (int off = 16; off > 0; off >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
    float L = 0.0f;  // M is finite: a row's first chunk starts at its first visible key
    for (int64_t c = lane; c < n_chunks; c += 32) {
      const float w = exp2f(__ldcg(ph + c * pw) - M);
      weight[h * n_chunks + c] = w;
      L += w * __ldcg(ph + c * pw + 1);
    }
    for (int off = 16; off > 0; off >>= 1) L += __shfl_xor_sync(0xffffffffu, L, off);
    if (lane == 0) inv_l[h] = 1.0f / L;
  }
  __syncthreads();
  for (int64_t idx = threadIdx.x; idx < G * hd; idx += blockDim.x) {
    const int64_t h = idx / hd, d = idx % hd;
    const float* pd = part + h * n_chunks * pw + 2 + d;
    float o = 0.0f;
    for (int64_t c = 0; c < n_chunks; c++) o += weight[h * n_chunks + c] * __ldcg(pd + c * pw);
    out[h * hd + d] = o * inv_l[h];
  }
}

// Shared memory floats: the warps' (m, l, acc) of G heads, or after them the merge's flag, the
// chunks' weights and 1 / L of G heads.
static size_t split_smem_floats(int G, int64_t hd, int64_t n_chunks) {
  const int64_t warps = int64_t(kSplitWarps) * G * (hd + 2), merge = n_chunks > 1 ? 1 + G * (n_chunks + 1) : 0;
  return size_t(warps > merge ? warps : merge);
}

// grid (T * n_chunks, n_heads / G), kSplitWarps warps; shared memory split_smem_floats.
template <int KIND, int EPV, int VPL, int G>
static __global__ void __launch_bounds__(32 * kSplitWarps) attention_split_kv_kernel(SplitKvParams p) {
  constexpr int U = G >= 8 ? 2 : 4;  // keys per lane group per step (fewer with many heads: registers)
  constexpr int NE = VPL * EPV;      // head-dim values per lane
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int lpk = p.lpk, kpw = 32 / lpk;
  const int sub = lane & (lpk - 1), grp = lane / lpk;
  const int64_t t = int64_t(blockIdx.x) / p.n_chunks, chunk = int64_t(blockIdx.x) % p.n_chunks;
  const int64_t h0 = int64_t(blockIdx.y) * G;
  const int64_t hd = p.hd, kv_stride = p.n_kv_heads * hd;
  const int64_t kv_col = h0 / (p.n_heads / p.n_kv_heads) * hd;  // this KV head's first column

  // this lane's vectors of the head dimension: vector u starts at dim (sub + u * lpk) * EPV
  bool has[VPL];
  for (int u = 0; u < VPL; u++) has[u] = (sub + u * lpk) * EPV < hd;
  float qv[G][NE];
  for (int h = 0; h < G; h++) {
    const float* qh = p.q + (t * p.n_heads + h0 + h) * hd;
    for (int u = 0; u < VPL; u++)
      for (int e = 0; e < EPV; e++) qv[h][u * EPV + e] = has[u] ? qh[(sub + u * lpk) * EPV + e] * p.qscale : 0.0f;
  }

  // the token's visible keys [lo, hi), and this chunk's part of them
  const int64_t i_pos = p.P + p.pos0 + t;
  const int64_t hi = p.causal ? i_pos + 1 : p.P + p.pos0 + p.T;
  const int64_t lo = p.causal && p.window > 0 && i_pos - p.window + 1 > 0 ? i_pos - p.window + 1 : 0;
  const int64_t j_begin = lo + chunk * p.chunk_len;
  const int64_t j_end = j_begin + p.chunk_len < hi ? j_begin + p.chunk_len : hi;

  float m[G], l[G], acc[G][NE];
  for (int h = 0; h < G; h++) {
    m[h] = -INFINITY;
    l[h] = 0.0f;
    for (int e = 0; e < NE; e++) acc[h][e] = 0.0f;
  }
  const int64_t step = int64_t(kSplitWarps) * kpw;  // keys the block covers per u
  const int64_t slot = int64_t(warp) * kpw + grp;
  // the K and V values of one step's keys j0 + k * step + slot (k < U); zeros past j_end
  const auto load_step = [&](int64_t j0, float (&kx)[U][NE], float (&vx)[U][NE], bool (&ok)[U]) {
    for (int k = 0; k < U; k++) {
      const int64_t j = j0 + k * step + slot;
      ok[k] = j < j_end;
      const bool pre = j < p.P;  // key j: the prefix's row j, or the cache's row j - P
      const void* kb = pre ? p.kp : p.k;
      const void* vb = pre ? p.vp : p.v;
      const int64_t jc = j - p.P;  // the own cache's key, read through the block table if paged
      const int64_t row = pre ? j : p.blocks && ok[k] ? int64_t(p.blocks[jc / p.bs]) * p.bs + jc % p.bs : jc;
      for (int u = 0; u < VPL; u++) {
        if (ok[k] && has[u]) {
          const int64_t off = row * kv_stride + kv_col + (sub + u * lpk) * EPV;
          load_kv<KIND, EPV>(kb, off, &kx[k][u * EPV]);
          load_kv<KIND, EPV>(vb, off, &vx[k][u * EPV]);
        } else {
          for (int e = 0; e < EPV; e++) kx[k][u * EPV + e] = vx[k][u * EPV + e] = 0.0f;
        }
      }
    }
  };
  float kx[U][NE], vx[U][NE];
  bool ok[U];
  load_step(j_begin, kx, vx, ok);
  for (int64_t j0 = j_begin; j0 < j_end; j0 += step * U) {  // block-uniform trip count: shuffles below are safe
    // the next step's keys are loaded into registers before this step's math, so their loads
    // are in flight during it (past the chunk's end: none, zeros)
    float kn[U][NE], vn[U][NE];
    bool okn[U];
    load_step(j0 + step * U, kn, vn, okn);
    float s[U][G];
    for (int k = 0; k < U; k++)
      for (int h = 0; h < G; h++) {
        float d = 0.0f;
        for (int e = 0; e < NE; e++) d += qv[h][e] * kx[k][e];
        for (int off = lpk >> 1; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
        // soft-capping: cap * tanh(s / cap) in natural units is the same in base-2 units
        if (p.cap2 > 0.0f) d = p.cap2 * tanhf(d / p.cap2);
        s[k][h] = ok[k] ? d : -INFINITY;
      }
    for (int h = 0; h < G; h++) {
      float mx = m[h];
      for (int k = 0; k < U; k++) mx = fmaxf(mx, s[k][h]);
      const float c = mx == m[h] ? 1.0f : exp2f(m[h] - mx);  // also 1 while no key was seen (both -inf)
      float pk[U], ps = 0.0f;
      for (int k = 0; k < U; k++) ps += pk[k] = ok[k] ? exp2f(s[k][h] - mx) : 0.0f;
      l[h] = l[h] * c + ps;
      m[h] = mx;
      for (int e = 0; e < NE; e++) {
        float a = acc[h][e] * c;
        for (int k = 0; k < U; k++) a += pk[k] * vx[k][e];
        acc[h][e] = a;
      }
    }
    for (int k = 0; k < U; k++) {
      ok[k] = okn[k];
      for (int e = 0; e < NE; e++) kx[k][e] = kn[k][e], vx[k][e] = vn[k][e];
    }
  }

  // merge the warp's lane groups: rescale each to the warp's max, then sum across groups
  float* sm = dynamic_smem<float>();  // [kSplitWarps][G][hd + 2]: m, l, acc
  for (int h = 0; h < G; h++) {
    float M = m[h];
    for (int off = lpk; off < 32; off <<= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
    const float f = m[h] == -INFINITY ? 0.0f : exp2f(m[h] - M);
    float L = l[h] * f;
    for (int off = lpk; off < 32; off <<= 1) L += __shfl_xor_sync(0xffffffffu, L, off);
    for (int e = 0; e < NE; e++) {
      float a = acc[h][e] * f;
      for (int off = lpk; off < 32; off <<= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
      acc[h][e] = a;
    }
    float* w = sm + (int64_t(warp) * G + h) * (hd + 2);
    if (lane == 0) w[0] = M, w[1] = L;
    if (grp == 0)
      for (int u = 0; u < VPL; u++)
        if (has[u])
          for (int e = 0; e < EPV; e++) w[2 + (sub + u * lpk) * EPV + e] = acc[h][u * EPV + e];
  }
  __syncthreads();

  // merge the warps; write out (one chunk) or this chunk's partial
  for (int64_t idx = threadIdx.x; idx < G * hd; idx += blockDim.x) {
    const int64_t h = idx / hd, d = idx % hd;
    float M = -INFINITY;
    for (int w = 0; w < kSplitWarps; w++) M = fmaxf(M, sm[(int64_t(w) * G + h) * (hd + 2)]);
    float L = 0.0f, o = 0.0f;
    for (int w = 0; w < kSplitWarps; w++) {
      const float* ws = sm + (int64_t(w) * G + h) * (hd + 2);
      if (ws[0] == -INFINITY) continue;  // a warp that saw no keys
      const float f = exp2f(ws[0] - M);
      L += f * ws[1];
      o += f * ws[2 + d];
    }
    const int64_t row = t * p.n_heads + h0 + h;
    if (p.n_chunks == 1) {
      p.out[row * hd + d] = o / L;
    } else {  // an empty chunk (a token with fewer keys than others) leaves m = -inf, l = 0
      float* part = p.partials + (row * p.n_chunks + chunk) * (hd + 2);
      if (d == 0) part[0] = M, part[1] = L;
      part[2 + d] = o;
    }
  }
  if (p.n_chunks == 1) return;

  // this block's partial is visible to every block before its arrival is counted; the block
  // that brings the count to n_chunks merges the row's partials (all of them written by then)
  __threadfence();
  __syncthreads();  // also: every thread is done reading sm
  uint32_t* const counter = p.counters + t * p.n_heads + h0;
  float* const last = sm;
  if (threadIdx.x == 0) *last = atomicAdd(counter, 1u) == uint32_t(p.n_chunks - 1) ? 1.0f : 0.0f;
  __syncthreads();
  if (*last == 0.0f) return;  // block-uniform
  __threadfence();

  const int64_t row = t * p.n_heads + h0;
  split_kv_merge<G>(p.out + row * hd, p.partials + row * p.n_chunks * (hd + 2), p.n_chunks, hd, sm);
  if (threadIdx.x == 0) *counter = 0;  // every chunk block has arrived: ready for the next launch
}

// Chunks per row for `rows` (token, head) rows whose longest key range is n_keys.
static int64_t split_chunks(int64_t rows, int64_t n_keys) {
  int64_t c = (kSplitTargetRows + rows - 1) / rows;
  if (c > kSplitMaxChunks) c = kSplitMaxChunks;
  if (c > n_keys / kSplitMinChunk) c = n_keys / kSplitMinChunk;
  return c < 1 ? 1 : c;
}

static size_t partials_bytes(int64_t T, int64_t n_heads, int64_t n_chunks, int64_t head_dim) {
  return n_chunks > 1 ? size_t(T * n_heads * n_chunks * (head_dim + 2)) * sizeof(float) : 0;
}

int64_t attention_cuda_counters(int64_t max_T, int64_t ctx, int64_t n_heads) {
  // a call of T rows needs T * n_heads counters when its rows split (chunks > 1)
  int64_t most = 0;
  for (int64_t T = 1; T <= max_T && T <= kSplitTargetRows; T++)
    if (split_chunks(T * n_heads, ctx) > 1) most = T * n_heads;
  return most;
}

size_t attention_cuda_workspace(int64_t max_T, int64_t ctx, int64_t n_heads, int64_t head_dim) {
  // the split grows with the key count and shrinks with the rows; the largest over T <= max_T
  // (past kSplitTargetRows rows there is a single chunk and no partials)
  size_t most = 0;
  for (int64_t T = 1; T <= max_T && T <= kSplitTargetRows; T++) {
    const size_t b = partials_bytes(T, n_heads, split_chunks(T * n_heads, ctx), head_dim);
    if (b > most) most = b;
  }
  return most;
}


template <int KIND, int EPV, int VPL, int G>
static void launch_split(const SplitKvParams& p, cudaStream_t stream) {
  const dim3 grid(unsigned(p.T * p.n_chunks), unsigned(p.n_heads / G)), block(32 * kSplitWarps);
  const size_t smem = split_smem_floats(G, p.hd, p.n_chunks) * sizeof(float);
  const char* const name = KIND == 0   ? "attention_split_kv_kernel<f32>"
                           : KIND == 1 ? "attention_split_kv_kernel<f16>"
                                       : "attention_split_kv_kernel<bf16>";
  launch_kernel(name, attention_split_kv_kernel<KIND, EPV, VPL, G>, grid, block, smem, stream, p);
}

// The 16-byte path: G query heads per block sharing K/V.
template <int KIND, int EPV, int VPL>
static void launch_split_vec(const SplitKvParams& p, int G, cudaStream_t stream) {
  switch (G) {
    case 8: return launch_split<KIND, EPV, VPL, 8>(p, stream);
    case 4: return launch_split<KIND, EPV, VPL, 4>(p, stream);
    case 2: return launch_split<KIND, EPV, VPL, 2>(p, stream);
    default: return launch_split<KIND, EPV, VPL, 1>(p, stream);
  }
}

template <int KIND>
static void launch_split_kind(const SplitKvParams& p, bool vec, int vpl, int G, cudaStream_t stream) {
  constexpr int EPV = KIND == 0 ? 4 : 8;
  if (!vec) return launch_split<KIND, 1, 8, 1>(p, stream);  // one value per lane: hd <= 8 * 32
  if constexpr (KIND == 0)
    if (vpl == 2) return launch_split_vec<KIND, EPV, 2>(p, G, stream);  // f32 rows with hd > 128
  launch_split_vec<KIND, EPV, 1>(p, G, stream);  // hd <= 32 * EPV: every half-precision row
}

void attention_split_kv_cuda(const AttentionArgs& a, cudaStream_t stream) {
  if (a.T <= 0 || a.n_heads <= 0) return;
  if (a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads)
    throw Error("E_INVALID_ARG", "attention_split_kv_cuda: n_heads must be a multiple of n_kv_heads");
  if (a.head_dim < 1 || a.head_dim > 256)
    throw Error("E_INVALID_ARG", "attention_split_kv_cuda: head_dim must be 1..256, got " + std::to_string(a.head_dim));
  if (a.pos0 < 0 || a.window < 0) throw Error("E_INVALID_ARG", "attention_split_kv_cuda: pos0 and window must be >= 0");
  int kind;
  switch (a.kv_dtype) {
    case DType::F32: kind = 0; break;
    case DType::F16: kind = 1; break;
    case DType::BF16: kind = 2; break;
    default:
      throw Error("E_INVALID_ARG", std::string("attention_split_kv_cuda: unsupported cache dtype ") +
                                       dtype_name(a.kv_dtype));
  }
  const int64_t hd = a.head_dim, g = a.n_heads / a.n_kv_heads;
  if (a.prefix_len < 0 || (a.prefix_len > 0 && (!a.k_prefix || !a.v_prefix)))
    throw Error("E_INVALID_ARG", "attention_split_kv_cuda: a prefix needs prefix_len >= 0 and both prefix caches");
  const int64_t all_keys = a.prefix_len + a.pos0 + a.T;
  const int64_t n_keys = a.causal && a.window > 0 && a.window < all_keys ? a.window : all_keys;  // the longest range

  SplitKvParams p{};
  p.out = a.out, p.q = a.q, p.k = a.k_cache, p.v = a.v_cache;
  p.kp = a.k_prefix, p.vp = a.v_prefix, p.P = a.prefix_len;
  p.blocks = a.table.blocks, p.bs = a.table.block_size;
  p.partials = static_cast<float*>(a.workspace);
  p.counters = a.counters;
  p.T = a.T, p.n_heads = a.n_heads, p.n_kv_heads = a.n_kv_heads, p.hd = hd, p.pos0 = a.pos0, p.window = a.window;
  p.causal = a.causal;
  p.qscale = a.scale * 1.4426950408889634f;  // log2(e)
  p.cap2 = a.softcap * 1.4426950408889634f;
  p.n_chunks = split_chunks(a.T * a.n_heads, n_keys);
  p.chunk_len = (n_keys + p.n_chunks - 1) / p.n_chunks;
  p.n_chunks = (n_keys + p.chunk_len - 1) / p.chunk_len;

  const size_t need = partials_bytes(a.T, a.n_heads, p.n_chunks, hd);
  if (need && (!a.workspace || a.workspace_bytes < need))
    throw Error("E_INVALID_ARG", "attention_split_kv_cuda: workspace of " + std::to_string(a.workspace_bytes) +
                                     " bytes, this call needs " + std::to_string(need) +
                                     " (attention_cuda_workspace)");
  if (need && (!a.counters || a.n_counters < a.T * a.n_heads))
    throw Error("E_INVALID_ARG", "attention_split_kv_cuda: " + std::to_string(a.n_counters) +
                                     " zeroed counters, this call needs " + std::to_string(a.T * a.n_heads) +
                                     " (attention_cuda_counters)");
  if (a.T * p.n_chunks > 0x7fffffff || a.T * a.n_heads > 0x7fffffff)
    throw Error("E_INVALID_ARG", "attention_split_kv_cuda: too many tokens for one launch");

  const int epv = kind == 0 ? 4 : 8;
  const bool vec = hd % epv == 0 && aligned16(a.k_cache) && aligned16(a.v_cache) &&
                   (a.prefix_len == 0 || (aligned16(a.k_prefix) && aligned16(a.v_prefix)));
  const int64_t nvec = vec ? hd / epv : hd;  // loads per key row
  int lpk = 1;
  while (lpk < nvec && lpk < 32) lpk <<= 1;
  p.lpk = lpk;
  const int vpl = int((nvec + lpk - 1) / lpk);  // vec: 1, or 2 for f32 with hd > 128; else up to 8
  int G = 1;
  if (vec)
    for (int c : {8, 4, 2})
      if (g % c == 0) {
        G = c;
        break;
      }
  if (a.n_heads / G > 65535) throw Error("E_INVALID_ARG", "attention_split_kv_cuda: too many heads for one launch");

  switch (kind) {
    case 0: launch_split_kind<0>(p, vec, vpl, G, stream); break;
    case 1: launch_split_kind<1>(p, vec, vpl, G, stream); break;
    default: launch_split_kind<2>(p, vec, vpl, G, stream); break;
  }
}

FUSELM_CUDA_NAMESPACE_END
