// gemv_quant: the decode-shaped matmul (a few tokens, T <= 8 per launch) with weights in a GGUF
// block format (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k .. q6_k, iq4_xs), as integer dot
// products:
//
// 1. x f32 [T, K] is quantized into the workspace, int8 per block of 32 with an f32 scale
//    (cuda/quantize_x.cuh: bit for bit the CPU's quantize_row_q8_cpu), 8 tokens at a time
//    (one launch of 2. each), so the workspace needs room for min(T, 8) tokens.
// 2. One warp per weight row (4 rows per thread block). Lane l takes the row's 32-value units
//    l, l + 32, ..., two per step (both units' loads issued before either is used): it decodes
//    each unit once (cuda/quant_unit.cuh's weight_unit: 32 int8 q, a scale and an offset per
//    half; q8_0 from its device planes, cuda/q8_0_planes.cuh, by two 16-byte loads) and then, for every token of the launch, multiplies it with the token's
//    int8 block by 8 __dp4a (exact int32 sums, |sum| <= 16 * 128 * 127 < 2^24, so the f32
//    conversion is exact too):
//      y[t, n] += d_x * (a0 * dot(q[0:16], x_q[0:16]) + a1 * dot(q[16:32], x_q[16:32])
//                         + b0 * sum(x_q[0:16]) + b1 * sum(x_q[16:32]))
//    (the offset terms only for the formats with an additive offset, the sums by __dp4a with
//    0x01010101). Looping over the tokens inside the kernel reads the weights once per call,
//    whatever T: decode is bound by that read. A warp's 32 units are contiguous bytes (32
//    legacy blocks, or 4 k-quant super-blocks), so its loads stay within a few cache lines.
// 3. Per-lane f32 partial sums, added by a butterfly of shuffles.
// Up to three matmuls on the same x (the q, k and v projections; gate and up) run as one launch
// (matmul_gemv_quant_group_cuda): x is quantized once and the grid covers the rows of all of
// them, each block taking rows of one. Fewer launches, and the small ones (k and v under GQA:
// N / 4 blocks each) no longer leave the GPU half empty on their own. Gate and up followed by
// SwiGLU go further (matmul_swiglu_gemv_quant_cuda): each warp computes row n of both, from
// the same x blocks, and writes swiglu(gate, up) itself (swiglu.cuh's function, so the result
// is the unfused one's bit for bit).
//
// Error against f32 x: only the activations' rounding to 8 bits (at most 0.563 of d_x per value:
// half a step plus 127 times d_x's rounding to f16), as the CPU's fast paths and llama.cpp.
#include <cstdint>
#include <string>

#include "ops.h"
#include "quant_unit.cuh"
#include "quantize_x.cuh"
#include "reduce.cuh"
#include "swiglu.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int kQvWarps = 4;   // rows per thread block
constexpr int kQvMaxT = 8;    // tokens per launch
constexpr int kQvMaxParts = 3;  // matmuls per launch (q, k, v)

// Sum of the 4 int8 in a word.
__device__ __forceinline__ int byte_sum(int v) { return __dp4a(v, 0x01010101, 0); }

// The matmuls of one launch: part j's rows are those of thread blocks [end[j - 1], end[j]).
struct GemvQuantParts {
  float* y[kQvMaxParts];
  const uint8_t* w[kQvMaxParts];
  int64_t N[kQvMaxParts];
  int64_t end[kQvMaxParts];
  int count;
};

