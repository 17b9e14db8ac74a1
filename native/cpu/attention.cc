// attention: causal multi-head attention over the KV cache, with GQA.
// The reference computes each query's scores in double and normalizes with a plain softmax.
// The fast path streams keys once with an online softmax and never stores a score matrix:
//  - keys come in tiles of kTile: a tile of scores (SIMD dot products, sixteen keys reduced
//    at once), one max and one rescale per tile, a vectorized exp, then the V accumulation;
//  - each K and V tile is used by all g = n_heads / n_kv_heads query heads of its KV head (and,
//    in prefill, by the kTokBlock query tokens of a task) while it is in L1, instead of the
//    cache being streamed once per query head;
//  - prefill: one task per (block of query tokens, KV head), the latest tokens first;
//  - decode (T = 1): a task covers all KV heads over a range of keys, so memory is read in
//    whole cache rows; with more than one thread the key range is split into chunks (also in
//    prefill when there are too few tasks), each chunk leaves its partial (max, sum, acc),
//    and the partials merge by log-sum-exp.
// A shared prefix (AttentionArgs.k_prefix, beam search) is more keys in front: each tile's
// keys are taken in at most two runs, the prefix's rows and then the own cache's.
// A paged cache (a block table) is read the same way, its f32 rows gathered like half ones.
// f16/bf16 caches (and prefixes): each task widens a tile's rows of one KV head to f32 once
// (simd.h's widen_row: F16C, a shift for bf16) into a small per-thread buffer, where the
// same f32 tile kernels use them for every query head and token of the task; the reference
// widens each value as it reads it. Queries, scores and sums stay f32 (double in the reference).
// Decode over a half cache (bench/kv_cache.bench.ts) takes 5-10 % less time than over f32 at 1
// thread: with GQA it is bound by the dot products, not the cache reads; the gain is memory.
// Speed (bench/attention.bench.ts, Zen 4 VM whose measured peak is ~1.5 G zmm FMA/s per core):
// 1 thread runs decode from cache and prefill at 35-45 GFLOP/s (4 * hd flops per query head
// and key), 75-90 % of that peak, 8-12x the scalar online softmax this replaced; with the KV
// cache in DRAM, decode with 2 threads reads it at ~75 % of the measured copy bandwidth.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "cpu/dequant.h"
#include "cpu/simd.h"
#include "cpu/vec_math.h"

namespace fuselm {

// Value idx of a cache of dtype dt, as f32.
static float cache_value(const void* cache, DType dt, int64_t idx) {
  switch (dt) {
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(cache)[idx]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(cache)[idx]);
    default: return static_cast<const float*>(cache)[idx];
  }
}

static void attention_reference(const AttentionArgs& a) {
  const int64_t hd = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const int64_t q_stride = a.n_heads * hd, kv_stride = a.n_kv_heads * hd;
  const int64_t P = a.prefix_len;
  // value i of key j's row: the prefix's rows below P, the own cache's from P on
  auto at = [&](const void* prefix, const void* cache, int64_t j, int64_t i) -> double {
    return j < P ? cache_value(prefix, a.kv_dtype, j * kv_stride + i) : cache_value(cache, a.kv_dtype, a.table.row(j - P) * kv_stride + i);
  };
  std::vector<double> scores;
  for (int64_t t = 0; t < a.T; t++) {
    // the visible keys lo .. hi - 1 of the token at position i = P + pos0 + t
    const int64_t i_pos = P + a.pos0 + t;
    const int64_t hi = a.causal ? i_pos + 1 : P + a.pos0 + a.T;
    const int64_t lo = a.causal && a.window > 0 ? std::max<int64_t>(0, i_pos - a.window + 1) : 0;
    scores.assign(size_t(hi), 0.0);
    for (int64_t h = 0; h < a.n_heads; h++) {
      const float* q = a.q + t * q_stride + h * hd;
      const int64_t kvh = h / group;
      double mx = -INFINITY;
      for (int64_t j = lo; j < hi; j++) {
        double s = 0;
        for (int64_t i = 0; i < hd; i++) s += double(q[i]) * at(a.k_prefix, a.k_cache, j, kvh * hd + i);
        scores[j] = s * a.scale;
        if (a.softcap > 0) scores[j] = a.softcap * std::tanh(scores[j] / a.softcap);
        if (scores[j] > mx) mx = scores[j];
      }
      double sum = 0;
      for (int64_t j = lo; j < hi; j++) sum += scores[j] = std::exp(scores[j] - mx);
      float* o = a.out + t * q_stride + h * hd;
      for (int64_t i = 0; i < hd; i++) {
        double acc = 0;
        for (int64_t j = lo; j < hi; j++) acc += scores[j] * at(a.v_prefix, a.v_cache, j, kvh * hd + i);
        o[i] = float(acc / sum);
      }
    }
  }
}

