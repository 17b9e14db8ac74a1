// kv_store: new keys or values written into a KV cache at their positions.
#pragma once
#include "op.h"

namespace fuselm {

// cache[pos0 + t, :] = src[t, :] rounded to cache_dtype (f32, f16 or bf16; round to nearest
// even)    src f32 [T, W], cache [ctx, W]
struct KvStoreArgs { void* cache; DType cache_dtype; const float* src; int64_t T, W, pos0; };
void kv_store_cpu(const KvStoreArgs& a, const Exec& e);

namespace kv_store_op {
enum Role { cache, src };
inline KvStoreArgs args(const Step& s) {
  return {s.data<void>(cache), s.t(cache).dtype, s.rows_of(src), s.rows, s.t(cache).cols(), s.pos};
}
inline const OpDef def = [] {
  OpDef d{
      "kv_store",
      {{"cache", Access::Update}, {"src", Access::In}},
      {},
      [](const Check& c) {
        c.kv(cache);
        c.f32(src);
        c.cols(src, c.tensor(cache).cols());
        c.rows(src, c.max_rows);
      },
  };
  d.positional = true;
  d.check_run = [](const Node& n, int64_t rows, int64_t pos) { check_context(rows, pos, n.t[cache]->rows()); };
  return d;
}();
}  // namespace kv_store_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void kv_store_cuda(const KvStoreArgs& a, cudaStream_t stream);  // cuda/kv_store.cu
FUSELM_CUDA_NAMESPACE_END
#endif
