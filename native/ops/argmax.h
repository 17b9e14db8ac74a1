// argmax: the index of each row's largest value (greedy sampling on the device).
#pragma once
#include <algorithm>
#include <string>

#include "op.h"

namespace fuselm {

// ids[t] = the index of the largest of x[t, 0 .. V-1]: the lowest on ties, NaN never wins
// (a row of NaN only gives 0).    x f32 [T, V], ids i32 [T]
struct ArgmaxArgs { int32_t* ids; const float* x; int64_t T, V; };
void argmax_cpu(const ArgmaxArgs& a, const Exec& e);

namespace argmax_op {
enum Role { ids, x };
// a run covers n rows of x, or all of x when it has fewer (the last-row logits)
inline int64_t covered(const Node& n, int64_t rows) { return std::min(rows, n.t[x]->rows()); }
inline ArgmaxArgs args(const Step& s) { return {s.data<int32_t>(ids), s.data(x), covered(s.node, s.n), s.t(x).cols()}; }
inline const OpDef def = [] {
  OpDef d{
      "argmax",
      {{"ids", Access::Out, true, true}, {"x", Access::In}},
      {},
      [](const Check& c) {
        c.f32(x);
        const Tensor& I = c.tensor(ids);
        if (I.dtype != DType::I32) c.fail("ids must be i32, got " + I.describe());
        const int64_t need = std::min(c.max_rows, c.tensor(x).rows());
        if (I.numel() < need) c.fail("ids must hold a value per row of x that a run covers (" + std::to_string(need) + ")");
      },
  };
  d.rows_written = &covered;
  return d;
}();
}  // namespace argmax_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
// cuda/argmax.cu; a few rows split across blocks, whose pairs need argmax_cuda_workspace bytes
void argmax_cuda(const ArgmaxArgs& a, void* workspace, size_t workspace_bytes, cudaStream_t stream);
size_t argmax_cuda_workspace(int64_t max_T, int64_t V);
FUSELM_CUDA_NAMESPACE_END
#endif