namespace {

constexpr int kTile = 32;            // keys per tile (one max and rescale per tile)
constexpr int kTokBlock = 4;         // query tokens per task in prefill (they share K/V tiles)
constexpr int64_t kMinChunk = 256;   // fewest keys worth a chunk of their own in a split

// One row (query token, head) consumes one tile of n <= kTile keys: updates the running max
// *m, the running sum *l and the unnormalized output acc[hd]. q is already multiplied by the
// softmax scale. k and v point at the tile's first key of this KV head; rows are `stride` apart.
// cap > 0: each score s becomes cap * tanh(s / cap) before the softmax (Gemma-2's soft-capping).
using TileFn = void (*)(const float* q, const float* k, const float* v, int64_t stride, int n, int hd, float* acc,
                        float* m, float* l, float cap);

// Soft-caps n scores in place (scalar tanh: only models with capping pay for it).
inline void soft_cap(float* s, int n, float cap) {
  for (int j = 0; j < n; j++) s[j] = cap * std::tanh(s[j] / cap);
}

// ---- portable: plain C++ the compiler can vectorize at baseline x86-64 ----

void tile_portable(const float* q, const float* k, const float* v, int64_t stride, int n, int hd, float* acc,
                   float* m, float* l, float cap) {
  float s[kTile];
  float mt = -INFINITY;
  for (int j = 0; j < n; j++) {
    const float* kp = k + j * stride;
    float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= hd; i += 8)
      for (int u = 0; u < 8; u++) part[u] += q[i + u] * kp[i + u];
    float d = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
    for (; i < hd; i++) d += q[i] * kp[i];
    s[j] = d;
  }
  if (cap > 0) soft_cap(s, n, cap);
  for (int j = 0; j < n; j++) mt = std::max(mt, s[j]);
  const float m_new = std::max(*m, mt);
  const float c = m_new == *m ? 1.0f : std::exp(*m - m_new);
  float sum = 0;
  for (int j = 0; j < n; j++) sum += s[j] = std::exp(s[j] - m_new);
  *l = *l * c + sum;
  *m = m_new;
  if (c != 1.0f)
    for (int i = 0; i < hd; i++) acc[i] *= c;
  for (int j = 0; j < n; j++) {
    const float* vp = v + j * stride;
    const float p = s[j];
    for (int i = 0; i < hd; i++) acc[i] += p * vp[i];
  }
}

#if defined(__x86_64__)

// ---- AVX-512: NC > 0 means hd == 16 * NC (q and acc live in registers); NC == 0 handles any
// hd with a masked last chunk ----

