// Bench cases: attention_cuda at torch_peers.py's SDPA shapes.
// Prefill: bf16 K/V, head_dim D = 64 and 128, H = 2048 / D heads (no GQA), sequence S = 1024
// .. 16384 (--quick: 1024, 4096), batch B = max(1, 16384 / S), causal and not; fuselm's op has
// no batch, so one timed call runs the B sequences one after another (each its own slice of
// q, K/V and out), and FLOPs are torch's 4 B H S^2 D (halved when causal). q and out are f32
// [S, H * D]; the caches hold the S positions (pos0 = 0, T = S).
// Decode: one token, 32 query heads over 8 KV heads (GQA), D = 128, bf16 caches of ctx =
// 1024 .. 65536 positions (--quick: 4096, 32768); bytes counted are the K and V caches read
// once (2 x 8 x ctx x 128 x 2), the decode roofline; cache sets rotate past the L2 cache. One
// launch: the last chunk block of each (token, head group) merges the partials.
// The prefills that ran split-KV before: hd 256 with bf16 caches (FA2's 32-key tiles) and f32
// caches of hd 128 and 256 (the tiled kernel), causal, 2048 / D heads, S = 1024 and 4096
// (--quick: 1024); each beside split-KV alone on the same call at S = 1024 (the old path,
// "attention_split_kv_cuda:prefill"), FLOPs as above.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "bench.h"
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN
namespace bench {

static void prefill_cases(Bench& b) {
  const std::vector<int64_t> seqs = b.options().quick ? std::vector<int64_t>{1024, 4096}
                                                      : std::vector<int64_t>{1024, 2048, 4096, 8192, 16384};
  for (int64_t D : {int64_t(64), int64_t(128)}) {
    for (int64_t S : seqs) {
      const int64_t H = 2048 / D, B = S >= 16384 ? 1 : 16384 / S, W = H * D;
      for (bool causal : {false, true}) {
        const std::vector<Field> shape = {num("B", B), num("H", H), num("S", S), num("D", D), flag("causal", causal),
                                          text("kv_dtype", "bf16")};
        const std::string label = "attention_cuda prefill D=" + std::to_string(D) + " S=" + std::to_string(S) +
                                  (causal ? " causal" : "");
        if (!b.wants(label)) continue;
        try {
          DevBuf q(size_t(B * S * W) * 4), out(size_t(B * S * W) * 4), k(size_t(B * S * W) * 2), v(size_t(B * S * W) * 2);
          fill_f32(q.f32(), size_t(B * S * W), 31, -1.0f, 1.0f);
          fill_half(k.p, size_t(B * S * W), true, 32, -1.0f, 1.0f);
          fill_half(v.p, size_t(B * S * W), true, 33, -1.0f, 1.0f);
          const size_t ws_bytes = attention_cuda_workspace(S, S, H, D);
          DevBuf workspace(ws_bytes > 0 ? ws_bytes : 256);
          const double ms = b.median_ms([&](int) {
            for (int64_t i = 0; i < B; i++) {
              AttentionArgs a{};
              a.out = out.f32() + i * S * W;
              a.q = q.f32() + i * S * W;
              a.k_cache = static_cast<const uint16_t*>(k.p) + i * S * W;
              a.v_cache = static_cast<const uint16_t*>(v.p) + i * S * W;
              a.kv_dtype = DType::BF16;
              a.T = S, a.n_heads = H, a.n_kv_heads = H, a.head_dim = D, a.pos0 = 0;
              a.scale = 1.0f / std::sqrt(float(D));
              a.window = 0, a.causal = causal;
              a.workspace = workspace.p, a.workspace_bytes = ws_bytes;
              attention_cuda(a, nullptr);
            }
          });
          const double flops = 4.0 * double(B) * double(H) * double(S) * double(S) * double(D) / (causal ? 2 : 1);
          b.record("attention_cuda:prefill", shape, ms, 0, flops);
        } catch (const std::exception& e) {
          b.record_error("attention_cuda:prefill", shape, e.what());
        }
      }
    }
  }
}

static void decode_cases(Bench& b) {
  const int64_t Hq = 32, Hk = 8, D = 128;
  const std::vector<int64_t> ctxs = b.options().quick ? std::vector<int64_t>{4096, 32768}
                                                      : std::vector<int64_t>{1024, 4096, 16384, 65536};
  for (int64_t ctx : ctxs) {
    const std::vector<Field> shape = {num("ctx", ctx), num("Hq", Hq), num("Hk", Hk), num("D", D),
                                      text("kv_dtype", "bf16")};
    if (!b.wants("attention_cuda decode ctx=" + std::to_string(ctx))) continue;
    try {
      const size_t cache_values = size_t(ctx * Hk * D), kv_bytes = 2 * cache_values * 2;
      const int sets = b.rotations(kv_bytes);
      std::vector<std::unique_ptr<DevBuf>> ks, vs;
      for (int i = 0; i < sets; i++) {
        ks.push_back(std::make_unique<DevBuf>(cache_values * 2));
        vs.push_back(std::make_unique<DevBuf>(cache_values * 2));
        fill_half(ks.back()->p, cache_values, true, 40 + uint64_t(i), -1.0f, 1.0f);
        fill_half(vs.back()->p, cache_values, true, 140 + uint64_t(i), -1.0f, 1.0f);
      }
      DevBuf q(size_t(Hq * D) * 4), out(size_t(Hq * D) * 4);
      fill_f32(q.f32(), size_t(Hq * D), 41, -1.0f, 1.0f);
      const size_t ws_bytes = attention_cuda_workspace(1, ctx, Hq, D);
      DevBuf workspace(ws_bytes > 0 ? ws_bytes : 256);
      const int64_t n_counters = attention_cuda_counters(1, ctx, Hq);
      DevBuf counters(size_t(n_counters > 0 ? n_counters : 1) * 4);
      CUDA_CHECK(cudaMemset(counters.p, 0, counters.bytes));  // split-KV leaves them zero after each call
      const double ms = b.median_ms([&](int rep) {
        AttentionArgs a{};
        a.out = out.f32(), a.q = q.f32();
        a.k_cache = ks[size_t(rep % sets)]->p, a.v_cache = vs[size_t(rep % sets)]->p;
        a.kv_dtype = DType::BF16;
        a.T = 1, a.n_heads = Hq, a.n_kv_heads = Hk, a.head_dim = D, a.pos0 = ctx - 1;
        a.scale = 1.0f / std::sqrt(float(D));
        a.workspace = workspace.p, a.workspace_bytes = ws_bytes;
        a.counters = static_cast<uint32_t*>(counters.p), a.n_counters = n_counters;
        attention_cuda(a, nullptr);
      });
      b.record("attention_cuda:decode", shape, ms, double(kv_bytes), 0);
    } catch (const std::exception& e) {
      b.record_error("attention_cuda:decode", shape, e.what());
    }
  }
}

static void other_prefill_cases(Bench& b) {
  struct Shape {
    int64_t D;
    DType dt;
  };
  const std::vector<int64_t> seqs = b.options().quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{1024, 4096};
  for (const Shape sh : {Shape{256, DType::BF16}, Shape{128, DType::F32}, Shape{256, DType::F32}}) {
    for (int64_t S : seqs) {
      const int64_t H = 2048 / sh.D, W = H * sh.D, esize = sh.dt == DType::F32 ? 4 : 2;
      const std::vector<Field> shape = {num("H", H), num("S", S), num("D", sh.D), flag("causal", true),
                                        text("kv_dtype", dtype_name(sh.dt))};
      const std::string label = "attention_cuda prefill D=" + std::to_string(sh.D) + " S=" + std::to_string(S) +
                                " causal kv=" + dtype_name(sh.dt);
      if (!b.wants(label)) continue;
      const double flops = 2.0 * double(H) * double(S) * double(S) * double(sh.D);
      for (bool split : {false, true}) {
        if (split && S > 1024) continue;  // the old path, slow: one size is enough to compare
        const char* kernel = split ? "attention_split_kv_cuda:prefill" : "attention_cuda:prefill";
        try {
          DevBuf q(size_t(S * W) * 4), out(size_t(S * W) * 4), k(size_t(S * W * esize)), v(size_t(S * W * esize));
          fill_f32(q.f32(), size_t(S * W), 51, -1.0f, 1.0f);
          if (sh.dt == DType::F32) {
            fill_f32(k.f32(), size_t(S * W), 52, -1.0f, 1.0f);
            fill_f32(v.f32(), size_t(S * W), 53, -1.0f, 1.0f);
          } else {
            fill_half(k.p, size_t(S * W), true, 52, -1.0f, 1.0f);
            fill_half(v.p, size_t(S * W), true, 53, -1.0f, 1.0f);
          }
          const size_t ws_bytes = attention_cuda_workspace(S, S, H, sh.D);
          DevBuf workspace(ws_bytes > 0 ? ws_bytes : 256);
          const double ms = b.median_ms([&](int) {
            AttentionArgs a{};
            a.out = out.f32(), a.q = q.f32(), a.k_cache = k.p, a.v_cache = v.p, a.kv_dtype = sh.dt;
            a.T = S, a.n_heads = H, a.n_kv_heads = H, a.head_dim = sh.D, a.pos0 = 0;
            a.scale = 1.0f / std::sqrt(float(sh.D));
            a.workspace = workspace.p, a.workspace_bytes = ws_bytes;
            if (split)
              attention_split_kv_cuda(a, nullptr);
            else
              attention_cuda(a, nullptr);
          });
          b.record(kernel, shape, ms, 0, flops);
        } catch (const std::exception& e) {
          b.record_error(kernel, shape, e.what());
        }
      }
    }
  }
}

void attention_cases(Bench& b) {
  prefill_cases(b);
  other_prefill_cases(b);
  decode_cases(b);
}

}  // namespace bench
FUSELM_CUDA_NAMESPACE_END
