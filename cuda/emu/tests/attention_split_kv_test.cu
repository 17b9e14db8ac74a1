// Proves: attention_split_kv_cuda (cuda/attention_split_kv.cu) equals attention_cpu's reference
// (scores and softmax in double) run on the same caches widened to f32, for f32, f16 and bf16
// caches: decode (T = 1) over 1100 keys (several chunks, merged by log-sum-exp) and over a
// short context (one chunk, written directly); prefill T > 1 with pos0 > 0 and several chunks,
// and (f32) 130 tokens whose early rows leave empty chunks; head_dim 8, 64, 80, 128, 256, 72
// and 5 (the last one value per lane), and 64 with the caches one element off 16-byte alignment
// (the one-value path); MHA and GQA with groups of 2, 3, 4 and 8 query heads per KV head;
// a sliding window; non-causal; a large scale with a dominant key every 300, so the chunks'
// maxima differ by dozens and the merge's rescaling carries the result. Cache rows past the
// visible ones and the workspace hold NaN, so reading a masked key or a partial that was never
// written shows. Each case runs twice on the same counters (the last chunk block of a row
// merges, found by an atomic counter): both runs give the same bits and the counters are zero
// after each. A workspace one byte short of a call's need, or counters too few, throws
// E_INVALID_ARG.
//
// Tolerance: the kernel computes in f32 and the reference in double on identical (widened)
// cache values, so the cache dtype does not enter: the error is f32 rounding of hd-term dot
// products, of exp2 of scores up to |s| ~ 60 (relative error ~|s| * 6e-8) and of sums over
// ~1100 keys. Measured under the emulator: normalized error <= 4e-7, max abs <= 6e-7 on outputs
// of magnitude <= 1; the bounds, 2e-6 and 5e-6, leave room for the GPU's contracted FMAs and
// its exp2f (a few ulp) without hiding a wrong mask or merge, which errs by 1e-2 or more.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "parity.h"

