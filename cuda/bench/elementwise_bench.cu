// Bench cases: bandwidth-bound CUDA ops the other groups leave out (add, swiglu, gelu, rope,
// kv_store, the rope_kv_store fusion, embedding and argmax) at decode-to-prefill row counts of a
// Llama-3-8B layer (hidden 4096, MLP 14336, 32 query / 8 KV heads of 128, vocab 128256). Each
// reports GB/s and its share of the measured copy bandwidth; bytes counted are the rows read
// and written once. No torch peer: the roofline is the comparison. Every op of the op table is
// also timed on the GPU by the case table's bench cases (`fuselm bench kernels --device cuda`,
// a step of the GPU check).
#include <functional>
#include <string>
#include <vector>

#include "bench.h"
#include "ops.h"
#include "ops/add.h"
#include "ops/argmax.h"
#include "ops/embedding.h"
#include "ops/gelu.h"
#include "ops/rope.h"
#include "ops/swiglu.h"

FUSELM_CUDA_NAMESPACE_BEGIN
namespace bench {

namespace {

void run_case(Bench& b, const std::string& kernel, int64_t T, int64_t D, double bytes, const std::function<void()>& launch) {
  const std::vector<Field> shape = {num("T", T), num("D", D)};
  if (!b.wants(kernel + " T=" + std::to_string(T) + " D=" + std::to_string(D))) return;
  try {
    b.record(kernel, shape, b.median_ms([&](int) { launch(); }), bytes, 0);
  } catch (const std::exception& e) {
    b.record_error(kernel, shape, e.what());
  }
}

}  // namespace

void elementwise_cases(Bench& b) {
  const int64_t H = 4096, F = 14336, hd = 128, nq = 32, nkv = 8, V = 128256, ctx = 8192;
  for (int64_t T : b.options().quick ? std::vector<int64_t>{1, 512} : std::vector<int64_t>{1, 64, 512, 4096}) {
    DevBuf a(size_t(T * F) * 4), c(size_t(T * F) * 4), out(size_t(T * F) * 4);
    fill_f32(a.f32(), size_t(T * F), 1, -2.0f, 2.0f);
    fill_f32(c.f32(), size_t(T * F), 2, -2.0f, 2.0f);
    const double f4 = 4.0;
    run_case(b, "add_cuda", T, H, 3 * f4 * double(T * H), [&] { add_cuda({out.f32(), a.f32(), c.f32(), T, H}, nullptr); });
    run_case(b, "swiglu_cuda", T, F, 3 * f4 * double(T * F), [&] { swiglu_cuda({out.f32(), a.f32(), c.f32(), T, F}, nullptr); });
    run_case(b, "gelu_cuda:tanh", T, F, 2 * f4 * double(T * F), [&] { gelu_cuda({out.f32(), a.f32(), T * F, true}, nullptr); });
    // rope of the queries in place; keys rotated into an f16 cache, or stored as they are
    run_case(b, "rope_cuda", T, nq * hd, 2 * f4 * double(T * nq * hd),
             [&] { rope_cuda({a.f32(), T, nq, hd, hd, 100, 500000.0f, 1.0f, false}, nullptr); });
    DevBuf cache(size_t((ctx + T) * nkv * hd) * 2);
    run_case(b, "kv_store_cuda:f16", T, nkv * hd, 6.0 * double(T * nkv * hd),
             [&] { kv_store_cuda({cache.p, DType::F16, a.f32(), T, nkv * hd, ctx}, nullptr); });
    run_case(b, "rope_kv_store_cuda:f16", T, nkv * hd, 6.0 * double(T * nkv * hd),
             [&] { rope_kv_store_cuda({cache.p, DType::F16, a.f32(), T, nkv, hd, hd, ctx, 500000.0f, 1.0f, false}, nullptr); });
  }
  // embedding rows of a bf16 table; argmax over logits rows
  for (int64_t T : b.options().quick ? std::vector<int64_t>{1, 512} : std::vector<int64_t>{1, 8, 512}) {
    DevBuf table(size_t(V * H) * 2), out(size_t(T * H) * 4), ids(size_t(T) * 4), logits(size_t(T * V) * 4), chosen(size_t(T) * 4);
    fill_weights(table.p, DType::BF16, size_t(V * H), 4);
    fill_f32(logits.f32(), size_t(T * V), 5, -10.0f, 10.0f);
    std::vector<int32_t> host(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; t++) host[size_t(t)] = int32_t((t * 7919) % V);
    CUDA_CHECK(cudaMemcpy(ids.p, host.data(), host.size() * 4, cudaMemcpyHostToDevice));
    run_case(b, "embedding_cuda:bf16", T, H, 6.0 * double(T * H), [&] {
      embedding_cuda({out.f32(), table.p, DType::BF16, static_cast<const int32_t*>(ids.p), T, V, H}, nullptr, nullptr);
    });
    const size_t ws_bytes = argmax_cuda_workspace(T, V);
    DevBuf ws(ws_bytes);
    run_case(b, "argmax_cuda", T, V, 4.0 * double(T * V),
             [&] { argmax_cuda({static_cast<int32_t*>(chosen.p), logits.f32(), T, V}, ws.p, ws_bytes, nullptr); });
  }
}

}  // namespace bench
FUSELM_CUDA_NAMESPACE_END
