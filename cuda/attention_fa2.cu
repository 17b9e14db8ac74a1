// attention_fa2: prefill attention in the FlashAttention-2 manner (AttentionArgs, native/ops/attention.h;
// the semantics of attention_cpu, native/cpu/attention.cc): q, out f32 [T, n_heads * hd], K/V
// caches f16 or bf16 [ctx, n_kv_heads * hd], causal (optionally a sliding window) or not, GQA
// by indexing (query head h reads KV head h / (n_heads / n_kv_heads)), hd 64, 80, 96, 128 or 256,
// scores optionally soft-capped (Gemma-2).
//
// One block of 8 warps per (head, tile of 128 queries); warp w owns query rows 16w .. 16w + 15.
// (128-row tiles: each K/V tile in shared memory serves 128 queries. 32 rows per warp, as in
// FlashAttention-2's 4-warp blocks, would double the per-thread accumulators, which at hd 128
// (~230 registers for 16 rows) would spill.)
//  - Q stays in registers for the whole block: read once from f32 and rounded to the cache's
//    16-bit type, already laid out as mma A fragments (hd / 16 of them).
//  - K and V stream through shared memory in tiles of 64 keys (32 at hd 256, where 32 x 4 output
//    accumulators per thread leave no registers for 64 keys' scores), three stages where the
//    device lets a block have their shared memory (hd 128: 102 KiB, hd 256: 99 KiB; sm_86/89
//    allow 99 KiB, so there hd 128 gets two): while the block computes on one stage, cp.async
//    fills the next ones. Rows are padded by 16 bytes (pitch hd + 8 halves), which puts the 8
//    rows of every ldmatrix in 8 distinct 4-bank groups for each hd here, so the loads are free
//    of bank conflicts. Keys past the last position are zero-filled (cp_async_16_zfill), so
//    their V rows add 0 * 0, never 0 * garbage.
//  - S = Q K^T per warp: 16 x 64 scores in 8 mma accumulators (16 x 32 in 4 at hd 256), the K
//    fragments by ldmatrix (K rows are keys, exactly the col-major B operand). Scores are
//    scaled by scale * log2(e) so the softmax uses exp2; soft-capping (cap tanh(s / cap)) is
//    the same in those units.
//  - Online softmax in registers: each thread holds 2 rows (g and g + 8 of its warp's 16); the
//    row max is reduced over the 4 threads of a quad by shuffles, the running output and sum
//    are rescaled when the max grows. P is rounded to 16 bits to feed the P V mma, and the sum
//    is taken of the rounded values, so the weights actually applied sum to exactly 1.
//  - O += P V: the P accumulators already have the A fragment layout (two n-tiles of 8 keys
//    make one k-slice of 16); V fragments by ldmatrix .trans from the row-major V tile.
//  - Only the key tiles some query of the block can see are loaded (causal: up to the last
//    query's position; window: from the first query's window start); the mask is evaluated
//    only on tiles that cross a boundary (the diagonal, the window edge, the end of the keys),
//    and a warp with no visible key in a tile skips its math (but still joins the barriers).
//  - Causal blocks differ in work (the last queries see the most keys): blockIdx.y runs over
//    query tiles from the last one, so the longest blocks start first; blockIdx.x runs over
//    heads, so the heads sharing a KV head run side by side and share its tiles in L2.
// Accumulation is f32 throughout; only Q, P (and the caches) are 16-bit.
#include <cmath>
#include <cstdint>
#include <string>

#include "convert.cuh"
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int kFa2Warps = 8;
constexpr int kFa2BlockM = 16 * kFa2Warps;  // queries per block
constexpr int kFa2Threads = 32 * kFa2Warps;
constexpr int kFa2MaxStages = 3;            // K/V tiles in flight (cp.async groups), at most

// Keys per tile (see the top): a stage of 32 keys at hd 256 is as big as one of 64 at hd 128.
template <int HD>
constexpr int kFa2BlockN = HD > 128 ? 32 : 64;
// Shared-memory row pitch in 16-bit elements: hd plus 16 bytes of padding.
template <int HD>
constexpr int kFa2Pitch = HD + 8;
// One K or V tile, in 16-bit elements.
template <int HD>
constexpr int kFa2TileElems = kFa2BlockN<HD> * kFa2Pitch<HD>;
// `stages` stages of a K tile and a V tile.
template <int HD>
constexpr size_t fa2_smem_bytes(int stages) {
  return size_t(2 * stages) * kFa2TileElems<HD> * sizeof(uint16_t);
}