template <int NC>
FUSELM_AVX512 void tile_avx512(const float* q, const float* k, const float* v, int64_t stride, int n, int hd,
                                      float* acc, float* m, float* l, float cap) {
  const int nc = NC ? NC : (hd + 15) / 16;
  const __mmask16 tail = (NC || hd % 16 == 0) ? __mmask16(0xFFFF) : __mmask16((1u << (hd % 16)) - 1);
  alignas(64) float s[kTile];
  __m512 qv[NC ? NC : 1];
  if (NC)
    for (int c = 0; c < NC; c++) qv[c] = _mm512_loadu_ps(q + 16 * c);

  // scores, sixteen keys at a time; past the end of the tile the last key repeats (ignored)
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int j0 = 0; j0 < n; j0 += 16) {
    __m512 d[16];
    for (int jj = 0; jj < 16; jj++) {
      const float* kp = k + std::min(j0 + jj, n - 1) * stride;
      if (NC) {
        d[jj] = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kp));
        for (int c = 1; c < NC; c++) d[jj] = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kp + 16 * c), d[jj]);
      } else {
        d[jj] = _mm512_setzero_ps();
        for (int c = 0; c < nc; c++) {
          const __mmask16 mk = c == nc - 1 ? tail : __mmask16(0xFFFF);
          d[jj] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, q + 16 * c), _mm512_maskz_loadu_ps(mk, kp + 16 * c), d[jj]);
        }
      }
    }
    __m512 sv = vec::transpose_sum16(d);
    _mm512_store_ps(s + j0, sv);
    if (cap > 0) {
      soft_cap(s + j0, 16, cap);
      sv = _mm512_load_ps(s + j0);
    }
    mx = _mm512_max_ps(mx, sv);  // repeated keys do not change the max
  }

  // one rescale per tile, then p = exp(s - m) in place
  const float m_new = std::max(*m, vec::hmax512(mx));
  const float cf = m_new == *m ? 1.0f : std::exp(*m - m_new);  // exp(-inf) = 0 on the first tile
  const __m512 mv = _mm512_set1_ps(m_new);
  __m512 sum = _mm512_setzero_ps();
  for (int j0 = 0; j0 < n; j0 += 16) {
    const __mmask16 valid = n - j0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j0)) - 1);
    const __m512 p = _mm512_maskz_mov_ps(valid, vec::exp512(_mm512_sub_ps(_mm512_load_ps(s + j0), mv)));
    _mm512_store_ps(s + j0, p);
    sum = _mm512_add_ps(sum, p);
  }
  *l = *l * cf + vec::hsum512(sum);
  *m = m_new;

  // acc = acc * cf + sum_j p_j v_j
  const __m512 cv = _mm512_set1_ps(cf);
  if (NC) {
    __m512 o[NC ? NC : 1];
    for (int c = 0; c < NC; c++) o[c] = _mm512_mul_ps(_mm512_loadu_ps(acc + 16 * c), cv);
    for (int j = 0; j < n; j++) {
      const __m512 p = _mm512_set1_ps(s[j]);
      const float* vp = v + j * stride;
      for (int c = 0; c < NC; c++) o[c] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vp + 16 * c), o[c]);
    }
    for (int c = 0; c < NC; c++) _mm512_storeu_ps(acc + 16 * c, o[c]);
  } else {
    for (int c = 0; c < nc; c++) {
      const __mmask16 mk = c == nc - 1 ? tail : __mmask16(0xFFFF);
      __m512 o = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, acc + 16 * c), cv);
      for (int j = 0; j < n; j++)
        o = _mm512_fmadd_ps(_mm512_set1_ps(s[j]), _mm512_maskz_loadu_ps(mk, v + j * stride + 16 * c), o);
      _mm512_mask_storeu_ps(acc + 16 * c, mk, o);
    }
  }
}

// ---- AVX2: the same with eight lanes; NC > 0 means hd == 8 * NC ----

