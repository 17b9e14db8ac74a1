// kv_store: copy T rows of new keys or values into the cache at positions pos0 .. pos0 + T - 1.
// The reference copies row by row; the fast path is one memcpy, split across threads in
// chunks of at least 1 MiB when the copy is large (a prefill of many tokens).
#include <algorithm>
#include <cstring>

#include "ops/kv_store.h"

namespace fuselm {

static void kv_store_reference(const KvStoreArgs& a) {
  for (int64_t t = 0; t < a.T; t++)
    for (int64_t i = 0; i < a.W; i++) static_cast<float*>(a.cache)[(a.pos0 + t) * a.W + i] = a.src[t * a.W + i];
}

void kv_store_cpu(const KvStoreArgs& a, const Exec& e) {
  if (a.cache_dtype != DType::F32) throw Error("E_UNSUPPORTED", "kv_store on the CPU: f32 KV caches only");
  if (e.impl == Impl::kReference) return kv_store_reference(a);
  constexpr int64_t kChunk = int64_t(1) << 18;  // floats per task (1 MiB)
  const int64_t n = a.T * a.W;
  float* dst = static_cast<float*>(a.cache) + a.pos0 * a.W;
  e.pool->run((n + kChunk - 1) / kChunk, [&](int64_t task, int) {
    const int64_t i0 = task * kChunk;
    std::memcpy(dst + i0, a.src + i0, size_t(std::min(kChunk, n - i0)) * sizeof(float));
  });
}

FUSELM_CPU_OP(kv_store_op::def, [](const Step& s, const Exec& e) { kv_store_cpu(kv_store_op::args(s), e); });

}  // namespace fuselm