// Two floats rounded to the 16-bit type and packed low first (an mma operand register).
template <bool BF16>
__device__ __forceinline__ uint32_t fa2_pack(float lo, float hi) {
  const uint32_t l = BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(lo)) : __half_as_ushort(__float2half_rn(lo));
  const uint32_t h = BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(hi)) : __half_as_ushort(__float2half_rn(hi));
  return l | h << 16;
}

template <bool BF16>
__device__ __forceinline__ void fa2_mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if (BF16)
    mma_m16n8k16_bf16f32(d, a, b, d);
  else
    mma_m16n8k16_f16f32(d, a, b, d);
}

// Issues the cp.async copies of keys k0 .. k0 + 63 of one KV head into a tile (K or V):
// 64 rows of hd / 8 chunks of 16 bytes, hd / 32 chunks per thread (hd 80: 2 or 3). Keys at or
// past n_keys are zero-filled (the source then is the head's row 0, a valid address).
template <int HD>
__device__ __forceinline__ void fa2_load_tile(uint16_t* tile, const uint16_t* head_base, int64_t kv_stride,
                                              int64_t k0, int64_t n_keys) {
  constexpr int kChunksPerRow = HD / 8, kChunks = kFa2BlockN<HD> * kChunksPerRow;
  constexpr int kPerThread = (kChunks + kFa2Threads - 1) / kFa2Threads;
  FUSELM_UNROLL
  for (int i = 0; i < kPerThread; i++) {
    const int c = int(threadIdx.x) + i * kFa2Threads;
    if (kChunks % kFa2Threads != 0 && c >= kChunks) break;
    const int row = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    const int64_t key = k0 + row;
    const bool valid = key < n_keys;
    uint16_t* dst = tile + row * kFa2Pitch<HD> + col;
    smem_bounds_check(dst, 16);
    cp_async_16_zfill(dst, head_base + (valid ? key * kv_stride : 0) + col, valid);
  }
}