namespace emu_tests {

namespace {

using fuselm::DType;

struct Case {
  const char* what;
  int64_t T, pos0, n_heads, n_kv_heads, hd;
  int64_t window = 0;
  bool causal = true;
  float scale = 0;        // 0: 1 / sqrt(hd)
  bool dominant = false;  // one key in 300 scores far above the rest, more so in later chunks
  int misalign = 0;       // cache pointers this many elements past 16-byte alignment
  int64_t prefix = 0;     // keys 0 .. prefix - 1 passed as a shared prefix (beam search), the rest as the cache
};

size_t elem_bytes(DType dt) { return dt == DType::F32 ? 4 : 2; }

void run_case(Parity& par, Rng& rng, DType dt, const Case& c) {
  const int64_t ctx = c.pos0 + c.T + 3;  // 3 rows past the visible keys, NaN
  const int64_t W = c.n_kv_heads * c.hd, Q = c.n_heads * c.hd;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> q = random_floats(rng, size_t(c.T * Q), -1.0f, 1.0f);
  std::vector<float> k = random_floats(rng, size_t(ctx * W), -1.0f, 1.0f);
  std::vector<float> v = random_floats(rng, size_t(ctx * W), -1.0f, 1.0f);
  if (c.dominant)  // key j = 17 + 300 n is (2 + n) q: score ~(2 + n) |q|^2 scale, each chunk's max far above the last
    for (int64_t j = 17; j < c.pos0 + c.T; j += 300)
      for (int64_t i = 0; i < W; i++) k[size_t(j * W + i)] = float(2 + j / 300) * q[size_t(i % Q)];
  for (int64_t i = (c.pos0 + c.T) * W; i < ctx * W; i++) k[size_t(i)] = v[size_t(i)] = nan;

  // the caches in dt (bytes, `misalign` elements in front) and widened back to f32 for the reference
  const size_t eb = elem_bytes(dt), pad = size_t(c.misalign) * eb;
  std::vector<uint8_t> kb(pad + size_t(ctx * W) * eb), vb(kb.size());
  for (size_t i = 0; i < size_t(ctx * W); i++)
    for (int which = 0; which < 2; which++) {
      std::vector<float>& f = which ? v : k;
      uint8_t* dst = (which ? vb : kb).data() + pad + i * eb;
      if (dt == DType::F32) {
        std::memcpy(dst, &f[i], 4);
      } else {
        const uint16_t h = dt == DType::F16 ? fuselm::f32_to_f16(f[i]) : fuselm::f32_to_bf16(f[i]);
        std::memcpy(dst, &h, 2);
        f[i] = dt == DType::F16 ? fuselm::f16_to_f32(h) : fuselm::bf16_to_f32(h);
      }
    }

  const float scale = c.scale > 0 ? c.scale : 1.0f / std::sqrt(float(c.hd));
  std::vector<float> want(size_t(c.T * Q));
  fuselm::attention_cpu({want.data(), q.data(), k.data(), v.data(), DType::F32, c.T, c.n_heads, c.n_kv_heads, c.hd, c.pos0, scale,
                         c.window, c.causal},
                        ref_exec());

  const size_t ws_bytes = fuselm::attention_cuda_workspace(c.T, ctx, c.n_heads, c.hd);
  const int64_t n_counters = fuselm::attention_cuda_counters(c.T, ctx, c.n_heads);
  CHECK_MSG((n_counters > 0) == (ws_bytes > 0), "counters exactly when partials");
  DeviceBuffer<float> dq(q), dout(want.size()), dws(std::vector<float>(ws_bytes / 4 + 1, nan));
  DeviceBuffer<uint32_t> dcounters(size_t(n_counters) + 1);  // zeroed
  // with a prefix, its rows move to buffers of their own and the cache starts at row `prefix`
  const size_t split = pad + size_t(c.prefix * W) * eb;
  auto part = [&](const std::vector<uint8_t>& b, bool head) {
    std::vector<uint8_t> out(head ? b.begin() : b.begin() + long(split) - long(pad), head ? b.begin() + long(split) : b.end());
    if (!head) std::fill(out.begin(), out.begin() + long(pad), uint8_t(0));
    return out;
  };
  DeviceBuffer<uint8_t> dk(c.prefix ? part(kb, false) : kb), dv(c.prefix ? part(vb, false) : vb);
  DeviceBuffer<uint8_t> dkp(c.prefix ? part(kb, true) : std::vector<uint8_t>(1)), dvp(c.prefix ? part(vb, true) : std::vector<uint8_t>(1));
  fuselm::AttentionArgs a{dout.p, dq.p, dk.p + pad, dv.p + pad, dt, c.T, c.n_heads, c.n_kv_heads, c.hd, c.pos0 - c.prefix,
                              scale, c.window, c.causal, dws.p, ws_bytes};
  a.counters = dcounters.p, a.n_counters = n_counters;
  if (c.prefix) a.k_prefix = dkp.p + pad, a.v_prefix = dvp.p + pad, a.prefix_len = c.prefix;
  const std::string what = std::string(fuselm::dtype_name(dt)) + " " + c.what;
  std::vector<float> first;
  for (int run = 0; run < 2; run++) {
    fuselm::attention_split_kv_cuda(a, nullptr);
    const std::vector<float> got = dout.download();
    for (uint32_t n : dcounters.download()) CHECK_MSG(n == 0, what + ": a counter left at " + std::to_string(n));
    if (run == 0) {
      par.check(what, got.data(), want.data(), want.size());
      first = got;
    } else {
      CHECK_MSG(std::memcmp(got.data(), first.data(), got.size() * 4) == 0, what + ": the second run differs");
    }
  }
}

void split_kv_cases(DType dt) {
  Rng rng(0xa77e + uint64_t(dt));
  Parity par(2e-6, 5e-6);
  const Case cases[] = {
      {"decode 1100 keys, GQA 4/1, hd 128", 1, 1099, 4, 1, 128},
      {"decode 1100 keys, MQA 8/1, hd 64", 1, 1099, 8, 1, 64},
      {"decode 1100 keys, MHA 2/2, hd 256", 1, 1099, 2, 2, 256},
      {"decode short, MHA 4/4, hd 64", 1, 20, 4, 4, 64},
      {"decode short, GQA 6/2, hd 80", 1, 40, 6, 2, 80},
      {"prefill T=7 pos0=0, GQA 6/2, hd 80", 7, 0, 6, 2, 80},
      {"prefill T=5 pos0=600 (9 chunks), GQA 2/1, hd 256", 5, 600, 2, 1, 256},
            {"window 64, T=3 pos0=300, GQA 8/4, hd 8", 3, 300, 8, 4, 8, 64},
      {"window 500 decode pos0=1099, MHA 2/2, hd 64", 1, 1099, 2, 2, 64, 500},
      {"non-causal T=9 pos0=0, MHA 3/3, hd 64", 9, 0, 3, 3, 64, 0, false},
      {"non-causal T=2 pos0=10, MHA 2/2, hd 5", 2, 10, 2, 2, 5, 0, false},
      {"hd 72, T=2 pos0=30, GQA 4/2", 2, 30, 4, 2, 72},
      {"hd 5 decode 1100 keys, MHA 3/3", 1, 1099, 3, 3, 5},
      {"hd 64 caches misaligned, decode 1100 keys, GQA 4/2", 1, 1099, 4, 2, 64, 0, true, 0, false, 1},
      {"large scale, dominant keys, decode 1100 keys, GQA 4/1, hd 64", 1, 1099, 4, 1, 64, 0, true, 2.0f, true},
      {"large scale, T=2 pos0=1000, MHA 1/1, hd 128", 2, 1000, 1, 1, 128, 0, true, 0.5f, true},
      // a shared prefix (beam search): the same attention with keys split between two buffers
      {"prefix 600 of 1100 keys, decode, GQA 4/1, hd 128", 1, 1099, 4, 1, 128, 0, true, 0, false, 0, 600},
      {"prefix 333, T=5 pos0=600, GQA 2/1, hd 64", 5, 600, 2, 1, 64, 0, true, 0, false, 0, 333},
      {"prefix 17, window 64 into it, T=3 pos0=40, GQA 8/4, hd 8", 3, 40, 8, 4, 8, 64, true, 0, false, 0, 17},
      {"prefix 500, hd 5 (one value a lane), decode 1100 keys", 1, 1099, 3, 3, 5, 0, true, 0, false, 0, 500},
  };
  for (const Case& c : cases) run_case(par, rng, dt, c);
  // Many tokens: 2 chunks of 65 keys, and the range of each of the first 65 rows ends before
  // the second chunk begins. The chunking does not depend on the cache type, and this case is
  // the slowest to emulate (260 blocks): f32 only.
  if (dt == DType::F32) run_case(par, rng, dt, {"prefill T=130 pos0=0 (empty chunks), MHA 1/1, hd 8", 130, 0, 1, 1, 8});
  par.report();
}

}  // namespace

EMU_TEST(attention_split_kv_f32_parity) { split_kv_cases(DType::F32); }
EMU_TEST(attention_split_kv_f16_parity) { split_kv_cases(DType::F16); }
EMU_TEST(attention_split_kv_bf16_parity) { split_kv_cases(DType::BF16); }

// A call whose partials do not fit the workspace, or without enough counters, throws instead of
// writing past them; what attention_cuda_workspace and attention_cuda_counters give for the
// call's T and context is enough.
EMU_TEST(attention_split_kv_workspace_too_small) {
  const int64_t T = 1, pos0 = 1099, ctx = pos0 + T, H = 4, hd = 64;
  const size_t need = fuselm::attention_cuda_workspace(T, ctx, H, hd);
  CHECK_MSG(need > 0, "1100 keys must split into several chunks");
  DeviceBuffer<float> q(size_t(T * H * hd)), out(size_t(T * H * hd)), k(size_t(ctx * H * hd)), v(size_t(ctx * H * hd));
  const int64_t n_counters = fuselm::attention_cuda_counters(T, ctx, H);
  CHECK_MSG(n_counters == T * H, "one counter per (token, head): " + std::to_string(n_counters));
  DeviceBuffer<uint8_t> ws(need);
  DeviceBuffer<uint32_t> counters{size_t(n_counters)};
  fuselm::AttentionArgs a{out.p, q.p, k.p, v.p, DType::F32, T, H, H, hd, pos0, 0.125f};
  a.workspace = ws.p;
  a.counters = counters.p;
  const auto throws = [&](const char* word, const std::string& what) {
    bool threw = false;
    try {
      fuselm::attention_split_kv_cuda(a, nullptr);
    } catch (const fuselm::Error& e) {
      CHECK_MSG(e.code == "E_INVALID_ARG", e.code + ": " + e.what());
      CHECK_MSG(std::string(e.what()).find(word) != std::string::npos, e.what());
      threw = true;
      note(std::string("threw: ") + e.what());
    }
    CHECK_MSG(threw, what + " did not throw");
  };
  a.workspace_bytes = need - 1, a.n_counters = n_counters;
  throws("workspace", "a workspace one byte short");
  a.workspace_bytes = need, a.n_counters = n_counters - 1;
  throws("counters", "one counter short");
  a.n_counters = n_counters;
  fuselm::attention_split_kv_cuda(a, nullptr);  // enough: runs
}

}  // namespace emu_tests
