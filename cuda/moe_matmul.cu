// moe_matmul: each token's k expert projections (MoeMatmulArgs, native/ops/moe_matmul.h); the CPU
// twin is native/cpu/moe_matmul.cc. One warp per output value: token t (grid y), row n of the
// expert (4 warps per block along grid x), and slot j (grid z) or, with router weights, every
// slot in order, summed as out[t, n] += w_j * dot_j in the CPU's order. Lanes stride over K:
// f32/f16/bf16 a value at a time, the block formats a unit of 32 values at a time
// (cuda/quant_unit.cuh's weight_unit, q8_0 from its device planes: weight i = a[i / 16] * q[i]
// + b[i / 16]), widened to f32 and multiplied against x in f32 (x is not quantized, unlike the CPU's q8_0 and block-format dots,
// hence the parity cases' CUDA tolerance). Only the chosen experts' rows are read. A plain
// kernel for decode, small batches, float and q8_0 weights; cuda/moe_matmul_gemm.cu runs prefill.
#include <cstdint>
#include <string>

#include "ops.h"
#include "ops/moe_matmul.h"
#include "quant_unit.cuh"
#include "reduce.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

namespace {

constexpr int kWarps = 4;

template <DType DT>
struct MoeDot {  // the block formats
  __device__ __forceinline__ static float dot(const uint8_t* w, int64_t rows, int64_t row, size_t, const float* x,
                                              int64_t K, int lane) {
    float s = 0.0f;
    for (int64_t u = lane; u < K / 32; u += 32) {
      QUnitVals v;
      weight_unit<DT>(w, rows, K, row, u, v);
      const float* xu = x + u * 32;
      for (int i = 0; i < 32; i++) {
        const float q = float(int8_t((v.q[i / 4] >> (8 * (i % 4))) & 0xffu));
        s += (v.a[i / 16] * q + v.b[i / 16]) * xu[i];
      }
    }
    return s;
  }
};
// one stored f32/f16/bf16 weight as a float
template <DType DT>
__device__ __forceinline__ float weight_at(const uint8_t* row, int64_t i) {
  if constexpr (DT == DType::F32) return reinterpret_cast<const float*>(row)[i];
  else if constexpr (DT == DType::F16) return f16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
  else return bf16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
}
template <DType DT>
struct MoeFloatDot {  // the float formats
  __device__ __forceinline__ static float dot(const uint8_t* w, int64_t, int64_t r, size_t row_bytes, const float* x,
                                              int64_t K, int lane) {
    const uint8_t* row = w + size_t(r) * row_bytes;
    float s = 0.0f;
    for (int64_t i = lane; i < K; i += 32) s += weight_at<DT>(row, i) * x[i];
    return s;
  }
};
template <>
struct MoeDot<DType::F32> : MoeFloatDot<DType::F32> {};
template <>
struct MoeDot<DType::F16> : MoeFloatDot<DType::F16> {};
template <>
struct MoeDot<DType::BF16> : MoeFloatDot<DType::BF16> {};

template <DType DT>
__global__ void moe_matmul_kernel(float* out, const float* x, const uint8_t* w, const int32_t* ids, const float* weights,
                                  int64_t K, int64_t N, int64_t E, int64_t k, bool x_per_slot, size_t row_bytes,
                                  int32_t* error) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5), t = blockIdx.y;
  if (n >= N) return;
  const int64_t j0 = weights ? 0 : blockIdx.z, j1 = weights ? k : j0 + 1;
  float acc = weights ? out[t * N + n] : 0.0f;
  for (int64_t j = j0; j < j1; j++) {
    const int32_t id = ids[t * k + j];
    float d = 0.0f;
    if (id >= 0 && id < E) {
      d = warp_sum(MoeDot<DT>::dot(w, E * N, int64_t(id) * N + n, row_bytes, x + (x_per_slot ? (t * k + j) * K : t * K), K, lane));
    } else if (lane == 0 && n == 0 && error && atomicCAS(&error[0], 0, int32_t(t) + 1) == 0) {
      error[1] = id;
    }
    if (weights) acc += weights[t * k + j] * d;
    else acc = d;
  }
  if (lane == 0) out[weights ? t * N + n : (t * k + j0) * N + n] = acc;
}

}  // namespace

void moe_matmul_cuda(const MoeMatmulArgs& a, int32_t* error, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (a.T <= 0 || a.N <= 0) return;
  if (moe_matmul_gemm_cuda(a, error, workspace, workspace_bytes, stream)) return;  // prefill, gemm_quant's formats
  const int64_t per_block = dtype_block(a.w_dtype).values;
  if (a.K % (per_block > 1 ? per_block : 1))
    throw Error("E_INVALID_ARG", std::string("moe_matmul_cuda: ") + dtype_name(a.w_dtype) + " rows must hold whole blocks of " + std::to_string(per_block));
  const dim3 grid(unsigned((a.N + kWarps - 1) / kWarps), unsigned(a.T), unsigned(a.weights ? 1 : a.k));
  const dim3 block(32 * kWarps);
  const uint8_t* w = static_cast<const uint8_t*>(a.w);
  const size_t rb = row_bytes(a.w_dtype, a.K);
  switch (a.w_dtype) {
#define FUSELM_MOE_CASE(DT, name)                                                                                        \
  case DType::DT:                                                                                                        \
    launch_kernel("moe_matmul_kernel<" name ">", moe_matmul_kernel<DType::DT>, grid, block, 0, stream, a.out, a.x, w, a.ids, \
                  a.weights, a.K, a.N, a.E, a.k, a.x_per_slot, rb, error);                                               \
    break;
    FUSELM_MOE_CASE(F32, "f32")
    FUSELM_MOE_CASE(F16, "f16")
    FUSELM_MOE_CASE(BF16, "bf16")
    FUSELM_MOE_CASE(Q8_0, "q8_0")
    FUSELM_MOE_CASE(Q4_0, "q4_0")
    FUSELM_MOE_CASE(Q4_1, "q4_1")
    FUSELM_MOE_CASE(Q5_0, "q5_0")
    FUSELM_MOE_CASE(Q5_1, "q5_1")
    FUSELM_MOE_CASE(IQ4_NL, "iq4_nl")
    FUSELM_MOE_CASE(Q2_K, "q2_k")
    FUSELM_MOE_CASE(Q3_K, "q3_k")
    FUSELM_MOE_CASE(Q4_K, "q4_k")
    FUSELM_MOE_CASE(Q5_K, "q5_k")
    FUSELM_MOE_CASE(Q6_K, "q6_k")
    FUSELM_MOE_CASE(IQ4_XS, "iq4_xs")
#undef FUSELM_MOE_CASE
    default:
      throw Error("E_INVALID_ARG", std::string("moe_matmul_cuda: unsupported weight dtype ") + dtype_name(a.w_dtype));
  }
}

FUSELM_CUDA_OP(
    moe_matmul_op::def,
    [](const Step& s, const CudaExec& x) { moe_matmul_cuda(moe_matmul_op::args(s), x.error, x.workspace, x.workspace_bytes, x.stream); },
    [](const Node& n, int64_t max_rows) {
      using namespace moe_matmul_op;
      const Tensor& W = *n.t[w];
      return moe_matmul_gemm_workspace(W.dtype, max_rows, W.cols(), rows_of(W), experts_of(W), n.t[ids]->cols(), bool(n.t[weights]));
    });

FUSELM_CUDA_NAMESPACE_END