template <bool BF16, int HD>
static __global__ void __launch_bounds__(kFa2Threads)
    attention_fa2_kernel(float* out, const float* q, const uint16_t* k_cache, const uint16_t* v_cache, int64_t T,
                         int64_t n_heads, int64_t group, int64_t pos0, float scale_log2, float cap2, int64_t window,
                         bool causal, int stages) {
  constexpr int kSteps = HD / 16;        // 16-wide slices of the head dim
  constexpr int kBN = kFa2BlockN<HD>;    // keys per tile
  constexpr int kKeyTiles8 = kBN / 8;  // 8-key mma n-tiles per key tile
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int64_t h = blockIdx.x, kvh = h / group;
  const int64_t q0 = (int64_t(gridDim.y) - 1 - blockIdx.y) * kFa2BlockM;  // longest (last) query tiles first
  const int64_t q_last = q0 + kFa2BlockM - 1 < T - 1 ? q0 + kFa2BlockM - 1 : T - 1;
  const int64_t q_stride = n_heads * HD, kv_stride = (n_heads / group) * HD;
  const int64_t n_keys = pos0 + T;

  // the keys any query of this block can see: [key_lo, key_hi)
  const int64_t key_hi = causal ? pos0 + q_last + 1 : n_keys;
  int64_t key_lo = 0;
  if (causal && window > 0 && pos0 + q0 - window + 1 > 0) key_lo = pos0 + q0 - window + 1;
  const int64_t tile_first = key_lo / kBN;
  const int n_tiles = int((key_hi + kBN - 1) / kBN - tile_first);

  // this warp's rows (w0 .. w1 valid; rows past T compute harmlessly on zero queries, unwritten)
  const int64_t w0 = q0 + 16 * warp;
  const int64_t w1 = w0 + 15 < T - 1 ? w0 + 15 : T - 1;
  const bool warp_active = w0 < T;

  // Q fragments: slice s, register r holds row g + 8 (r & 1), dims 16 s + 2 t4 + 8 (r >> 1) + {0, 1}
  uint32_t qf[kSteps][4];
  FUSELM_UNROLL
  for (int s = 0; s < kSteps; s++)
    FUSELM_UNROLL
    for (int r = 0; r < 4; r++) {
      const int64_t row = w0 + g + 8 * (r & 1);
      float2 v = make_float2(0.0f, 0.0f);
      if (row < T)
        v = *reinterpret_cast<const float2*>(q + row * q_stride + h * HD + 16 * s + 2 * t4 + 8 * (r >> 1));
      qf[s][r] = fa2_pack<BF16>(v.x, v.y);
    }

  // output accumulators: n-tile d covers dims 8 d .. 8 d + 7; [0], [1] row g, [2], [3] row g + 8
  float o[HD / 8][4];
  FUSELM_UNROLL
  for (int d = 0; d < HD / 8; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};  // running max (log2 units) of rows g, g + 8
  float l[2] = {0.0f, 0.0f};            // this thread's part of the running sums

  uint16_t* smem = dynamic_smem<uint16_t>();
  const uint16_t* k_head = k_cache + kvh * HD;
  const uint16_t* v_head = v_cache + kvh * HD;
  constexpr int kTile = kFa2TileElems<HD>;

  // tiles 0 .. stages - 2 in flight first, one group each (empty past the last tile, so the
  // wait count stays uniform)
  for (int st = 0; st < stages - 1; st++) {
    if (st < n_tiles) {
      fa2_load_tile<HD>(smem + st * 2 * kTile, k_head, kv_stride, (tile_first + st) * kBN, n_keys);
      fa2_load_tile<HD>(smem + st * 2 * kTile + kTile, v_head, kv_stride, (tile_first + st) * kBN, n_keys);
    }
    cp_async_commit();
  }

  for (int it = 0; it < n_tiles; it++) {
    // prefetch tile it + stages - 1 into the stage tile it - 1 used (an empty group past the
    // last tile), then wait for tile it: at most stages - 1 groups still in flight
    const int ahead = it + stages - 1;
    if (ahead < n_tiles) {
      uint16_t* next = smem + (ahead % stages) * 2 * kTile;
      const int64_t k0n = (tile_first + ahead) * kBN;
      fa2_load_tile<HD>(next, k_head, kv_stride, k0n, n_keys);
      fa2_load_tile<HD>(next + kTile, v_head, kv_stride, k0n, n_keys);
    }
    cp_async_commit();
    static_assert(kFa2MaxStages == 3, "one wait per stage count");
    if (stages == 3) cp_async_wait<2>();
    else cp_async_wait<1>();
    __syncthreads();

    const uint16_t* sk = smem + (it % stages) * 2 * kTile;
    const uint16_t* sv = sk + kTile;
    const int64_t k0 = (tile_first + it) * kBN, k_end = k0 + kBN - 1;
    // no key of this tile visible to any row of the warp: skip its math
    const bool skip = !warp_active || (causal && (k0 > pos0 + w1 || (window > 0 && k_end <= pos0 + w0 - window)));
    if (!skip) {
      // ---- S = Q K^T (16 x 64 per warp) ----
      float sc[kKeyTiles8][4];
      FUSELM_UNROLL
      for (int n = 0; n < kKeyTiles8; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
      FUSELM_UNROLL
      for (int s = 0; s < kSteps; s++)
        FUSELM_UNROLL
        for (int np = 0; np < kKeyTiles8 / 2; np++) {
          // matrices: keys +0..7 / dims +0..7, keys +0..7 / dims +8..15, keys +8..15 / dims +0..7, ...
          const uint16_t* p = sk + (16 * np + (lane & 7) + ((lane >> 4) << 3)) * kFa2Pitch<HD> + 16 * s +
                              ((lane >> 3) & 1) * 8;
          smem_bounds_check(p, 16);
          uint32_t b[4];
          ldmatrix_x4(b, p);
          const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
          fa2_mma<BF16>(sc[2 * np], qf[s], b0);
          fa2_mma<BF16>(sc[2 * np + 1], qf[s], b1);
        }

      // ---- scale, mask (only tiles crossing a boundary), row max ----
      const bool need_mask = k_end >= n_keys ||
                             (causal && (k_end > pos0 + w0 || (window > 0 && k0 <= pos0 + w1 - window)));
      float mx[2] = {-INFINITY, -INFINITY};
      FUSELM_UNROLL
      for (int n = 0; n < kKeyTiles8; n++)
        FUSELM_UNROLL
        for (int e = 0; e < 4; e++) {
          float v = sc[n][e] * scale_log2;
          // soft-capping, cap * tanh(s / cap): the same in the scores' base-2 units
          if (cap2 > 0.0f) v = cap2 * tanhf(v / cap2);
          if (need_mask) {
            const int64_t j = k0 + 8 * n + 2 * t4 + (e & 1), i = pos0 + w0 + g + 8 * (e >> 1);
            const bool visible = j < n_keys && (!causal || (j <= i && (window <= 0 || i - j < window)));
            if (!visible) v = -INFINITY;
          }
          sc[n][e] = v;
          mx[e >> 1] = fmaxf(mx[e >> 1], v);
        }

      // ---- online softmax: new max per row over the quad, rescale, P = exp2(S - max) ----
      float alpha[2], base[2];
      FUSELM_UNROLL
      for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        const float m_new = fmaxf(m[r], mx[r]);
        // a row with nothing visible yet keeps max -inf: subtract 0 so exp2 gives 0, not NaN
        base[r] = m_new == -INFINITY ? 0.0f : m_new;
        alpha[r] = exp2f(m[r] - base[r]);
        m[r] = m_new;
        l[r] *= alpha[r];
      }
      FUSELM_UNROLL
      for (int d = 0; d < HD / 8; d++) {
        o[d][0] *= alpha[0];
        o[d][1] *= alpha[0];
        o[d][2] *= alpha[1];
        o[d][3] *= alpha[1];
      }

      // ---- O += P V, 16 keys at a time ----
      FUSELM_UNROLL
      for (int kc = 0; kc < kKeyTiles8 / 2; kc++) {
        uint32_t pf[4];
        FUSELM_UNROLL
        for (int r = 0; r < 4; r++) {
          // A register r: row g + 8 (r & 1), keys 16 kc + 8 (r >> 1) + 2 t4 + {0, 1}
          const float* sp = sc[2 * kc + (r >> 1)] + 2 * (r & 1);
          pf[r] = fa2_pack<BF16>(exp2f(sp[0] - base[r & 1]), exp2f(sp[1] - base[r & 1]));
          const float2 rounded = half2_bits_to_f32<BF16>(pf[r]);
          l[r & 1] += rounded.x + rounded.y;
        }
        FUSELM_UNROLL
        for (int dp = 0; dp < HD / 16; dp++) {
          // matrices: keys +0..7 / dims +0..7, keys +8..15 / dims +0..7, keys +0..7 / dims +8..15, ...
          const uint16_t* p = sv + (16 * kc + (lane & 7) + ((lane >> 3) & 1) * 8) * kFa2Pitch<HD> + 16 * dp +
                              (lane >> 4) * 8;
          smem_bounds_check(p, 16);
          uint32_t b[4];
          ldmatrix_x4_trans(b, p);
          const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
          fa2_mma<BF16>(o[2 * dp], pf, b0);
          fa2_mma<BF16>(o[2 * dp + 1], pf, b1);
        }
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
  cp_async_wait<0>();

  // ---- normalize and write: each valid row has seen its own key, so its sum is >= 1 ----
  FUSELM_UNROLL
  for (int r = 0; r < 2; r++) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  FUSELM_UNROLL
  for (int r = 0; r < 2; r++) {
    const int64_t row = w0 + g + 8 * r;
    if (row >= T) continue;
    const float inv = 1.0f / l[r];
    float* dst = out + row * q_stride + h * HD + 2 * t4;
    FUSELM_UNROLL
    for (int d = 0; d < HD / 8; d++)
      *reinterpret_cast<float2*>(dst + 8 * d) = make_float2(o[d][2 * r] * inv, o[d][2 * r + 1] * inv);
  }
}

static bool fa2_aligned(const void* p, size_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; }

bool attention_fa2_supports(const AttentionArgs& a) {
  if (a.prefix_len > 0) return false;  // a shared prefix (beam search) is split-KV's
  if (a.table.blocks) return false;    // a paged cache too
  if (a.kv_dtype != DType::F16 && a.kv_dtype != DType::BF16) return false;
  if (a.head_dim != 64 && a.head_dim != 80 && a.head_dim != 96 && a.head_dim != 128 && a.head_dim != 256) return false;
  if (a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads || a.pos0 < 0) return false;
  // grid: x = heads (up to 2^31 - 1), y = query tiles (up to 65535)
  if (a.n_heads > 0x7fffffff || (a.T + kFa2BlockM - 1) / kFa2BlockM > 65535) return false;
  // cp.async moves 16-byte chunks of K/V rows (rows are hd * 2 bytes, a multiple of 16 here);
  // q is read and out written as float pairs
  return fa2_aligned(a.k_cache, 16) && fa2_aligned(a.v_cache, 16) && fa2_aligned(a.q, 8) && fa2_aligned(a.out, 8);
}

// The most dynamic shared memory a block may opt into on this device (sm_80: 163 KiB, sm_86
// and sm_89: 99, sm_90: 227; the emulator's limit is sm_90's).
static size_t fa2_max_smem() {
#if defined(__CUDACC__)
  static const size_t bytes = [] {
    int dev = 0, v = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    return size_t(v);
  }();
  return bytes;
#else
  return 227 * 1024;
#endif
}

template <bool BF16, int HD>
static void fa2_launch(const AttentionArgs& a, int stages, cudaStream_t stream, const char* name) {
  auto* kernel = attention_fa2_kernel<BF16, HD>;
  const size_t max = fa2_max_smem();
  if (stages == 0) stages = fa2_smem_bytes<HD>(kFa2MaxStages) <= max ? kFa2MaxStages : 2;
  if (stages < 2 || stages > kFa2MaxStages || fa2_smem_bytes<HD>(stages) > max)
    throw Error("E_INVALID_ARG", std::string(name) + ": " + std::to_string(stages) + " stages do not fit this device's " +
                                     std::to_string(max) + " bytes of shared memory per block");
  const size_t smem = fa2_smem_bytes<HD>(stages);
  const size_t most = fa2_smem_bytes<HD>(kFa2MaxStages) < max ? fa2_smem_bytes<HD>(kFa2MaxStages) : max;
  if (most > 48 * 1024) {
    // once per kernel, not per launch: the attribute stays with the function (a failed call
    // leaves the static unset, so the next launch tries again); the most any launch here uses
    static const bool raised =
        (CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(most))), true);
    (void)raised;
  }
  const float log2e = 1.4426950408889634f;
  const dim3 grid(unsigned(a.n_heads), unsigned((a.T + kFa2BlockM - 1) / kFa2BlockM)), block(kFa2Threads);
  launch_kernel(name, kernel, grid, block, smem, stream, a.out, a.q, static_cast<const uint16_t*>(a.k_cache),
                static_cast<const uint16_t*>(a.v_cache), a.T, a.n_heads, a.n_heads / a.n_kv_heads, a.pos0,
                a.scale * log2e, a.softcap * log2e, a.causal ? a.window : int64_t(0), a.causal, stages);
}

template <bool BF16>
static void fa2_dispatch_hd(const AttentionArgs& a, int stages, cudaStream_t stream) {
  switch (a.head_dim) {
    case 64: return fa2_launch<BF16, 64>(a, stages, stream, BF16 ? "attention_fa2_bf16_kernel<64>" : "attention_fa2_f16_kernel<64>");
    case 80: return fa2_launch<BF16, 80>(a, stages, stream, BF16 ? "attention_fa2_bf16_kernel<80>" : "attention_fa2_f16_kernel<80>");
    case 96: return fa2_launch<BF16, 96>(a, stages, stream, BF16 ? "attention_fa2_bf16_kernel<96>" : "attention_fa2_f16_kernel<96>");
    case 128: return fa2_launch<BF16, 128>(a, stages, stream, BF16 ? "attention_fa2_bf16_kernel<128>" : "attention_fa2_f16_kernel<128>");
    default: return fa2_launch<BF16, 256>(a, stages, stream, BF16 ? "attention_fa2_bf16_kernel<256>" : "attention_fa2_f16_kernel<256>");
  }
}

void attention_fa2_cuda(const AttentionArgs& a, cudaStream_t stream, int stages) {
  if (a.T <= 0) return;
  if (!attention_fa2_supports(a))
    throw Error("E_INVALID_ARG", std::string("attention_fa2_cuda: unsupported shape or layout (kv ") +
                                     dtype_name(a.kv_dtype) + ", head_dim " + std::to_string(a.head_dim) +
                                     ", heads " + std::to_string(a.n_heads) + "/" + std::to_string(a.n_kv_heads) + ")");
  if (a.kv_dtype == DType::BF16)
    fa2_dispatch_hd<true>(a, stages, stream);
  else
    fa2_dispatch_hd<false>(a, stages, stream);
}

FUSELM_CUDA_NAMESPACE_END
