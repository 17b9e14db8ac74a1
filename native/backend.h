// The op interface of the CPU backend: one entry point per op, `<op>_cpu(args, exec)`, each
// in native/cpu/<op>.cc beside its plain reference. Args are raw pointers plus sizes; shapes
// are in the comments, row-major, outermost first. The graph (native/graph.cc) validates
// shapes once when it is built and maps tensors to these Args at each step.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/cpu_features.h"
#include "tensor.h"
#include "thread_pool.h"

namespace fuselm {

struct Exec {
  ThreadPool* pool;  // never null; size() == 1 means single-threaded
  Impl impl;         // kReference runs the plain scalar reference, single-threaded
};

// out[t, :] = a[t, :] + b[t, :]          f32 [T, D]; out may alias a or b
struct AddArgs { float* out; const float* a; const float* b; int64_t T, D; };
void add_cpu(const AddArgs& a, const Exec& e);

// y[t, n] = sum_k x[t, k] * w[n, k]       x f32 [T, K], w [N, K] in f32/f16/bf16/q8_0, y f32 [T, N]
struct MatmulArgs { float* y; const float* x; const void* w; DType w_dtype; int64_t T, K, N; };
void matmul_cpu(const MatmulArgs& a, const Exec& e);

// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w      f32 x,out [T, D], w [D]; out may alias x
struct RmsNormArgs { float* out; const float* x; const float* w; int64_t T, D; float eps; };
void rms_norm_cpu(const RmsNormArgs& a, const Exec& e);

// In-place rotary position embedding on x [T, n_heads * head_dim]; token t is at position
// pos0 + t. The first n_rot dims of each head rotate by angle pos * freq_scale *
// theta_base^(-2i/n_rot) for pair i. Llama layout pairs (2i, 2i+1); NeoX pairs (i, i + n_rot/2).
struct RopeArgs {
  float* x; int64_t T, n_heads, head_dim, n_rot, pos0; float theta_base, freq_scale; bool neox;
};
void rope_cpu(const RopeArgs& a, const Exec& e);

// cache[pos0 + t, :] = src[t, :] rounded to cache_dtype (f32, f16 or bf16; round to nearest even)
//                                        src f32 [T, W], cache [ctx, W]
struct KvStoreArgs { void* cache; DType cache_dtype; const float* src; int64_t T, W, pos0; };
void kv_store_cpu(const KvStoreArgs& a, const Exec& e);

// Attention over a KV cache, online softmax (no T x T matrix), GQA: query head h reads
// KV head h / (n_heads / n_kv_heads). q, out f32 [T, n_heads * hd]; k_cache, v_cache
// [ctx, n_kv_heads * hd] of kv_dtype (f32, f16 or bf16; widened to f32 as they are read)
// holding positions 0 .. pos0 + T - 1. Causal: token t (position
// i = pos0 + t) attends to keys j with 0 <= i - j, and with window > 0 also i - j < window
// (sliding window). Not causal (encoders): every token attends to all keys 0 .. pos0 + T - 1.
// With a shared prefix (beam search: the prompt's keys and values, evaluated once for all
// beams): keys 0 .. prefix_len - 1 are rows of k_prefix / v_prefix, key prefix_len + j is row j
// of k_cache / v_cache, and token t sits at position prefix_len + pos0 + t.
struct AttentionArgs {
  float* out; const float* q; const void* k_cache; const void* v_cache; DType kv_dtype;
  int64_t T, n_heads, n_kv_heads, head_dim, pos0; float scale;
  int64_t window = 0; bool causal = true;
  void* workspace = nullptr; size_t workspace_bytes = 0;  // CUDA split-KV partials; the CPU ignores them
  const void* k_prefix = nullptr; const void* v_prefix = nullptr; int64_t prefix_len = 0;  // kv_dtype too
};
void attention_cpu(const AttentionArgs& a, const Exec& e);

// out[t] = silu(gate[t]) * up[t]           f32 [T, D]; out may alias gate or up
struct SwigluArgs { float* out; const float* gate; const float* up; int64_t T, D; };
void swiglu_cpu(const SwigluArgs& a, const Exec& e);

// out[t, :] = x[t, :] + bias[:]           f32 x,out [T, D], bias [D]; out may alias x
struct AddBiasArgs { float* out; const float* x; const float* bias; int64_t T, D; };
void add_bias_cpu(const AddBiasArgs& a, const Exec& e);

// out[t] = (x[t] - mean) / sqrt(var + eps) * w + b   f32 x,out [T, D], w,b [D]; out may alias x
struct LayerNormArgs { float* out; const float* x; const float* w; const float* b; int64_t T, D; float eps; };
void layer_norm_cpu(const LayerNormArgs& a, const Exec& e);

// out = gelu(x) elementwise over n f32 values; tanh: GPT-2's tanh approximation
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), else the exact 0.5 x (1 + erf(x / sqrt 2)).
struct GeluArgs { float* out; const float* x; int64_t n; bool tanh_approx; };
void gelu_cpu(const GeluArgs& a, const Exec& e);

// out[c, r] = x[r, col0 + c]   x [R, C], out [Cout, R], col0 + Cout <= C: a column slice
// transposed (the weight layout change of GPT-2's Conv1D at load; col0 splits its fused q/k/v).
// Elements are moved as they are: elem_size 4 (f32) or 2 (f16, bf16).
struct TransposeArgs { void* out; const void* x; int64_t R, C, col0, Cout, elem_size; };
void transpose_cpu(const TransposeArgs& a, const Exec& e);

// out[t, :] = table[ids[t], :] as f32     table [V, D] in f32/f16/bf16/q8_0, ids i32 [T]
// ids are checked against V by the caller (the graph) before the call.
struct EmbeddingArgs { float* out; const void* table; DType dtype; const int32_t* ids; int64_t T, V, D; };
void embedding_cpu(const EmbeddingArgs& a, const Exec& e);

// ids[t] = the index of the largest of x[t, 0 .. V-1]: the lowest on ties, NaN never wins
// (a row of NaN only gives 0).    x f32 [T, V], ids i32 [T]
struct ArgmaxArgs { int32_t* ids; const float* x; int64_t T, V; };
void argmax_cpu(const ArgmaxArgs& a, const Exec& e);

}  // namespace fuselm
