// attention: the dispatcher of the CUDA attention kernels (AttentionArgs, native/ops/attention.h).
// Prefill of enough query rows runs FlashAttention-2 style on tensor cores
// (cuda/attention_fa2.cu) where it applies — f16/bf16 caches and the head dims it is built
// for (64, 80, 96, 128, 256); the other prefills (f32 caches, other head dims) run the tiled
// f32 kernel (cuda/attention_tiled.cu), which still reuses each K/V tile over 32 queries;
// decode, a shared prefix and the rest run split-KV (cuda/attention_split_kv.cu), which takes
// any shape and cache dtype.
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

// Below this many query rows an FA2 block (128 rows) or a tiled one (32) would be mostly
// empty, while split-KV still spreads the keys over the whole GPU.
constexpr int64_t kPrefillMinRows = 16;

void attention_cuda(const AttentionArgs& a, cudaStream_t stream) {
  if (a.T >= kPrefillMinRows && attention_fa2_supports(a))
    attention_fa2_cuda(a, stream);
  else if (a.T >= kPrefillMinRows && attention_tiled_supports(a))
    attention_tiled_cuda(a, stream);
  else
    attention_split_kv_cuda(a, stream);
}

FUSELM_CUDA_OP(
    attention_op::def,
    [](const Step& s, const CudaExec& x) {
      AttentionArgs a = attention_op::args(s);
      a.workspace = x.workspace;
      a.workspace_bytes = x.workspace_bytes;
      a.counters = x.counters, a.n_counters = x.n_counters;
      attention_cuda(a, x.stream);
    },
    [](const Node& n, int64_t max_rows) {
      using namespace attention_op;
      return attention_cuda_workspace(max_rows, n.t[k_cache]->rows() + n.i(prefix_len), n.i(n_heads), n.i(head_dim));
    },
    [](const Node& n, int64_t max_rows) {
      using namespace attention_op;
      return attention_cuda_counters(max_rows, n.t[k_cache]->rows() + n.i(prefix_len), n.i(n_heads));
    });

FUSELM_CUDA_NAMESPACE_END
