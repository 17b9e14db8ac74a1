// attention: queries over a KV cache (causal, windowed or not), GQA, optionally after a shared
// prefix of keys (beam search).
#pragma once
#include <cmath>

#include "op.h"
#include "ops/paged.h"

namespace fuselm {

// Attention over a KV cache, online softmax (no T x T matrix), GQA: query head h reads
// KV head h / (n_heads / n_kv_heads). q, out f32 [T, n_heads * hd]; k_cache, v_cache of
// kv_dtype (f32, f16 or bf16) [ctx, n_kv_heads * hd] holding positions 0 .. pos0 + T - 1.
// Causal: token t (position i = pos0 + t) attends to keys j with 0 <= i - j, and with
// window > 0 also i - j < window (sliding window). Not causal (encoders): every token attends
// to all keys 0 .. pos0 + T - 1.
// softcap > 0: each score (after `scale`) becomes softcap * tanh(score / softcap) before the
// softmax (Gemma-2's attention logit soft-capping).
// With a shared prefix (beam search: the prompt's keys and values, evaluated once for all
// beams): keys 0 .. prefix_len - 1 are rows of k_prefix / v_prefix (kv_dtype too), key
// prefix_len + j is row j of k_cache / v_cache, and token t sits at position
// prefix_len + pos0 + t.
// Paged (a block table, never with a prefix): key j is row table.row(j) of the caches.
struct AttentionArgs {
  float* out; const float* q; const void* k_cache; const void* v_cache; DType kv_dtype;
  int64_t T, n_heads, n_kv_heads, head_dim, pos0; float scale;
  int64_t window = 0; bool causal = true;
  void* workspace = nullptr; size_t workspace_bytes = 0;  // CUDA split-KV partials; the CPU ignores them
  const void* k_prefix = nullptr; const void* v_prefix = nullptr; int64_t prefix_len = 0;
  float softcap = 0;
  BlockTable table = {};
  uint32_t* counters = nullptr; int64_t n_counters = 0;  // CUDA split-KV's zeroed arrival counters; the CPU ignores them
};
void attention_cpu(const AttentionArgs& a, const Exec& e);

namespace attention_op {
enum Role { out, q, k_cache, v_cache, k_prefix, v_prefix, block_table };
enum Param { n_heads, n_kv_heads, head_dim, scale, window, causal, prefix_len, softcap, block_size, table_row };
inline AttentionArgs args(const Step& s) {
  const Node& n = s.node;
  const BlockTable table = n.t[block_table] ? BlockTable{s.data<int32_t>(block_table) + n.i(table_row) * s.t(block_table).cols(), n.i(block_size)} : BlockTable{};
  return {s.rows_of(out), s.rows_of(q), s.data<void>(k_cache), s.data<void>(v_cache), s.t(k_cache).dtype, s.rows,
          n.i(n_heads), n.i(n_kv_heads), n.i(head_dim), s.pos, n.f(scale), n.i(window), n.b(causal), nullptr, 0,
          s.data<void>(k_prefix), s.data<void>(v_prefix), n.i(prefix_len), n.f(softcap), table};
}
inline const OpDef def = [] {
  OpDef d{
      "attention",
      {{"out", Access::Out}, {"q", Access::In}, {"kCache", Access::In}, {"vCache", Access::In},
       {"kPrefix", Access::In, false}, {"vPrefix", Access::In, false}, {"blockTable", Access::In, false, true, true}},
      {{"nHeads", ParamType::Int, true, 0},
       {"nKvHeads", ParamType::Int, true, 0},
       {"headDim", ParamType::Int, true, 0},
       {"scale", ParamType::Float, true, 0},
       {"window", ParamType::Int, false, 0},
       {"causal", ParamType::Bool, false, 1},
       {"prefixLen", ParamType::Int, false, 0},
       {"softcap", ParamType::Float, false, 0},
       {"blockSize", ParamType::Int, false, 0},
       {"tableRow", ParamType::Int, false, 0}},
      [](const Check& c) {
        const Node& n = c.node;
        if (n.i(n_heads) < 1 || n.i(n_kv_heads) < 1 || n.i(n_heads) % n.i(n_kv_heads))
          c.fail("nHeads must be a positive multiple of nKvHeads");
        if (n.i(head_dim) < 1 || n.i(head_dim) > 1024) c.fail("headDim must be 1..1024");
        const int64_t qw = n.i(n_heads) * n.i(head_dim), kvw = n.i(n_kv_heads) * n.i(head_dim);
        c.activations({out, q}, qw);
        c.kv(k_cache);
        c.kv(v_cache);
        c.same_dtype(v_cache, k_cache);
        c.cols(k_cache, kvw);
        c.cols(v_cache, kvw);
        if (c.tensor(k_cache).rows() != c.tensor(v_cache).rows()) c.fail("kCache and vCache must have the same number of rows");
        if (!std::isfinite(n.p[scale])) c.fail("scale must be finite");
        if (n.i(window) < 0) c.fail("window must be >= 0");
        if (n.i(window) > 0 && !n.b(causal)) c.fail("a sliding window needs causal attention");
        if (n.i(prefix_len) < 0) c.fail("prefixLen must be >= 0");
        if (!(n.p[softcap] >= 0)) c.fail("softcap must be >= 0 (0: none)");
        if (n.i(prefix_len) > 0 || c.has(k_prefix) || c.has(v_prefix)) {
          for (int r : {k_prefix, v_prefix}) {
            c.kv(r);
            c.same_dtype(r, k_cache);
            c.cols(r, kvw);
            c.rows(r, n.i(prefix_len));
          }
        }
        check_block_table(c, block_table, k_cache, n.i(block_size), n.i(table_row));
        if (c.has(block_table) && (n.i(prefix_len) > 0 || c.has(k_prefix))) c.fail("a blockTable and a prefix do not go together");
      },
  };
  d.positional = true;
  d.check_run = [](const Node& n, int64_t rows, int64_t pos) {
    if (!n.t[block_table]) return check_context(rows, pos, n.t[k_cache]->rows());
    if (pos < 0) throw Error("E_INVALID_ARG", "graph run: sequence position must be >= 0, got " + std::to_string(pos));
    check_block_run(n, block_table, k_cache, n.i(block_size), n.i(table_row), pos + rows);
  };
  return d;
}();
}  // namespace attention_op

}  // namespace fuselm
