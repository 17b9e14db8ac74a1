// lora: the low-rank term of LoRA adapters added to a projection's output, y += s · B(A·x),
// for several adapters at once and a per-row choice among them (a batch whose sequences use
// different adapters, or none: S-LoRA/Punica's gather, as one op).
#pragma once
#include <string>

#include "op.h"

namespace fuselm {

// The adapters' A matrices stacked by rows, a [R, K], and their B matrices transposed and
// stacked the same way, bt [R, N]: adapter j owns ranks seg[j] .. seg[j+1] - 1 (seg i32
// [J + 1] or [1, J + 1], a host input a device backend copies whole whatever the run's rows;
// seg[0] = 0, seg[J] = R). Its alpha/r is folded into bt; scales [>= T, J] f32 is
// each row's weight of each adapter (0: not applied, its ranks skipped).
//   y[t, :] += Σ_j scales[t, j] · Σ_{k ∈ seg j} (a[k, :] · x[t, :]) · bt[k, :]
// y, x f32 [T, N] and [T, K]. y must not alias x.
struct LoraArgs { float* y; const float* x; const float* a; const float* bt; const int32_t* seg; const float* scales; int64_t T, K, N, R, J; };
void lora_cpu(const LoraArgs& a, const Exec& e);

namespace lora_op {
enum Role { y, x, a, bt, seg, scales };
inline LoraArgs args(const Step& s) {
  return {s.data(y), s.data(x), s.data(a), s.data(bt), s.data<int32_t>(seg), s.data(scales), s.n, s.t(x).cols(), s.t(y).cols(),
          s.t(a).rows(), s.t(scales).cols()};
}
inline const OpDef def = [] {
  OpDef d{
      "lora",
      {{"y", Access::InOut}, {"x", Access::In}, {"a", Access::In}, {"bt", Access::In}, {"seg", Access::In, true, true, true}, {"scales", Access::In, true, true}},
      {},
      [](const Check& c) {
        const Tensor& A = c.f32(a);
        const Tensor& Bt = c.f32(bt);
        c.activations({x}, A.cols());
        c.activations({y}, Bt.cols());
        if (Bt.rows() != A.rows()) c.fail("bt must have a's rows (ranks, " + std::to_string(A.rows()) + "), got " + Bt.describe());
        const Tensor& sg = c.tensor(seg);
        const Tensor& sc = c.f32(scales);
        if (sg.dtype != DType::I32 || sg.rows() != 1 || sg.numel() < 2) c.fail("seg must be i32 [adapters + 1] or [1, adapters + 1], got " + sg.describe());
        if (sc.cols() != sg.numel() - 1) c.fail("scales must have a column per adapter (" + std::to_string(sg.numel() - 1) + "), got " + sc.describe());
        c.rows(scales, c.max_rows);
        // the CUDA kernel keeps a row's R dot products in shared memory
        if (A.rows() > 8192) c.fail("at most 8192 ranks in all, got " + A.describe());
        if (c.node.t[x]->buf == c.node.t[y]->buf) c.fail("y must not alias x");
      },
  };
  // the segments must cover 0 .. R in order (host data: checked before each run)
  d.check_run = [](const Node& n, int64_t, int64_t) {
    const Tensor& sg = *n.t[seg];
    if (!sg.on_host()) return;
    const int32_t* v = sg.data<int32_t>();
    const int64_t J = sg.numel() - 1, R = n.t[a]->rows();
    bool ok = v[0] == 0 && v[J] == R;
    for (int64_t j = 0; j < J && ok; j++) ok = v[j] <= v[j + 1];
    if (!ok) throw Error("E_INVALID_ARG", "lora: seg must rise from 0 to the " + std::to_string(R) + " ranks of a");
  };
  return d;
}();
}  // namespace lora_op

}  // namespace fuselm

#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void lora_cuda(const LoraArgs& a, cudaStream_t stream);  // cuda/lora.cu
FUSELM_CUDA_NAMESPACE_END
#endif
