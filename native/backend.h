// The op interface of the CPU backend: one entry point per op, `<op>_cpu(args, exec)`, each
// in native/cpu/<op>.cc beside its plain reference. Args are raw pointers plus sizes; shapes
// are in the comments, row-major, outermost first. The graph (native/graph.cc) validates
// shapes once when it is built and maps tensors to these Args at each step.
#pragma once
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

// cache[pos0 + t, :] = src[t, :]          src f32 [T, W], cache f32 [ctx, W]
struct KvStoreArgs { float* cache; const float* src; int64_t T, W, pos0; };
void kv_store_cpu(const KvStoreArgs& a, const Exec& e);

// Causal attention over a KV cache, online softmax (no T x T matrix), GQA: query head h reads
// KV head h / (n_heads / n_kv_heads). q, out f32 [T, n_heads * hd]; k_cache, v_cache f32
// [ctx, n_kv_heads * hd] holding positions 0 .. pos0 + T - 1. Token t attends to 0 .. pos0 + t.
struct AttentionArgs {
  float* out; const float* q; const float* k_cache; const float* v_cache;
  int64_t T, n_heads, n_kv_heads, head_dim, pos0; float scale;
};
void attention_cpu(const AttentionArgs& a, const Exec& e);

// out[t] = silu(gate[t]) * up[t]           f32 [T, D]; out may alias gate or up
struct SwigluArgs { float* out; const float* gate; const float* up; int64_t T, D; };
void swiglu_cpu(const SwigluArgs& a, const Exec& e);

// out[t, :] = table[ids[t], :] as f32     table [V, D] in f32/f16/bf16/q8_0, ids i32 [T]
// ids are checked against V by the caller (the graph) before the call.
struct EmbeddingArgs { float* out; const void* table; DType dtype; const int32_t* ids; int64_t T, V, D; };
void embedding_cpu(const EmbeddingArgs& a, const Exec& e);

}  // namespace fuselm