// Unit u of a weight row (decoded in v) times each token's block u of x, into acc.
template <class F, int NT>
__device__ __forceinline__ void gemv_quant_unit(float (&acc)[NT], const QUnitVals& v, int64_t u, const int8_t* xq,
                                                const float* xd, int T, int64_t K) {
  const int64_t units = K / 32;
  for (int t = 0; t < NT; t++) {
    if (t >= T) break;  // T is uniform: every lane breaks together
    // K % 32 == 0 and the workspace's 256-byte base keep every block 16-byte aligned
    const int4* xp = reinterpret_cast<const int4*>(xq + t * K + 32 * u);
    const int4 x0 = xp[0], x1 = xp[1];
    const uint32_t* q = v.q;
    const int lo = __dp4a(int(q[3]), x0.w, __dp4a(int(q[2]), x0.z, __dp4a(int(q[1]), x0.y, __dp4a(int(q[0]), x0.x, 0))));
    const int hi = __dp4a(int(q[7]), x1.w, __dp4a(int(q[6]), x1.z, __dp4a(int(q[5]), x1.y, __dp4a(int(q[4]), x1.x, 0))));
    float s = v.a[0] * float(lo) + v.a[1] * float(hi);
    if (F::kOffset) {
      const int s0 = byte_sum(x0.x) + byte_sum(x0.y) + byte_sum(x0.z) + byte_sum(x0.w);
      const int s1 = byte_sum(x1.x) + byte_sum(x1.y) + byte_sum(x1.z) + byte_sum(x1.w);
      s += v.b[0] * float(s0) + v.b[1] * float(s1);
    }
    acc[t] += xd[t * units + u] * s;
  }
}

// GLU: parts are gate (0) and up (1) with the same N; warp n computes row n of both and writes
// swiglu(gate, up) to parts.y[0].
template <DType DT, int NT, bool GLU>
static __global__ void __launch_bounds__(32 * kQvWarps)
    gemv_quant_kernel(GemvQuantParts parts, const int8_t* xq, const float* xd, int T, int64_t K) {
  using F = QUnit<DT>;
  const int lane = int(threadIdx.x) & 31;
  const int64_t bx = blockIdx.x;
  // this block's part, picked by selects (a dynamic index into the parameters would go to local memory)
  const int j = !GLU && parts.count > 1 && bx >= parts.end[0] ? (parts.count > 2 && bx >= parts.end[1] ? 2 : 1) : 0;
  float* const y = j == 0 ? parts.y[0] : j == 1 ? parts.y[1] : parts.y[2];
  const uint8_t* const w = j == 0 ? parts.w[0] : j == 1 ? parts.w[1] : parts.w[2];
  const int64_t N = j == 0 ? parts.N[0] : j == 1 ? parts.N[1] : parts.N[2];
  const int64_t b0 = j == 0 ? 0 : j == 1 ? parts.end[0] : parts.end[1];
  const int64_t n = (bx - b0) * kQvWarps + (threadIdx.x >> 5);
  if (n >= N) return;  // whole warps leave together
  const int64_t units = K / 32;
  float acc[NT], acc_up[NT];
  for (int t = 0; t < NT; t++) acc[t] = acc_up[t] = 0.f;
  if (GLU) {
    // a unit of the gate row and the same unit of the up row in flight together
    for (int64_t u = lane; u < units; u += 32) {
      QUnitVals g, p;
      weight_unit<DT>(w, N, K, n, u, g);
      weight_unit<DT>(parts.w[1], N, K, n, u, p);
      gemv_quant_unit<F, NT>(acc, g, u, xq, xd, T, K);
      gemv_quant_unit<F, NT>(acc_up, p, u, xq, xd, T, K);
    }
  } else {
    // two units a lane per step (u and u + 32), both decoded before either is used, so each lane
    // has two units' weight loads in flight
    for (int64_t u0 = lane; u0 < units; u0 += 64) {
      QUnitVals v[2];
      const bool two = u0 + 32 < units;
      weight_unit<DT>(w, N, K, n, u0, v[0]);
      if (two) weight_unit<DT>(w, N, K, n, u0 + 32, v[1]);
      gemv_quant_unit<F, NT>(acc, v[0], u0, xq, xd, T, K);
      if (two) gemv_quant_unit<F, NT>(acc, v[1], u0 + 32, xq, xd, T, K);
    }
  }
  for (int t = 0; t < NT; t++) {
    if (t >= T) break;
    float r = warp_sum(acc[t]);
    if (GLU) r = SwigluF32{}(r, warp_sum(acc_up[t]));
    if (lane == 0) y[t * N + n] = r;
  }
}

