// kv_store: new keys or values written into a KV cache at their positions.
#pragma once
#include "op.h"
#include "ops/paged.h"

namespace fuselm {

// cache[pos0 + t, :] = src[t, :] rounded to cache_dtype (f32, f16 or bf16; round to nearest
// even)    src f32 [T, W], cache [ctx, W]; paged (a block table): row table.row(pos0 + t)
struct KvStoreArgs { void* cache; DType cache_dtype; const float* src; int64_t T, W, pos0; BlockTable table = {}; };
void kv_store_cpu(const KvStoreArgs& a, const Exec& e);

namespace kv_store_op {
enum Role { cache, src, block_table };
enum Param { block_size, table_row };
inline KvStoreArgs args(const Step& s) {
  const Node& n = s.node;
  const BlockTable table = n.t[block_table] ? BlockTable{s.data<int32_t>(block_table) + n.i(table_row) * s.t(block_table).cols(), n.i(block_size)} : BlockTable{};
  return {s.data<void>(cache), s.t(cache).dtype, s.rows_of(src), s.rows, s.t(cache).cols(), s.pos, table};
}
inline const OpDef def = [] {
  OpDef d{
      "kv_store",
      {{"cache", Access::Update}, {"src", Access::In}, {"blockTable", Access::In, false, true, true}},
      {{"blockSize", ParamType::Int, false, 0}, {"tableRow", ParamType::Int, false, 0}},
      [](const Check& c) {
        c.kv(cache);
        c.f32(src);
        c.cols(src, c.tensor(cache).cols());
        c.rows(src, c.max_rows);
        check_block_table(c, block_table, cache, c.node.i(block_size), c.node.i(table_row));
      },
  };
  d.positional = true;
  d.check_run = [](const Node& n, int64_t rows, int64_t pos) {
    if (!n.t[block_table]) return check_context(rows, pos, n.t[cache]->rows());
    if (pos < 0) throw Error("E_INVALID_ARG", "graph run: sequence position must be >= 0, got " + std::to_string(pos));
    check_block_run(n, block_table, cache, n.i(block_size), n.i(table_row), pos + rows);
  };
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
