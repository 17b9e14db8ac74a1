// embedding: rows of a table picked by token id, widened to f32.
#pragma once
#include <string>

#include "op.h"

namespace fuselm {

// out[t, :] = table[ids[t], :] as f32     table [V, D] in f32/f16/bf16/q8_0 or a GGUF block format, ids i32 [T]
// ids are checked against V before the call (the graph, from host ids).
struct EmbeddingArgs { float* out; const void* table; DType dtype; const int32_t* ids; int64_t T, V, D; };
void embedding_cpu(const EmbeddingArgs& a, const Exec& e);

namespace embedding_op {
enum Role { out, table, ids };
inline EmbeddingArgs args(const Step& s) {
  return {s.data(out), s.data<void>(table), s.t(table).dtype, s.data<int32_t>(ids), s.n, s.t(table).rows(), s.t(table).cols()};
}
inline const OpDef def = [] {
  OpDef d{
      "embedding",
      {{"out", Access::Out}, {"table", Access::In}, {"ids", Access::In, true, true}},
      {},
      [](const Check& c) {
        c.f32(out);
        const Tensor& tab = c.tensor(table);
        const Tensor& id = c.tensor(ids);
        if (tab.dtype == DType::I32) c.fail("table must be f32, f16, bf16 or a block format, got " + tab.describe());
        if (id.dtype != DType::I32) c.fail("ids must be i32, got " + id.describe());
        if (id.numel() < c.max_rows) c.fail("ids must hold at least maxRows (" + std::to_string(c.max_rows) + ") values");
        c.cols(out, tab.cols());
        c.rows(out, c.max_rows);
      },
  };
  d.check_run = [](const Node& n, int64_t rows, int64_t) {
    const Tensor& id = *n.t[ids];
    if (!id.on_host()) return;  // device ids are checked by the kernel (an error flag)
    const int32_t* v = id.data<int32_t>();
    const int64_t V = n.t[table]->rows();
    for (int64_t t = 0; t < rows; t++)
      if (v[t] < 0 || v[t] >= V)
        throw Error("E_INVALID_ARG", "token id " + std::to_string(v[t]) + " at position " + std::to_string(t) +
                                         " is outside the vocabulary (0.." + std::to_string(V - 1) + ")");
  };
  return d;
}();
}  // namespace embedding_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
// error (device, 2 x i32, zero before the call): {1 + position, id} of the first token whose
// id is outside the table; its row of out is zeroed. May be null.
void embedding_cuda(const EmbeddingArgs& a, int32_t* error, cudaStream_t stream);  // cuda/embedding.cu
FUSELM_CUDA_NAMESPACE_END
#endif