template <DType DT, bool GLU>
static void launch_gemv_quant(const char* name, const GemvQuantParts& p, const int8_t* xq, const float* xd, int T, int64_t K,
                              cudaStream_t stream) {
  const dim3 grid(unsigned(p.end[GLU ? 0 : p.count - 1])), block(32 * kQvWarps);
  if (T <= 1) launch_kernel(name, gemv_quant_kernel<DT, 1, GLU>, grid, block, 0, stream, p, xq, xd, T, K);
  else if (T <= 2) launch_kernel(name, gemv_quant_kernel<DT, 2, GLU>, grid, block, 0, stream, p, xq, xd, T, K);
  else if (T <= 4) launch_kernel(name, gemv_quant_kernel<DT, 4, GLU>, grid, block, 0, stream, p, xq, xd, T, K);
  else launch_kernel(name, gemv_quant_kernel<DT, 8, GLU>, grid, block, 0, stream, p, xq, xd, T, K);
}

template <DType DT>
static void launch_gemv_quant(const char* name, const GemvQuantParts& p, bool glu, const int8_t* xq, const float* xd, int T,
                              int64_t K, cudaStream_t stream) {
  for (int j = 0; j < p.count; j++)
    if (reinterpret_cast<uintptr_t>(p.w[j]) % weight_align<DT>())
      throw Error("E_INVALID_ARG", std::string(name) + ": weights misaligned for their block format");
  if (glu) launch_gemv_quant<DT, true>(name, p, xq, xd, T, K, stream);
  else launch_gemv_quant<DT, false>(name, p, xq, xd, T, K, stream);
}

