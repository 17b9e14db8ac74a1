// Proves: attention_fa2_cuda (cuda/attention_fa2.cu) equals attention_cpu's reference (double
// scores and a plain softmax) on the same K/V caches widened from f16/bf16 to f32, for head
// dims 64, 80, 96, 128 and 256 (its 32-key tiles), f16 and bf16 caches, MHA and GQA (8 query
// heads on 2 KV heads, 4 on 1), causal from position 0 and after a prefix already in the cache
// (pos0 > 0), a sliding window, non-causal, soft-capped scores (with a window, non-causal, at
// hd 256), T = 1, T and key counts that are not multiples of the 128-row query tiles and the
// key tiles, and several key tiles (the online softmax's rescaling and the three-stage loads,
// 5 key tiles reusing the first stages), each with 2 and 3 stages (bit-identical). Cache rows
// past the last position hold NaN: reading them anywhere (even under a zero weight) would show.
// And: attention_fa2_supports() takes f16/bf16 caches of those head dims (soft-capped too) and rejects f32
// caches, head_dim 48, a misaligned cache and a head count not divisible by the KV heads.
//
// Tolerances: the reference sees q in f32, the kernel rounds q to the cache's 16-bit type (unit
// roundoff u = 2^-11 for f16, 2^-8 for bf16) for Q K^T, and rounds the softmax weights P to 16
// bits for P V (its sum taken of the rounded weights, so they still sum to 1). Each output is a
// weighted mean of V values in [-1, 1] whose weights are off by about u relative, so its error
// is a few u times its magnitude: the normalized error is held to 2u and the largest absolute
// error to 4u (outputs are at most 1 in size); f32 accumulation adds only ~1e-6.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "parity.h"

