// embedding: out[t, :] = table[ids[t], :] widened to f32, table [V, D] in f32, f16, bf16, q8_0
// or a GGUF block format; the CPU twin is native/cpu/embedding.cc. One block per token. f32, f16 and bf16 rows
// are read 16 bytes at a time (4 floats or 8 halves) when the table and out are 16-byte
// aligned and the row length allows (D % 4, D % 8), else one value per thread. The block
// formats (q8_0 from its device planes, q4_0 .. iq4_xs) one 32-value unit per thread
// (cuda/quant_unit.cuh's weight_unit), each value a * q + b in f32 with the multiply and the
// add rounded separately (never fused), the same operations as llama.cpp's dequantize_row_* and
// the CPU's reference (native/cpu/quant_ref.h). Widening is exact, so the output equals the
// reference bit for bit. An id outside [0, V) reads nothing: its row of out is zeroed and the
// first such token is reported in `error` ({1 + position, id}), which the CUDA graph checks
// after the step and turns into an E_INVALID_ARG (the graph checks host ids before the call;
// this covers ids already in device memory). A trap would poison the whole CUDA context.
#include <cstdint>
#include <string>

#include "convert.cuh"
#include "ops.h"
#include "ops/embedding.h"
#include "quant_unit.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

// The row of this block's token, or -1 (reported in error, the output row zeroed) for a bad id.
__device__ __forceinline__ int64_t embedding_row(const int32_t* ids, int64_t V, float* out, int64_t D, int32_t* error) {
  const int32_t id = ids[blockIdx.x];
  if (id >= 0 && int64_t(id) < V) return id;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) out[int64_t(blockIdx.x) * D + i] = 0.0f;
  if (threadIdx.x == 0 && error && atomicCAS(&error[0], 0, int32_t(blockIdx.x) + 1) == 0) error[1] = id;
  return -1;
}

template <int VEC>
static __global__ void embedding_f32_kernel(float* out, const float* table, const int32_t* ids, int64_t V,
                                            int64_t D, int32_t* error) {
  const int64_t r = embedding_row(ids, V, out, D, error);
  if (r < 0) return;
  const float* row = table + r * D;
  float* o = out + int64_t(blockIdx.x) * D;
  if (VEC == 4) {
    const float4* rv = reinterpret_cast<const float4*>(row);
    float4* ov = reinterpret_cast<float4*>(o);
    for (int64_t i = threadIdx.x; i < D / 4; i += blockDim.x) ov[i] = rv[i];
  } else {
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) o[i] = row[i];
  }
}

// f16 (BF16 = false) or bf16 (BF16 = true) rows.
template <bool BF16, int VEC>
static __global__ void embedding_half_kernel(float* out, const uint16_t* table, const int32_t* ids, int64_t V,
                                             int64_t D, int32_t* error) {
  const int64_t r = embedding_row(ids, V, out, D, error);
  if (r < 0) return;
  const uint16_t* row = table + r * D;
  float* o = out + int64_t(blockIdx.x) * D;
  if (VEC == 8) {
    const uint4* rv = reinterpret_cast<const uint4*>(row);
    float4* ov = reinterpret_cast<float4*>(o);
    for (int64_t i = threadIdx.x; i < D / 8; i += blockDim.x) {
      const uint4 v = rv[i];
      const uint32_t w[4] = {v.x, v.y, v.z, v.w};
      float f[8];
      for (int j = 0; j < 4; j++) {
        const uint16_t lo = uint16_t(w[j] & 0xffffu), hi = uint16_t(w[j] >> 16);
        f[2 * j] = BF16 ? bf16_bits_to_f32(lo) : f16_bits_to_f32(lo);
        f[2 * j + 1] = BF16 ? bf16_bits_to_f32(hi) : f16_bits_to_f32(hi);
      }
      ov[2 * i] = make_float4(f[0], f[1], f[2], f[3]);
      ov[2 * i + 1] = make_float4(f[4], f[5], f[6], f[7]);
    }
  } else {
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) o[i] = BF16 ? bf16_bits_to_f32(row[i]) : f16_bits_to_f32(row[i]);
  }
}
template <DType DT>
static __global__ void embedding_quant_kernel(float* out, const uint8_t* table, const int32_t* ids, int64_t V, int64_t D,
                                              int32_t* error) {
  using F = QUnit<DT>;
  const int64_t r = embedding_row(ids, V, out, D, error);
  if (r < 0) return;
  float* o = out + int64_t(blockIdx.x) * D;
  for (int64_t u = threadIdx.x; u < D / 32; u += blockDim.x) {
    QUnitVals v;
    weight_unit<DT>(table, V, D, r, u, v);
    for (int i = 0; i < 32; i++) {
      const float x = __fmul_rn(v.a[i >> 4], float(int8_t(v.q[i >> 2] >> (8 * (i & 3)))));
      o[32 * u + i] = F::kOffset ? __fadd_rn(x, v.b[i >> 4]) : x;
    }
  }
}