template <int NC>
FUSELM_AVX2 void tile_avx2(const float* q, const float* k, const float* v, int64_t stride, int n, int hd,
                                  float* acc, float* m, float* l, float cap) {
  const int nc = NC ? NC : (hd + 7) / 8;
  const __m256i full = _mm256_set1_epi32(-1);
  const __m256i tail = (NC || hd % 8 == 0) ? full : vec::first_lanes256(hd % 8);
  alignas(32) float s[kTile];

  __m256 mx = _mm256_set1_ps(-INFINITY);
  for (int j0 = 0; j0 < n; j0 += 8) {
    __m256 d[8];
    for (int jj = 0; jj < 8; jj++) {
      const float* kp = k + std::min(j0 + jj, n - 1) * stride;
      if (NC) {
        d[jj] = _mm256_mul_ps(_mm256_loadu_ps(q), _mm256_loadu_ps(kp));
        for (int c = 1; c < NC; c++) d[jj] = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * c), _mm256_loadu_ps(kp + 8 * c), d[jj]);
      } else {
        d[jj] = _mm256_setzero_ps();
        for (int c = 0; c < nc; c++) {
          const __m256i mk = c == nc - 1 ? tail : full;
          d[jj] = _mm256_fmadd_ps(_mm256_maskload_ps(q + 8 * c, mk), _mm256_maskload_ps(kp + 8 * c, mk), d[jj]);
        }
      }
    }
    __m256 sv = vec::transpose_sum8(d);
    _mm256_store_ps(s + j0, sv);
    if (cap > 0) {
      soft_cap(s + j0, 8, cap);
      sv = _mm256_load_ps(s + j0);
    }
    mx = _mm256_max_ps(mx, sv);
  }

  const float m_new = std::max(*m, vec::hmax256(mx));
  const float cf = m_new == *m ? 1.0f : std::exp(*m - m_new);
  const __m256 mv = _mm256_set1_ps(m_new);
  __m256 sum = _mm256_setzero_ps();
  for (int j0 = 0; j0 < n; j0 += 8) {
    __m256 p = vec::exp256(_mm256_sub_ps(_mm256_load_ps(s + j0), mv));
    if (n - j0 < 8) p = _mm256_and_ps(p, _mm256_castsi256_ps(vec::first_lanes256(n - j0)));
    _mm256_store_ps(s + j0, p);
    sum = _mm256_add_ps(sum, p);
  }
  *l = *l * cf + vec::hsum256(sum);
  *m = m_new;

  const __m256 cv = _mm256_set1_ps(cf);
  if (NC) {
    __m256 o[NC ? NC : 1];
    for (int c = 0; c < NC; c++) o[c] = _mm256_mul_ps(_mm256_loadu_ps(acc + 8 * c), cv);
    for (int j = 0; j < n; j++) {
      const __m256 p = _mm256_set1_ps(s[j]);
      const float* vp = v + j * stride;
      for (int c = 0; c < NC; c++) o[c] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vp + 8 * c), o[c]);
    }
    for (int c = 0; c < NC; c++) _mm256_storeu_ps(acc + 8 * c, o[c]);
  } else {
    for (int c = 0; c < nc; c++) {
      const __m256i mk = c == nc - 1 ? tail : full;
      __m256 o = _mm256_mul_ps(_mm256_maskload_ps(acc + 8 * c, mk), cv);
      for (int j = 0; j < n; j++)
        o = _mm256_fmadd_ps(_mm256_set1_ps(s[j]), _mm256_maskload_ps(v + j * stride + 8 * c, mk), o);
      _mm256_maskstore_ps(acc + 8 * c, mk, o);
    }
  }
}

#endif  // __x86_64__

TileFn pick_tile(Impl impl, int64_t hd) {
#if defined(__x86_64__)
  if (impl == Impl::kAvx512) {
    switch (hd) {
      case 16: return tile_avx512<1>;
      case 32: return tile_avx512<2>;
      case 64: return tile_avx512<4>;
      case 96: return tile_avx512<6>;
      case 128: return tile_avx512<8>;
      default: return tile_avx512<0>;
    }
  }
  if (impl == Impl::kAvx2) {
    switch (hd) {
      case 8: return tile_avx2<1>;
      case 16: return tile_avx2<2>;
      case 32: return tile_avx2<4>;
      case 64: return tile_avx2<8>;
      default: return tile_avx2<0>;
    }
  }
#endif
  return tile_portable;
}

// ---- half caches: n rows of hd values, `stride` bytes apart, widened into dst [n, hd] ----

using WidenFn = void (*)(const uint8_t* src, size_t stride, int64_t n, int64_t hd, float* dst);

template <DType DT>
void widen_portable(const uint8_t* src, size_t stride, int64_t n, int64_t hd, float* dst) {
  for (int64_t r = 0; r < n; r++) dequant_span(src + r * stride, DT, 0, hd, dst + r * hd);
}

