// attention: the dispatcher of the CUDA attention kernels (AttentionArgs, native/backend.h).
// Prefill of enough query rows runs FlashAttention-2 style on tensor cores
// (cuda/attention_fa2.cu) where it applies — f16/bf16 caches and the head dims it is built
// for; everything else, decode above all, runs split-KV (cuda/attention_split_kv.cu), which
// takes any shape and cache dtype.
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

// Below this many query rows an FA2 block (64 rows) would be mostly empty, while split-KV
// still spreads the keys over the whole GPU.
constexpr int64_t kFa2MinRows = 16;

void attention_cuda(const AttentionArgs& a, cudaStream_t stream) {
  if (a.T >= kFa2MinRows && attention_fa2_supports(a))
    attention_fa2_cuda(a, stream);
  else
    attention_split_kv_cuda(a, stream);
}

FUSELM_CUDA_NAMESPACE_END