namespace emu_tests {

namespace {

using fuselm::DType;

struct Fa2Case {
  int64_t hd, n_heads, n_kv_heads, T, pos0;
  bool causal;
  int64_t window;
  float softcap = 0;
};

std::string fa2_case_name(DType dt, const Fa2Case& c) {
  return std::string(fuselm::dtype_name(dt)) + " hd=" + std::to_string(c.hd) + " heads=" + std::to_string(c.n_heads) +
         "/" + std::to_string(c.n_kv_heads) + " T=" + std::to_string(c.T) + " pos0=" + std::to_string(c.pos0) +
         (c.causal ? " causal" : " non-causal") + (c.window ? " window=" + std::to_string(c.window) : "") +
         (c.softcap > 0 ? " softcap=" + std::to_string(c.softcap) : "");
}

void fa2_run(Parity& p, Rng& rng, DType dt, const Fa2Case& c) {
  const int64_t n_keys = c.pos0 + c.T, ctx = n_keys + 3;  // 3 rows past the keys, never to be read
  const int64_t q_width = c.n_heads * c.hd, kv_width = c.n_kv_heads * c.hd;
  const std::vector<float> q = random_floats(rng, size_t(c.T * q_width), -1.0f, 1.0f);
  std::vector<uint16_t> kh(size_t(ctx * kv_width)), vh(kh.size());
  std::vector<float> kf(kh.size()), vf(kh.size());  // the reference's caches: the 16-bit values widened
  const uint16_t nan_bits = dt == DType::F16 ? 0x7e00 : 0x7fc0;
  for (size_t i = 0; i < kh.size(); i++) {
    if (int64_t(i) >= n_keys * kv_width) {
      kh[i] = vh[i] = nan_bits;
      continue;
    }
    for (int which = 0; which < 2; which++) {
      const float f = rng.uniform(-1.0f, 1.0f);
      const uint16_t b = dt == DType::F16 ? fuselm::f32_to_f16(f) : fuselm::f32_to_bf16(f);
      (which ? vh : kh)[i] = b;
      (which ? vf : kf)[i] = dt == DType::F16 ? fuselm::f16_to_f32(b) : fuselm::bf16_to_f32(b);
    }
  }
  // twice the usual 1/sqrt(hd): scores spread over a few units, so the running max moves
  const float scale = 2.0f / std::sqrt(float(c.hd));
  std::vector<float> want(q.size());
  fuselm::AttentionArgs ra{want.data(), q.data(), kf.data(), vf.data(), DType::F32, c.T, c.n_heads, c.n_kv_heads, c.hd,
                           c.pos0, scale};
  ra.window = c.window;
  ra.causal = c.causal;
  ra.softcap = c.softcap;
  fuselm::attention_cpu(ra, ref_exec());

  DeviceBuffer<float> dq(q), dout(q.size());
  DeviceBuffer<uint16_t> dk(kh), dv(vh);
  fuselm::AttentionArgs a{dout.p, dq.p, dk.p, dv.p, dt, c.T, c.n_heads, c.n_kv_heads, c.hd, c.pos0, scale};
  a.window = c.window;
  a.causal = c.causal;
  a.softcap = c.softcap;
  CHECK_MSG(fuselm::attention_fa2_supports(a), fa2_case_name(dt, c));
  // the two pipelines (2 and 3 stages of K/V tiles) do the same arithmetic in the same order
  std::vector<float> first;
  for (int stages : {2, 3}) {
    dout.upload(std::vector<float>(q.size(), std::nanf("")));  // an unwritten output shows
    fuselm::attention_fa2_cuda(a, nullptr, stages);
    const std::vector<float> got = dout.download();
    p.check(fa2_case_name(dt, c) + " stages=" + std::to_string(stages), got.data(), want.data(), want.size());
    if (first.empty()) first = got;
    else CHECK_MSG(std::memcmp(first.data(), got.data(), got.size() * 4) == 0, fa2_case_name(dt, c) + ": 3 stages differ from 2");
  }
}

void fa2_cases(DType dt) {
  const double u = dt == DType::F16 ? 1.0 / 2048 : 1.0 / 256;  // unit roundoff of the 16-bit type
  Parity p(2 * u, 4 * u);
  Rng rng(0xfa2 + uint64_t(dt));
  const Fa2Case cases[] = {
      // hd, heads, kv heads, T, pos0, causal, window
      {64, 2, 2, 70, 0, true, 0},      // one partial query tile, diagonal tiles
      {64, 2, 1, 40, 250, true, 0},    // a prefix in the cache: 5 key tiles, stages reused
      {80, 8, 2, 33, 100, true, 0},    // GQA 4:1, a prefix in the cache: 3 key tiles, the last partial
      {96, 4, 1, 1, 150, true, 0},     // T = 1 after a prefix (decode-shaped), GQA 4:1
      {128, 2, 2, 130, 20, true, 0},   // 2 query tiles (the second 2 rows), 3 key tiles, the tiles skipped past the diagonal
      {64, 8, 2, 100, 40, true, 37},   // sliding window: tiles before the window skipped, its edge masked
      {128, 4, 2, 17, 0, true, 5},     // a window inside one tile
      {80, 2, 2, 65, 62, false, 0},    // non-causal after a prefix: 127 keys, one short of 2 tiles
      {96, 4, 2, 150, 0, false, 20},   // non-causal (the window ignored, as by attention_cpu), 2 query
                                       // tiles (the last with 22 rows), GQA 2:1
      {128, 8, 2, 1, 0, true, 0},      // T = 1, one key
      // hd 256 (Gemma): 32-key tiles
      {256, 2, 1, 70, 45, true, 0},    // GQA 2:1 after a prefix: 4 key tiles (the last partial), diagonal tiles
      {256, 4, 2, 140, 0, true, 50},   // 2 query tiles, sliding window: tiles before it skipped, its edge masked
      {256, 2, 2, 33, 30, false, 0},   // non-causal: 63 keys, one short of 2 tiles
      // soft-capped scores (Gemma-2), the cap below the scores' spread so tanh bends them
      {256, 4, 2, 40, 100, true, 0, 1.5f},
      {64, 2, 1, 70, 20, true, 30, 2.0f},  // with a sliding window
      {128, 2, 2, 50, 0, false, 0, 1.0f},  // non-causal
  };
  for (const Fa2Case& c : cases) fa2_run(p, rng, dt, c);
  p.report();
}

}  // namespace

EMU_TEST(attention_fa2_f16_parity) { fa2_cases(DType::F16); }
EMU_TEST(attention_fa2_bf16_parity) { fa2_cases(DType::BF16); }

EMU_TEST(attention_fa2_supports) {
  alignas(16) static uint16_t cache[64];
  alignas(16) static float qo[64];
  fuselm::AttentionArgs a{qo, qo, cache, cache, DType::F16, 100, 8, 2, 64, 0, 0.125f};
  CHECK(fuselm::attention_fa2_supports(a));
  for (int64_t hd : {80, 96, 128, 256}) {
    a.head_dim = hd;
    CHECK_MSG(fuselm::attention_fa2_supports(a), "head_dim " + std::to_string(hd));
  }
  a.kv_dtype = DType::BF16;
  CHECK(fuselm::attention_fa2_supports(a));
  a.softcap = 30.0f;
  CHECK_MSG(fuselm::attention_fa2_supports(a), "soft-capped scores");
  a.softcap = 0;
  a.kv_dtype = DType::F32;
  CHECK_MSG(!fuselm::attention_fa2_supports(a), "f32 caches");
  a.kv_dtype = DType::F16;
  a.head_dim = 48;
  CHECK_MSG(!fuselm::attention_fa2_supports(a), "head_dim 48");
  a.head_dim = 64;
  a.k_cache = cache + 1;
  CHECK_MSG(!fuselm::attention_fa2_supports(a), "k_cache off 16-byte alignment");
  a.k_cache = cache;
  a.n_heads = 6;
  a.n_kv_heads = 4;
  CHECK_MSG(!fuselm::attention_fa2_supports(a), "6 heads on 4 KV heads");
  bool threw = false;
  try {
    fuselm::attention_fa2_cuda(a, nullptr);
  } catch (const fuselm::Error& e) {
    threw = e.code == "E_INVALID_ARG";
  }
  CHECK_MSG(threw, "attention_fa2_cuda on an unsupported shape throws E_INVALID_ARG");
}

}  // namespace emu_tests
