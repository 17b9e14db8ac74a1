// The driver of the quantized matmul kernels (matmul_quant.h): x quantized once per call into
// the weight format's activation blocks, then row tasks over the threads, each walking its
// rows one at a time (one sequential weight stream per thread), or 4 at a time for formats with
// a rows tile, against tokens 4 or 8 at a time, in blocks of 64 tokens whose quantized rows stay in L2.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/matmul_quant.h"
#include "cpu/dequant.h"
#include "cpu/simd.h"

namespace fuselm {

namespace {

// round to nearest, ties to even, as llama.cpp's nearest_int (|v| < 2^22)
inline int32_t nearest_int(float v) {
  const float f = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &f, 4);
  return (i & 0x007fffff) - 0x00400000;
}

size_t act_bytes(QAct act, int64_t K) {
  switch (act) {
    case QAct::Q8_K: return size_t(K / kQK) * sizeof(BlockQ8_K);
    case QAct::Q8_0: return size_t(K / kQ32) * sizeof(BlockQ8_0x);
    case QAct::Q8_1: return size_t(K / kQ32) * sizeof(BlockQ8_1x);
    case QAct::Q8_0Off: return size_t(K / kQ32) * sizeof(BlockQ8_0off);
    case QAct::Q8_0x4: return size_t((K / kQ32 + 3) / 4) * sizeof(BlockQ8_0x4);
  }
  return 0;
}

QuantKernel kernel_of(DType dt, Impl impl, int64_t T, bool gemv_order = false) {
  switch (dt) {
    case DType::Q4_K: case DType::Q5_K: return q4_k_kernel(dt, impl, T, gemv_order);
    case DType::Q6_K: return q6_k_kernel(impl);
    case DType::IQ4_XS: return iq4_xs_kernel(impl);
    case DType::Q2_K: case DType::Q3_K: return q2_k_kernel(dt, impl);
    case DType::Q4_0: return q4_0_kernel(impl, T);
    case DType::Q5_0: case DType::IQ4_NL: case DType::Q4_1: case DType::Q5_1:
      return legacy_q8_0_kernel(dt, impl);
    default: return {QAct::Q8_K, nullptr};
  }
}

constexpr int64_t kMaxRowsPerTask = 64;
constexpr int64_t kTokenBlock = 64;

}  // namespace

void quantize_row_q8_k(const float* x, int64_t K, BlockQ8_K* y) {
  for (int64_t i = 0; i < K / kQK; i++, x += kQK) {
    BlockQ8_K& b = y[i];
    float max = 0, amax = 0;
    for (int j = 0; j < kQK; j++) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0) {
      std::memset(&b, 0, sizeof b);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK; j++) b.qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < 16; j++) {
      int32_t s = 0;
      for (int l = 0; l < 16; l++) s += b.qs[16 * j + l];
      b.bsums[j] = int16_t(s);
    }
    b.d = 1 / iscale;
  }
}

void quantize_row_q8_0x(const float* x, int64_t K, BlockQ8_0x* y, Impl impl) {
  const QuantizeQ8Fn f = quantize_q8_fn(impl);  // every level gives the same q and d
  for (int64_t i = 0; i < K / kQ32; i++) f(x + i * kQ32, kQ32, y[i].qs, &y[i].d);
}

void quantize_row_q8_1x(const float* x, int64_t K, BlockQ8_1x* y, Impl impl) {
  const QuantizeQ8Fn f = quantize_q8_fn(impl);
  for (int64_t i = 0; i < K / kQ32; i++, x += kQ32) {
    f(x, kQ32, y[i].qs, &y[i].d);
    float amax = 0;
    for (int j = 0; j < kQ32; j++) amax = std::max(amax, std::fabs(x[j]));
    int32_t sum = 0;
    for (int j = 0; j < kQ32; j++) sum += y[i].qs[j];
    y[i].s = f16_to_f32(f32_to_f16(amax / 127.f * float(sum)));
  }
}

void quantize_row_q8_0off(const float* x, int64_t K, BlockQ8_0off* y, Impl impl) {
  const QuantizeQ8Fn f = quantize_q8_fn(impl);
  for (int64_t i = 0; i < K / kQ32; i++) {
    f(x + i * kQ32, kQ32, y[i].qs, &y[i].d);
    int32_t sum = 0;
    for (int j = 0; j < kQ32; j++) sum += y[i].qs[j];
    y[i].off = -8 * sum;
  }
}