#if defined(__x86_64__)
template <class L>
FUSELM_AVX512 void widen_avx512(const uint8_t* src, size_t stride, int64_t n, int64_t hd, float* dst) {
  for (int64_t r = 0; r < n; r++) simd512::widen_row<L>(src + r * stride, hd, dst + r * hd);
}
template <class L>
FUSELM_AVX2 void widen_avx2(const uint8_t* src, size_t stride, int64_t n, int64_t hd, float* dst) {
  for (int64_t r = 0; r < n; r++) simd256::widen_row<L>(src + r * stride, hd, dst + r * hd);
}
#endif

// A paged f32 cache: a tile's rows gathered as they are, so the tile kernels see one run of keys
// as over a contiguous cache (the same arithmetic: paged and contiguous give the same bits).
void gather_f32(const uint8_t* src, size_t stride, int64_t n, int64_t hd, float* dst) {
  for (int64_t r = 0; r < n; r++) std::memcpy(dst + r * hd, src + r * stride, size_t(hd) * sizeof(float));
}

// null for contiguous f32 caches (read in place)
WidenFn pick_widen(Impl impl, DType dt, bool paged) {
  if (dt == DType::F32) return paged ? gather_f32 : nullptr;
  const bool bf16 = dt == DType::BF16;
#if defined(__x86_64__)
  if (impl == Impl::kAvx512) return bf16 ? widen_avx512<simd512::BF16> : widen_avx512<simd512::F16>;
  if (impl == Impl::kAvx2) return bf16 ? widen_avx2<simd256::BF16> : widen_avx2<simd256::F16>;
#endif
  return bf16 ? widen_portable<DType::BF16> : widen_portable<DType::F16>;
}

}  // namespace

