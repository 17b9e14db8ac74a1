// seq2seq_attention: the attention of the encoder-decoder models (T5, BART) that the decoder
// models' attention op does not do: T5's relative position bias added to every score, and
// cross-attention, where every decoder token sees all the encoder's keys whatever its position.
#pragma once
#include <cmath>
#include <string>

#include "op.h"

namespace fuselm {

// Multi-head attention (n_heads query heads over as many K/V heads), plain softmax.
// q, out f32 [T, n_heads * hd]; k_cache, v_cache f32 [ctx, n_heads * hd].
// Token t sits at position i = pos0 + t. It sees keys j = 0 .. i when causal; otherwise
// 0 .. keys - 1 when keys > 0 (cross-attention over the encoder's rows), else 0 .. pos0 + T - 1.
// score(j) = scale * q·k_j + pos_bias[h, clamp(j - i, -R, R) + R] when pos_bias (f32
// [n_heads, 2R + 1], a bias per head and relative distance; T5 saturates its buckets at its
// max_distance, so R = max_distance holds every distinct value) is given, else scale * q·k_j.
struct Seq2seqAttentionArgs {
  float* out; const float* q; const float* k_cache; const float* v_cache; const float* pos_bias;
  int64_t T, n_heads, head_dim, pos0, keys, bias_range; float scale; bool causal;
};
void seq2seq_attention_cpu(const Seq2seqAttentionArgs& a, const Exec& e);

namespace seq2seq_attention_op {
enum Role { out, q, k_cache, v_cache, pos_bias };
enum Param { n_heads, head_dim, scale, causal, keys };
// Keys token t (at position pos0 + t) sees: 0 .. kv_end(t) - 1.
inline int64_t kv_end(const Seq2seqAttentionArgs& a, int64_t t) {
  return a.causal ? a.pos0 + t + 1 : a.keys > 0 ? a.keys : a.pos0 + a.T;
}
inline Seq2seqAttentionArgs args(const Step& s) {
  const Node& n = s.node;
  const float* bias = s.data<float>(pos_bias);
  return {s.rows_of(out), s.rows_of(q), s.data<float>(k_cache), s.data<float>(v_cache), bias, s.rows, n.i(n_heads),
          n.i(head_dim), s.pos, n.i(keys), bias ? (s.t(pos_bias).cols() - 1) / 2 : 0, n.f(scale), n.b(causal)};
}
inline const OpDef def = [] {
  OpDef d{
      "seq2seq_attention",
      {{"out", Access::Out}, {"q", Access::In}, {"kCache", Access::In}, {"vCache", Access::In}, {"posBias", Access::In, false}},
      {{"nHeads", ParamType::Int, true, 0},
       {"headDim", ParamType::Int, true, 0},
       {"scale", ParamType::Float, true, 0},
       {"causal", ParamType::Bool, true, 0},
       {"keys", ParamType::Int, false, 0}},
      [](const Check& c) {
        const Node& n = c.node;
        if (n.i(n_heads) < 1) c.fail("nHeads must be >= 1");
        if (n.i(head_dim) < 1 || n.i(head_dim) > 1024) c.fail("headDim must be 1..1024");
        const int64_t w = n.i(n_heads) * n.i(head_dim);
        c.activations({out, q}, w);
        for (int r : {k_cache, v_cache}) {
          c.f32(r);
          c.cols(r, w);
        }
        if (c.tensor(k_cache).rows() != c.tensor(v_cache).rows()) c.fail("kCache and vCache must have the same number of rows");
        if (!std::isfinite(n.p[scale])) c.fail("scale must be finite");
        if (n.i(keys) < 0) c.fail("keys must be >= 0");
        if (n.i(keys) > c.tensor(k_cache).rows())
          c.fail("keys " + std::to_string(n.i(keys)) + " exceeds the " + std::to_string(c.tensor(k_cache).rows()) + " rows of kCache");
        if (n.i(keys) > 0 && n.b(causal)) c.fail("cross-attention (keys > 0) is not causal");
        if (c.has(pos_bias)) {
          c.f32(pos_bias);
          if (c.tensor(pos_bias).rows() != n.i(n_heads) || c.tensor(pos_bias).cols() % 2 == 0)
            c.fail("posBias must be [nHeads, 2R + 1]");
        }
      },
  };
  d.positional = true;
  d.check_run = [](const Node& n, int64_t rows, int64_t pos) {
    if (n.i(keys) == 0) check_context(rows, pos, n.t[k_cache]->rows());
    else if (pos < 0) check_context(rows, pos, 0);
  };
  return d;
}();
}  // namespace seq2seq_attention_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void seq2seq_attention_cuda(const Seq2seqAttentionArgs& a, cudaStream_t stream);  // cuda/seq2seq_attention.cu
FUSELM_CUDA_NAMESPACE_END
#endif