void quantize_row_q8_0x4(const float* x, int64_t K, BlockQ8_0x4* y, Impl impl) {
  const QuantizeQ8Fn f = quantize_q8_fn(impl);
  const int64_t nb = K / kQ32;
  std::memset(y, 0, size_t((nb + 3) / 4) * sizeof(BlockQ8_0x4));
  for (int64_t i = 0; i < nb; i++) {
    BlockQ8_0x4& g = y[i / 4];
    const int b = int(i % 4);
    int8_t q[kQ32];
    float d;
    f(x + i * kQ32, kQ32, q, &d);
    std::memcpy(g.lo + 16 * b, q, 16);
    std::memcpy(g.hi + 16 * b, q + 16, 16);
    int32_t sum = 0;
    for (int j = 0; j < kQ32; j++) sum += q[j];
    for (int r = 0; r < 4; r++) {
      g.off[4 * b + r] = -8 * sum;
      g.d[4 * b + r] = d;
    }
  }
}

#if defined(__x86_64__)
// quantize_row_q8_k with AVX2, bit for bit: the same f32 max, the first value holding it, the
// same product iscale * x rounded to nearest even (cvtps under the default rounding mode).
FUSELM_AVX2 void quantize_row_q8_k_avx2(const float* x, int64_t K, BlockQ8_K* y) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t i = 0; i < K / kQK; i++, x += kQK) {
    BlockQ8_K& b = y[i];
    __m256 m = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
    for (int j = 0; j < kQK; j += 8) {
      const __m256 v = _mm256_loadu_ps(x + j);
      m = _mm256_max_ps(m, _mm256_and_ps(v, abs_mask));
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    if (amax == 0 || _mm256_movemask_ps(nan)) {  // all zero, or a NaN: the scalar rules, as they are
      quantize_row_q8_k(x, kQK, &b);
      continue;
    }
    int first = 0;
    const __m256 am = _mm256_set1_ps(amax);
    for (int j = 0; j < kQK; j += 8) {
      const int bits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask), am, _CMP_EQ_OQ));
      if (bits) {
        first = j + __builtin_ctz(unsigned(bits));
        break;
      }
    }
    const float iscale = -127.f / x[first];
    const __m256 is = _mm256_set1_ps(iscale);
    const __m256i top = _mm256_set1_epi32(127);
    for (int j = 0; j < kQK; j += 32) {
      __m256i q[4];
      for (int v = 0; v < 4; v++)
        q[v] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * v), is)), top);
      const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.qs + j), _mm256_permutevar8x32_epi32(p, order));
    }
    for (int j = 0; j < 16; j++) {
      int32_t s = 0;
      for (int l = 0; l < 16; l++) s += b.qs[16 * j + l];
      b.bsums[j] = int16_t(s);
    }
    b.d = 1 / iscale;
  }
}
#endif

bool has_quant_kernel(DType dt) { return kernel_of(dt, Impl::kReference, 1).tile != nullptr; }