bool gemv_quant_supports(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::IQ4_NL:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: case DType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

// The launches of 1 to 3 matmuls on one x; glu (count 2, gate and up of the same N): out
// (T x N) = swiglu(gate's y, up's y) instead, neither y written.
static void gemv_quant_launches(const MatmulArgs* m, int count, float* glu_out, void* workspace, cudaStream_t stream,
                                bool x_ready) {
  const char* const who = "matmul_gemv_quant_cuda";
  if (count < 1 || count > kQvMaxParts)
    throw Error("E_INVALID_ARG", std::string(who) + ": 1 to 3 matmuls per launch, got " + std::to_string(count));
  const MatmulArgs& a = m[0];
  for (int j = 1; j < count; j++)
    if (m[j].x != a.x || m[j].T != a.T || m[j].K != a.K || m[j].w_dtype != a.w_dtype)
      throw Error("E_INVALID_ARG", std::string(who) + ": the matmuls of one launch must share x, T, K and the weight type");
  bool any = false;  // a part with rows to compute (K = 0 zeroes each y here)
  for (int j = 0; j < count; j++) any = quant_matmul_prologue(m[j], gemv_quant_supports(a.w_dtype), who, stream) || any;
  if (!any) return;
  if (!workspace || reinterpret_cast<uintptr_t>(workspace) % 256)
    throw Error("E_INVALID_ARG", std::string(who) + ": needs a 256-byte aligned workspace (matmul_cuda_workspace)");
  if (x_ready && a.T > kQvMaxT) throw Error("E_INVALID_ARG", std::string(who) + ": x comes quantized for at most 8 tokens");
  int64_t blocks = 0;
  for (int j = 0; j < count; j++) blocks += m[j].N > 0 ? (m[j].N + kQvWarps - 1) / kQvWarps : 0;
  if (blocks > 0x7fffffff) throw Error("E_INVALID_ARG", std::string(who) + ": too many rows");
  for (int64_t t0 = 0; t0 < a.T; t0 += kQvMaxT) {  // the weights are read once per 8 tokens
    const int T = int(a.T - t0 < kQvMaxT ? a.T - t0 : kQvMaxT);
    GemvQuantParts p{};
    for (int j = 0; j < count; j++) {  // parts without rows get no blocks
      if (m[j].N <= 0) continue;
      p.y[p.count] = (glu_out ? glu_out : m[j].y) + t0 * m[j].N;
      p.w[p.count] = static_cast<const uint8_t*>(m[j].w);
      p.N[p.count] = m[j].N;
      p.end[p.count] = (p.count ? p.end[p.count - 1] : 0) + (m[j].N + kQvWarps - 1) / kQvWarps;
      p.count++;
    }
    int8_t* q;
    float* d;
    if (x_ready) quantized_x_q8_at(T, a.K, workspace, q, d);
    else quantize_x_q8_cuda(a.x + t0 * a.K, T, a.K, workspace, q, d, stream);  // 8 tokens' room is enough
    switch (a.w_dtype) {
#define FUSELM_GEMV_QUANT_CASE(DT, name) \
  case DType::DT:                                                                                                   \
    launch_gemv_quant<DType::DT>(glu_out ? "gemv_quant_swiglu_kernel<" name ">" : "gemv_quant_kernel<" name ">", p, \
                                 glu_out != nullptr, q, d, T, a.K, stream);                                        \
    break;
      FUSELM_GEMV_QUANT_CASE(Q8_0, "q8_0")
      FUSELM_GEMV_QUANT_CASE(Q4_0, "q4_0")
      FUSELM_GEMV_QUANT_CASE(Q4_1, "q4_1")
      FUSELM_GEMV_QUANT_CASE(Q5_0, "q5_0")
      FUSELM_GEMV_QUANT_CASE(Q5_1, "q5_1")
      FUSELM_GEMV_QUANT_CASE(IQ4_NL, "iq4_nl")
      FUSELM_GEMV_QUANT_CASE(Q2_K, "q2_k")
      FUSELM_GEMV_QUANT_CASE(Q3_K, "q3_k")
      FUSELM_GEMV_QUANT_CASE(Q4_K, "q4_k")
      FUSELM_GEMV_QUANT_CASE(Q5_K, "q5_k")
      FUSELM_GEMV_QUANT_CASE(Q6_K, "q6_k")
      FUSELM_GEMV_QUANT_CASE(IQ4_XS, "iq4_xs")
#undef FUSELM_GEMV_QUANT_CASE
      default:
        break;
    }
  }
}

void matmul_gemv_quant_group_cuda(const MatmulArgs* m, int count, void* workspace, cudaStream_t stream, bool x_ready) {
  gemv_quant_launches(m, count, nullptr, workspace, stream, x_ready);
}

void matmul_gemv_quant_cuda(const MatmulArgs& a, void* workspace, cudaStream_t stream, bool x_ready) {
  gemv_quant_launches(&a, 1, nullptr, workspace, stream, x_ready);
}

void matmul_swiglu_gemv_quant_cuda(const MatmulArgs& gate, const MatmulArgs& up, float* out, void* workspace,
                                   cudaStream_t stream, bool x_ready) {
  if (gate.N != up.N)
    throw Error("E_INVALID_ARG", "matmul_swiglu_gemv_quant_cuda: gate has " + std::to_string(gate.N) + " rows, up " +
                                     std::to_string(up.N));
  if (!out) throw Error("E_INVALID_ARG", "matmul_swiglu_gemv_quant_cuda: no output");
  if (!gemv_quant_supports(gate.w_dtype))
    throw Error("E_INVALID_ARG", std::string("matmul_swiglu_gemv_quant_cuda: unsupported weight dtype ") + dtype_name(gate.w_dtype));
  if (gate.T <= 0 || gate.N <= 0) return;
  if (gate.K <= 0) {  // both products 0, and swiglu(0, 0) = 0
    CUDA_CHECK(cudaMemsetAsync(out, 0, size_t(gate.T * gate.N) * sizeof(float), stream));
    return;
  }
  const MatmulArgs m[2] = {gate, up};
  gemv_quant_launches(m, 2, out, workspace, stream, x_ready);
}

FUSELM_CUDA_NAMESPACE_END