template <DType DT>
static void launch_embedding_quant(const char* name, const EmbeddingArgs& a, int32_t* error, cudaStream_t stream) {
  if (a.D % QUnit<DT>::kValues)
    throw Error("E_INVALID_ARG", std::string("embedding_cuda: ") + dtype_name(DT) + " rows must hold whole blocks");
  if (reinterpret_cast<uintptr_t>(a.table) % weight_align<DT>())
    throw Error("E_INVALID_ARG", std::string("embedding_cuda: ") + dtype_name(DT) + " table misaligned");
  const int64_t units = a.D / 32;
  const dim3 threads(unsigned(units < 32 ? 32 : units > 256 ? 256 : (units + 31) / 32 * 32));
  launch_kernel(name, embedding_quant_kernel<DT>, dim3(unsigned(a.T)), threads, 0, stream, a.out,
                static_cast<const uint8_t*>(a.table), a.ids, a.V, a.D, error);
}

void embedding_cuda(const EmbeddingArgs& a, int32_t* error, cudaStream_t stream) {
  if (a.T <= 0 || a.D <= 0) return;
  const dim3 grid(unsigned(a.T));
  const bool al = aligned16(a.table) && aligned16(a.out);
  auto threads_for = [](int64_t items) {
    const int64_t t = (items + 31) / 32 * 32;
    return dim3(unsigned(t < 64 ? 64 : t > 256 ? 256 : t));
  };
  switch (a.dtype) {
    case DType::F32: {
      const float* tb = static_cast<const float*>(a.table);
      if (al && a.D % 4 == 0)
        launch_kernel("embedding_f32_kernel<4>", embedding_f32_kernel<4>, grid, threads_for(a.D / 4), 0, stream, a.out,
                      tb, a.ids, a.V, a.D, error);
      else
        launch_kernel("embedding_f32_kernel<1>", embedding_f32_kernel<1>, grid, threads_for(a.D), 0, stream, a.out, tb,
                      a.ids, a.V, a.D, error);
      return;
    }
    case DType::F16:
    case DType::BF16: {
      const uint16_t* tb = static_cast<const uint16_t*>(a.table);
      const bool vec = al && a.D % 8 == 0;
      const dim3 threads = threads_for(vec ? a.D / 8 : a.D);
      if (a.dtype == DType::F16) {
        if (vec)
          launch_kernel("embedding_f16_kernel<8>", embedding_half_kernel<false, 8>, grid, threads, 0, stream, a.out, tb,
                        a.ids, a.V, a.D, error);
        else
          launch_kernel("embedding_f16_kernel<1>", embedding_half_kernel<false, 1>, grid, threads, 0, stream, a.out, tb,
                        a.ids, a.V, a.D, error);
      } else {
        if (vec)
          launch_kernel("embedding_bf16_kernel<8>", embedding_half_kernel<true, 8>, grid, threads, 0, stream, a.out,
                        tb, a.ids, a.V, a.D, error);
        else
          launch_kernel("embedding_bf16_kernel<1>", embedding_half_kernel<true, 1>, grid, threads, 0, stream, a.out,
                        tb, a.ids, a.V, a.D, error);
      }
      return;
    }
#define FUSELM_EMBEDDING_QUANT_CASE(DT, name) \
  case DType::DT: return launch_embedding_quant<DType::DT>("embedding_quant_kernel<" name ">", a, error, stream);
    FUSELM_EMBEDDING_QUANT_CASE(Q8_0, "q8_0")
    FUSELM_EMBEDDING_QUANT_CASE(Q4_0, "q4_0")
    FUSELM_EMBEDDING_QUANT_CASE(Q4_1, "q4_1")
    FUSELM_EMBEDDING_QUANT_CASE(Q5_0, "q5_0")
    FUSELM_EMBEDDING_QUANT_CASE(Q5_1, "q5_1")
    FUSELM_EMBEDDING_QUANT_CASE(IQ4_NL, "iq4_nl")
    FUSELM_EMBEDDING_QUANT_CASE(Q2_K, "q2_k")
    FUSELM_EMBEDDING_QUANT_CASE(Q3_K, "q3_k")
    FUSELM_EMBEDDING_QUANT_CASE(Q4_K, "q4_k")
    FUSELM_EMBEDDING_QUANT_CASE(Q5_K, "q5_k")
    FUSELM_EMBEDDING_QUANT_CASE(Q6_K, "q6_k")
    FUSELM_EMBEDDING_QUANT_CASE(IQ4_XS, "iq4_xs")
#undef FUSELM_EMBEDDING_QUANT_CASE
    default:
      throw Error("E_INVALID_ARG", std::string("embedding_cuda: unsupported table dtype ") + dtype_name(a.dtype));
  }
}

FUSELM_CUDA_OP(embedding_op::def, [](const Step& s, const CudaExec& x) {
  embedding_cuda(embedding_op::args(s), x.error, x.stream);
});

FUSELM_CUDA_NAMESPACE_END
