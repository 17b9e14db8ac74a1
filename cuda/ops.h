// The CUDA backend's launchers: `<op>_cuda(args, stream)` in cuda/<op>.cu beside its kernels
// and registered there against the op table (FUSELM_CUDA_OP), with the same Args structs as
// the CPU ops but every pointer a DEVICE pointer. A single-kernel op declares its launcher in
// its own native/ops/<op>.h; this header declares the ops made of several kernels (matmul,
// attention), the CUDA-only fusions the graph rewrites adjacent ops into, and shared helpers.
// Launches are asynchronous on `stream` (the emulator runs them to completion); bad launches
// throw fuselm::Error.
#pragma once
#include "common.cuh"
#include "cuda_op.h"
#include "ops/attention.h"
#include "ops/kv_store.h"
#include "ops/matmul.h"

FUSELM_CUDA_NAMESPACE_BEGIN

// ---- matmul: y[t, n] = sum_k x[t, k] * w[n, k] (MatmulArgs), w f32/f16/bf16 or a block format [N, K]
// matmul_cuda picks the kernel: the GEMV for a few rows (decode), a GEMM for many (prefill).
// `workspace` (matmul_cuda_workspace bytes for up to max_T rows, 256-byte aligned) holds the
// int8 kernels' quantized activations (cuda/quantize_x.cuh).
size_t matmul_cuda_workspace(DType w_dtype, int64_t max_T, int64_t K);
// Whether matmul_cuda takes x [T, K] quantized into the workspace for the GEMV's T (T <= 8,
// every token there, quantize_x.cuh's layout) with w_dtype weights, so that a kernel writing x
// may write its quantized copy too (add_norm_cuda's quantize_to).
bool matmul_gemv_takes_quantized_x(DType w_dtype, int64_t T);  // cuda/matmul.cu
// qx (optional): what the workspace holds (QuantizedX, cuda_op.h), used and updated.
void matmul_cuda(const MatmulArgs& a, void* workspace, cudaStream_t stream, QuantizedX* qx = nullptr);  // cuda/matmul.cu
// 1 to 3 matmuls on the same x (same T, K and weight type; no y overlapping x) as one launch
// where the dp4a GEMV takes them (T <= 8, a block format); false, and nothing run, otherwise.
bool matmul_group_cuda(const MatmulArgs* m, int count, void* workspace, cudaStream_t stream, QuantizedX* qx = nullptr);
// out = swiglu(gate matmul, up matmul) (same x; see matmul_swiglu_gemv_quant_cuda) as one launch
// where the dp4a GEMV takes them; false, and nothing run, otherwise.
bool matmul_swiglu_cuda(const MatmulArgs& gate, const MatmulArgs& up, float* out, void* workspace, cudaStream_t stream,
                        QuantizedX* qx = nullptr);
// Decode-shaped matmul (a GEMV per token).
void matmul_gemv_cuda(const MatmulArgs& a, cudaStream_t stream);  // cuda/gemv.cu
// Prefill: f16/bf16 weights on tensor cores (mma m16n8k16, x rounded to the weight's type as it
// is staged), f32 weights on CUDA cores.
void matmul_gemm_cuda(const MatmulArgs& a, cudaStream_t stream);  // cuda/gemm.cu
// Prefill with q8_0 weights: W8A8 on tensor cores (mma m16n8k32 s8, int32 accumulate), x
// quantized per block of 32 into `workspace`, the scales applied in the epilogue.
// x_ready: the workspace already holds x quantized (a matmul on the same x just ran).
void matmul_gemm_q8_0_cuda(const MatmulArgs& a, void* workspace, cudaStream_t stream, bool x_ready = false);  // cuda/gemm_q8_0.cu
// Decode with weights in a GGUF block format (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k ..
// q6_k, iq4_xs): x quantized to int8 per block of 32 into `workspace`, dp4a dot products, the
// weights read once per 8 tokens.
bool gemv_quant_supports(DType w_dtype);
// x_ready: as for matmul_gemm_q8_0_cuda (T <= 8 only: more tokens are quantized 8 at a time).
void matmul_gemv_quant_cuda(const MatmulArgs& a, void* workspace, cudaStream_t stream, bool x_ready = false);  // cuda/gemv_quant.cu
// The same for 1 to 3 matmuls on the same x (same T, K and weight type) in one launch, x
// quantized once: the q, k and v projections; gate and up.
void matmul_gemv_quant_group_cuda(const MatmulArgs* m, int count, void* workspace, cudaStream_t stream, bool x_ready = false);
// Gate and up (same x, T, K, weight type and N) and SwiGLU in one launch: out [T, N] =
// swiglu(x gate^T, x up^T), neither gate.y nor up.y written; out must not overlap x.
void matmul_swiglu_gemv_quant_cuda(const MatmulArgs& gate, const MatmulArgs& up, float* out, void* workspace,
                                   cudaStream_t stream, bool x_ready = false);