void matmul_quant_cpu(const MatmulArgs& a, const Exec& e) {
  const QuantKernel k = kernel_of(a.w_dtype, e.impl, a.T, a.gemv_order);
  if (!k.tile) throw Error("E_INVALID_ARG", std::string("matmul: no kernel for weight dtype ") + dtype_name(a.w_dtype));
  const size_t xs = act_bytes(k.act, a.K);
  // Scratch for the quantized x, per calling thread and grown to the largest call (a steady
  // decode or prefill loop never allocates); 64-byte aligned rows are not needed: loads are unaligned.
  static thread_local std::vector<uint8_t> scratch;
  if (scratch.size() < size_t(a.T) * xs) scratch.resize(size_t(a.T) * xs);
  uint8_t* xq = scratch.data();  // (workers must not name the thread_local: they would get their own)
  const bool ref = e.impl == Impl::kReference;
  void (*q8k)(const float*, int64_t, BlockQ8_K*) = &quantize_row_q8_k;
#if defined(__x86_64__)
  if (e.impl == Impl::kAvx2 || e.impl == Impl::kAvx512) q8k = &quantize_row_q8_k_avx2;
#endif
  auto quantize = [&](int64_t t, int) {
    if (k.act == QAct::Q8_K) q8k(a.x + t * a.K, a.K, reinterpret_cast<BlockQ8_K*>(xq + size_t(t) * xs));
    else if (k.act == QAct::Q8_0) quantize_row_q8_0x(a.x + t * a.K, a.K, reinterpret_cast<BlockQ8_0x*>(xq + size_t(t) * xs), e.impl);
    else if (k.act == QAct::Q8_1) quantize_row_q8_1x(a.x + t * a.K, a.K, reinterpret_cast<BlockQ8_1x*>(xq + size_t(t) * xs), e.impl);
    else if (k.act == QAct::Q8_0Off) quantize_row_q8_0off(a.x + t * a.K, a.K, reinterpret_cast<BlockQ8_0off*>(xq + size_t(t) * xs), e.impl);
    else quantize_row_q8_0x4(a.x + t * a.K, a.K, reinterpret_cast<BlockQ8_0x4*>(xq + size_t(t) * xs), e.impl);
  };
  if (ref) {
    for (int64_t t = 0; t < a.T; t++) quantize(t, 0);
  } else {
    e.pool->run(a.T, quantize, a.T * a.K);
  }

  const size_t rb = row_bytes(a.w_dtype, a.K);
  const uint8_t* w = static_cast<const uint8_t*>(a.w);
  // Rows tiles take rows_n rows q apart (q = the task's rows / rows_n): rows_n long
  // sequential weight streams, as matmul.cc's tiles (neighbour rows read slower); rows left over
  // go one at a time. Tokens from t_tail on take k.tail where the kernel has one.
  const int64_t t_tail = k.tail ? a.T - a.T % 4 : a.T;
  auto run = [&](const QuantKernel& kk, int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
    const int64_t q = kk.rows ? (n1 - n0) / kk.rows_n : 0;
    for (int64_t tb = t0; tb < t1; tb += kTokenBlock) {
      const int64_t te = std::min(t1, tb + kTokenBlock);
      for (int64_t i = 0; i < q; i++)
        for (int64_t t = tb; t < te; t += kk.max_tokens)
          kk.rows(w + size_t(n0 + i) * rb, size_t(q) * rb, xq + size_t(t) * xs, xs, a.K,
                  int(std::min<int64_t>(kk.max_tokens, te - t)), a.y + t * a.N + n0 + i, q, a.N);
      for (int64_t n = n0 + q * kk.rows_n; n < n1; n++)
        for (int64_t t = tb; t < te; t += kk.max_tokens)
          kk.tile(w + size_t(n) * rb, xq + size_t(t) * xs, xs, a.K, int(std::min<int64_t>(kk.max_tokens, te - t)),
                  a.y + t * a.N + n, a.N);
    }
  };
  auto rows = [&](int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
    if (t0 < t_tail) run(k, n0, n1, t0, std::min(t1, t_tail));
    if (t1 > t_tail) run(*k.tail, n0, n1, std::max(t0, t_tail), t1);
  };
  if (ref) return rows(0, a.N, 0, a.T);

  const int64_t threads = e.pool->size();
  int64_t rows_per_task = kMaxRowsPerTask;
  while (rows_per_task > 16 && (a.N + rows_per_task - 1) / rows_per_task < 4 * threads) rows_per_task /= 2;
  const int64_t row_tasks = (a.N + rows_per_task - 1) / rows_per_task;
  int64_t tok_per_task = a.T;  // few row tasks and several tokens: split the tokens too
  if (threads > 1 && a.T > 1 && row_tasks < 4 * threads) {
    const int64_t want = (4 * threads + row_tasks - 1) / row_tasks;
    const int64_t tt = k.max_tokens;
    tok_per_task = std::max<int64_t>(tt, ((a.T + want - 1) / want + tt - 1) / tt * tt);
  }
  const int64_t tok_tasks = (a.T + tok_per_task - 1) / tok_per_task;
  e.pool->run(row_tasks * tok_tasks, [&](int64_t task, int) {
    const int64_t rt = task % row_tasks, tt = task / row_tasks;
    const int64_t n0 = rt * rows_per_task, t0 = tt * tok_per_task;
    rows(n0, std::min(a.N, n0 + rows_per_task), t0, std::min(a.T, t0 + tok_per_task));
  }, a.T * a.N * a.K);
}

}  // namespace fuselm