static void attention_fast(const AttentionArgs& a, const Exec& e) {
  const TileFn tile = pick_tile(e.impl, a.head_dim);
  // half caches: rows widened per (tile, KV head) into the task's buffer first
  const WidenFn widen = pick_widen(e.impl, a.kv_dtype, a.table.blocks != nullptr);
  const int64_t hd = a.head_dim, n_kvh = a.n_kv_heads, g = a.n_heads / n_kvh;
  const int64_t q_stride = a.n_heads * hd, kv_stride = n_kvh * hd;
  const int64_t elem = a.kv_dtype == DType::F32 ? 4 : 2;
  const size_t row_bytes = size_t(kv_stride) * size_t(elem);
  const int64_t TB = a.T > 1 ? kTokBlock : 1;
  const int64_t n_tb = (a.T + TB - 1) / TB;
  const int64_t P = a.prefix_len;
  const int64_t max_keys = P + a.pos0 + a.T;
  const int threads = e.pool->size();

  // KV heads per task: all of them in decode, so that a task sweeps whole cache rows in order
  // (DRAM streams rows faster than one head's 256-byte slice of every row); one in prefill.
  const int64_t HB = a.T == 1 ? n_kvh : 1;
  const int64_t n_hb = n_kvh / HB;

  // Split the key range when (token block, KV head) units alone would leave threads idle or
  // unbalanced; each chunk keeps at least kMinChunk keys.
  int64_t n_chunks = 1;
  const int64_t units = n_tb * n_hb;
  if (threads > 1 && units < 4 * threads)
    n_chunks = std::max<int64_t>(1, std::min((4 * threads + units - 1) / units, max_keys / kMinChunk));
  int64_t chunk_len = (max_keys + n_chunks - 1) / n_chunks;
  chunk_len = (chunk_len + kTile - 1) / kTile * kTile;
  n_chunks = (max_keys + chunk_len - 1) / chunk_len;

  // Scratch, reused across calls on this (calling) thread: per pool thread the rows' scaled q,
  // acc, m and l (and for half caches the widened K and V tile of one KV head); with a split,
  // the partials [T, n_heads, n_chunks] x (m, l, acc[hd]).
  const int64_t rows = TB * HB * g;
  const int64_t wide = widen ? 2 * kTile * hd + 16 : 0;  // + room to align it to 64 bytes
  const int64_t ws = (rows * (2 * hd + 2) + wide + 15) / 16 * 16;
  const int64_t part_w = hd + 2;
  const int64_t part_n = n_chunks > 1 ? a.T * a.n_heads * n_chunks * part_w : 0;
  thread_local std::vector<float> scratch;
  if (scratch.size() < size_t(threads * ws + part_n)) scratch.resize(size_t(threads * ws + part_n));
  float* const base = scratch.data();  // not `scratch` inside the task: that names each worker's own
  float* const partials = base + threads * ws;

  e.pool->run(n_tb * n_hb * n_chunks, [&](int64_t task, int thr) {
    const int64_t chunk = task % n_chunks, rest = task / n_chunks;
    const int64_t kh0 = (rest % n_hb) * HB;
    const int64_t tb = n_tb - 1 - rest / n_hb;  // the last tokens see the most keys: start them first
    const int64_t t0 = tb * TB, t1 = std::min(a.T, t0 + TB);
    const int64_t j_begin = chunk * chunk_len, j_end = std::min(max_keys, j_begin + chunk_len);
    const int64_t hr = HB * g;  // rows per token: the query heads of this task's KV heads

    float* w = base + thr * ws;
    float* qs = w;                       // [rows, hd]
    float* acc = w + rows * hd;          // [rows, hd]
    float* ms = w + 2 * rows * hd;       // [rows]
    float* ls = ms + rows;               // [rows]
    // [kTile, hd] each (half caches), 64-byte aligned: the tile kernels' loads never split a line
    float* kw = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(ls + rows) + 63) & ~uintptr_t(63));
    float* vw = kw + kTile * hd;
    for (int64_t t = t0; t < t1; t++)
      for (int64_t hh = 0; hh < hr; hh++) {
        const int64_t r = (t - t0) * hr + hh;
        const float* q = a.q + t * q_stride + (kh0 * g + hh) * hd;
        for (int64_t i = 0; i < hd; i++) qs[r * hd + i] = q[i] * a.scale;
        for (int64_t i = 0; i < hd; i++) acc[r * hd + i] = 0;
        ms[r] = -INFINITY;
        ls[r] = 0;
      }

    // token t sees keys lo(t) .. hi(t) - 1 (causal: 0 .. P + pos0 + t, within the window if any);
    // both grow with t
    auto hi_of = [&](int64_t t) { return a.causal ? P + a.pos0 + t + 1 : max_keys; };
    auto lo_of = [&](int64_t t) { return a.causal && a.window > 0 ? std::max<int64_t>(0, P + a.pos0 + t - a.window + 1) : 0; };
    // key j's row: the prefix's below P, the own cache's from P on (through a block table if paged)
    auto row = [&](const void* prefix, const void* cache, int64_t j) {
      return j < P ? static_cast<const uint8_t*>(prefix) + j * row_bytes : static_cast<const uint8_t*>(cache) + a.table.row(j - P) * row_bytes;
    };
    // the end of the run of keys from j on (before end) in consecutive rows of one tensor
    auto run_of = [&](int64_t j, int64_t end) { return j < P ? std::min(P, end) : P + a.table.run_end(j - P, end - P); };
    // (one of the kh and t loops has a single turn: HB > 1 only in decode)
    for (int64_t j0 = j_begin; j0 < j_end; j0 += kTile) {
      for (int64_t kh = kh0; kh < kh0 + HB; kh++) {
        if (widen) {  // the tile's keys that some token of the task sees, in runs as below
          const int64_t j1 = std::min({j_end, j0 + kTile, hi_of(t1 - 1)});
          for (int64_t j = std::max(j0, lo_of(t0)), run_end; j < j1; j = run_end) {
            run_end = run_of(j, j1);
            widen(row(a.k_prefix, a.k_cache, j) + kh * hd * elem, row_bytes, run_end - j, hd, kw + (j - j0) * hd);
            widen(row(a.v_prefix, a.v_cache, j) + kh * hd * elem, row_bytes, run_end - j, hd, vw + (j - j0) * hd);
          }
        }
        for (int64_t t = t0; t < t1; t++) {
          const int64_t t_end = std::min({hi_of(t), j_end, j0 + kTile});
          // f32: the tile's keys in runs of consecutive rows (the prefix's, then the own cache's,
          // split at block boundaries if paged); half: one run in the widened tile
          for (int64_t js = std::max(j0, lo_of(t)); js < t_end;) {
            const int64_t run_end = widen ? t_end : run_of(js, t_end);
            const int n = int(run_end - js);
            const float* kr = widen ? kw + (js - j0) * hd : reinterpret_cast<const float*>(row(a.k_prefix, a.k_cache, js)) + kh * hd;
            const float* vr = widen ? vw + (js - j0) * hd : reinterpret_cast<const float*>(row(a.v_prefix, a.v_cache, js)) + kh * hd;
            const int64_t stride = widen ? hd : kv_stride;
            for (int64_t hh = 0; hh < g; hh++) {
              const int64_t r = (t - t0) * hr + (kh - kh0) * g + hh;
              tile(qs + r * hd, kr, vr, stride, n, int(hd), acc + r * hd, ms + r, ls + r, a.softcap);
            }
            js = run_end;
          }
        }
      }
    }

    for (int64_t t = t0; t < t1; t++)
      for (int64_t hh = 0; hh < hr; hh++) {
        const int64_t r = (t - t0) * hr + hh, h = kh0 * g + hh;
        if (n_chunks == 1) {
          float* o = a.out + t * q_stride + h * hd;
          const float inv = 1.0f / ls[r];
          for (int64_t i = 0; i < hd; i++) o[i] = acc[r * hd + i] * inv;
        } else {  // a token whose keys end before this chunk leaves (m, l) = (-inf, 0)
          float* p = partials + ((t * a.n_heads + h) * n_chunks + chunk) * part_w;
          p[0] = ms[r];
          p[1] = ls[r];
          for (int64_t i = 0; i < hd; i++) p[2 + i] = acc[r * hd + i];
        }
      }
  }, a.T * a.n_heads * max_keys * hd);  // ~multiply-adds per q·k (and as many for v)

  if (n_chunks == 1) return;
  // Log-sum-exp merge: out = sum_c e^(m_c - M) acc_c / sum_c e^(m_c - M) l_c, M = max_c m_c.
  // The chunk holding the token's own key (or any key, not causal) has a finite m, so M is.
  for (int64_t th = 0; th < a.T * a.n_heads; th++) {
    const float* p = partials + th * n_chunks * part_w;
    float M = -INFINITY;
    for (int64_t c = 0; c < n_chunks; c++) M = std::max(M, p[c * part_w]);
    float* o = a.out + th * hd;
    float L = 0;
    for (int64_t i = 0; i < hd; i++) o[i] = 0;
    for (int64_t c = 0; c < n_chunks; c++) {
      const float* pc = p + c * part_w;
      if (pc[1] == 0) continue;
      const float f = std::exp(pc[0] - M);
      L += f * pc[1];
      for (int64_t i = 0; i < hd; i++) o[i] += f * pc[2 + i];
    }
    const float inv = 1.0f / L;
    for (int64_t i = 0; i < hd; i++) o[i] *= inv;
  }
}

void attention_cpu(const AttentionArgs& a, const Exec& e) {
  if (a.kv_dtype != DType::F32 && a.kv_dtype != DType::F16 && a.kv_dtype != DType::BF16)
    throw Error("E_INVALID_ARG", std::string("attention_cpu: the caches must be f32, f16 or bf16, got ") + dtype_name(a.kv_dtype));
  if (e.impl == Impl::kReference) return attention_reference(a);
  attention_fast(a, e);
}

FUSELM_CPU_OP(attention_op::def, [](const Step& s, const Exec& e) { attention_cpu(attention_op::args(s), e); });

}  // namespace fuselm