// Prefill with those formats but q8_0: weight tiles dequantized to f16 in shared memory, mma
// m16n8k16 (x rounded to f16), f32 accumulate.
bool gemm_quant_supports(DType w_dtype);
void matmul_gemm_quant_cuda(const MatmulArgs& a, cudaStream_t stream);  // cuda/gemm_quant.cu

// ---- KV cache and attention ------------------------------------------------------------------
// The KV cache holds f32, f16 or bf16 (k and v alike); f16 halves its reads in decode.
// AttentionArgs' workspace: scratch for split-KV partials (attention_cuda_workspace bytes for
// the graph's largest T and the caches' ctx + prefix_len keys).
size_t attention_cuda_workspace(int64_t max_T, int64_t ctx, int64_t n_heads, int64_t head_dim);
// AttentionArgs' counters: how many zeroed u32 split-KV needs (0: it never splits) for calls of
// up to max_T rows over ctx keys; it leaves them zero after each launch.
int64_t attention_cuda_counters(int64_t max_T, int64_t ctx, int64_t n_heads);
// Picks FA2 for prefill where it applies, else the tiled kernel for prefill, else split-KV.
void attention_cuda(const AttentionArgs& a, cudaStream_t stream);  // cuda/attention.cu
// Prefill in the FlashAttention-2 manner: tensor cores, cp.async K/V tiles in 2 or 3 stages,
// online softmax. f16/bf16 caches, head_dim 64, 80, 96, 128 or 256, no shared prefix.
bool attention_fa2_supports(const AttentionArgs& a);
// stages: 0 picks the most the device's shared memory per block allows (3, or 2); the tests ask for each.
void attention_fa2_cuda(const AttentionArgs& a, cudaStream_t stream, int stages = 0);  // cuda/attention_fa2.cu
// Prefill for the rest (f32 caches, other head dims up to 256): f32 math on CUDA cores, each
// K/V tile in shared memory serving 32 queries. No shared prefix.
bool attention_tiled_supports(const AttentionArgs& a);
void attention_tiled_cuda(const AttentionArgs& a, cudaStream_t stream);  // cuda/attention_tiled.cu
// Any shape (decode first): the keys of each (token, head) split over several blocks, the
// partials merged by log-sum-exp. f32/f16/bf16 caches, head_dim up to 256.
void attention_split_kv_cuda(const AttentionArgs& a, cudaStream_t stream);  // cuda/attention_split_kv.cu

// ---- fusions ---------------------------------------------------------------------------------
// The residual add fused into the next norm, one pass: x[t] += r[t]; out[t] = norm(x[t]).
// b null: RMSNorm with weight w; else LayerNorm with weight w and bias b. out must not alias x.
// quantize_to (optional, D % 32 == 0): a matmul workspace that gets out quantized to int8 as
// quantize_x_q8_cuda would write it (bit for bit), so the matmuls on out skip that launch.
struct AddNormArgs {
  float* out; float* x; const float* r; const float* w; const float* b; int64_t T, D; float eps;
  void* quantize_to = nullptr;
};
void add_norm_cuda(const AddNormArgs& a, cudaStream_t stream);      // cuda/add_norm.cu
// RoPE fused into the store of the keys: cache[pos0 + t, :] = rope(src[t, :]) rounded to
// cache_dtype, src unchanged (the rotation as rope_cuda's, RopeArgs' parameters), one pass
// instead of a rope pass over src and a store pass. The CUDA graph uses it for rope(k) followed
// by kv_store(k) when nothing reads the rotated k afterwards.
struct RopeKvStoreArgs {
  void* cache; DType cache_dtype; const float* src;
  int64_t T, n_heads, head_dim, n_rot, pos0; float theta_base, freq_scale; bool neox;
  const float* freq_factors = nullptr;
  float mscale = 1;
};
void rope_kv_store_cuda(const RopeKvStoreArgs& a, cudaStream_t stream);  // cuda/rope_kv_store.cu

// Grid-stride launch width for elementwise kernels: enough blocks to fill any current GPU,
// few enough that each thread does several vectors.
inline unsigned elementwise_blocks(int64_t work_items, unsigned threads) {
  const int64_t b = (work_items + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : b > 8192 ? 8192 : b);
}

FUSELM_CUDA_NAMESPACE_END
