// kv_store: cache[pos0 + t, :] = src[t, :] for t < T (KvStoreArgs, native/ops/kv_store.h), src f32
// [T, W], the cache [ctx, W] in f32, f16 or bf16; the CPU twin is native/cpu/kv_store.cc (the
// same bits). Rows are contiguous in both, so the T new rows are one run of n = T * W values copied
// from src to cache + pos0 * W. Each value is rounded to the cache's type to nearest even
// (f16 subnormals and overflow to infinity included), bit for bit what tensor.h's f32_to_f16 /
// f32_to_bf16 give (NaN aside: the GPU's conversion writes its own NaN payload).
//
// Stores are 16 bytes (4 floats or 8 halves) where possible: a scalar head brings the
// destination to a 16-byte boundary; if the source is then 16-byte aligned as well, the body is
// vectors (one per thread, grid-stride) and the few values past the last vector a scalar tail;
// otherwise (source and destination aligned differently) every value goes alone.
#include <cstdint>
#include <string>

#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

// The cache's element type: 0 f32, 1 f16, 2 bf16.
template <int KIND>
__device__ __forceinline__ uint16_t round_to_half_bits(float f) {
  return KIND == 1 ? __half_as_ushort(__float2half_rn(f)) : __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

__device__ __forceinline__ uint32_t pack_half_bits(uint16_t lo, uint16_t hi) { return uint32_t(lo) | uint32_t(hi) << 16; }

template <int KIND>
__device__ __forceinline__ void store_one(void* dst, int64_t i, float f) {
  if (KIND == 0)
    static_cast<float*>(dst)[i] = f;
  else
    static_cast<uint16_t*>(dst)[i] = round_to_half_bits<KIND>(f);
}

// dst = the cache at row pos0; values [0, head) and [head + n_vec * EPV, n) go one at a time,
// the n_vec vectors in between 16 bytes at a time.
template <int KIND>
static __global__ void kv_store_kernel(void* dst, const float* src, int64_t n, int64_t head, int64_t n_vec) {
  constexpr int EPV = KIND == 0 ? 4 : 8;  // values per 16 bytes of cache
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t v = tid; v < n_vec; v += stride) {
    const int64_t i = head + v * EPV;
    const float4* s = reinterpret_cast<const float4*>(src + i);
    if (KIND == 0) {
      reinterpret_cast<float4*>(static_cast<float*>(dst) + i)[0] = s[0];
    } else {
      const float4 a = s[0], b = s[1];
      reinterpret_cast<uint4*>(static_cast<uint16_t*>(dst) + i)[0] =
          make_uint4(pack_half_bits(round_to_half_bits<KIND>(a.x), round_to_half_bits<KIND>(a.y)),
                     pack_half_bits(round_to_half_bits<KIND>(a.z), round_to_half_bits<KIND>(a.w)),
                     pack_half_bits(round_to_half_bits<KIND>(b.x), round_to_half_bits<KIND>(b.y)),
                     pack_half_bits(round_to_half_bits<KIND>(b.z), round_to_half_bits<KIND>(b.w)));
    }
  }
  const int64_t tail0 = head + n_vec * EPV, n_scalar = head + (n - tail0);
  for (int64_t k = tid; k < n_scalar; k += stride) {
    const int64_t i = k < head ? k : tail0 + (k - head);
    store_one<KIND>(dst, i, src[i]);
  }
}

template <int KIND>
static void launch_kv_store(const char* name, void* dst, const float* src, int64_t n, size_t elem_bytes,
                            cudaStream_t stream) {
  constexpr int EPV = KIND == 0 ? 4 : 8;
  const uintptr_t d = reinterpret_cast<uintptr_t>(dst), s = reinterpret_cast<uintptr_t>(src);
  int64_t head = int64_t((16 - d % 16) % 16 / elem_bytes);  // values until dst is 16-byte aligned
  if (head > n) head = n;
  int64_t n_vec = 0;
  if ((s + uintptr_t(head) * 4) % 16 == 0)
    n_vec = (n - head) / EPV;
  else
    head = 0;  // no vector body: everything goes through the scalar loop
  const unsigned threads = 256;
  const int64_t items = n_vec + head + (n - head - n_vec * EPV);
  launch_kernel(name, kv_store_kernel<KIND>, dim3(elementwise_blocks(items, threads)), dim3(threads), 0, stream, dst,
                src, n, head, n_vec);
}

// Rows of src from `src` on into consecutive cache rows from `row` on.
static void kv_store_run(const KvStoreArgs& a, const float* src, int64_t rows, int64_t row, cudaStream_t stream) {
  const int64_t n = rows * a.W, off = row * a.W;
  switch (a.cache_dtype) {
    case DType::F32:
      return launch_kv_store<0>("kv_store_f32_kernel", static_cast<float*>(a.cache) + off, src, n, 4, stream);
    case DType::F16:
      return launch_kv_store<1>("kv_store_f16_kernel", static_cast<uint16_t*>(a.cache) + off, src, n, 2, stream);
    case DType::BF16:
      return launch_kv_store<2>("kv_store_bf16_kernel", static_cast<uint16_t*>(a.cache) + off, src, n, 2, stream);
    default:
      throw Error("E_INVALID_ARG", std::string("kv_store_cuda: unsupported cache dtype ") + dtype_name(a.cache_dtype));
  }
}

// Paged (a.table), the table is the host's copy: one launch per block the positions touch.
void kv_store_cuda(const KvStoreArgs& a, cudaStream_t stream) {
  if (a.T <= 0 || a.W <= 0) return;
  if (a.pos0 < 0) throw Error("E_INVALID_ARG", "kv_store_cuda: pos0 must be >= 0");
  for (int64_t p = a.pos0, end = a.pos0 + a.T, next; p < end; p = next) {
    next = a.table.run_end(p, end);
    kv_store_run(a, a.src + (p - a.pos0) * a.W, next - p, a.table.row(p), stream);
  }
}

// The block table's host copy (the kernels' launches are planned on the host).
FUSELM_CUDA_OP(kv_store_op::def, [](const Step& s, const CudaExec& x) {
  KvStoreArgs a = kv_store_op::args(s);
  if (a.table.blocks) a.table.blocks = s.t(kv_store_op::block_table).data<int32_t>() + s.node.i(kv_store_op::table_row) * s.t(kv_store_op::block_table).cols();
  kv_store_cuda(a, x.stream);
});

FUSELM_CUDA_NAMESPACE_END
