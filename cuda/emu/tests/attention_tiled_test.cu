// Proves: attention_tiled_cuda (cuda/attention_tiled.cu) equals attention_cpu's reference
// (scores and softmax in double) on the same caches widened to f32, for f32 caches (head dims
// 64, 128, 256, 72, 5 and 33: every lane count, odd row pitches) and f16/bf16 caches of head
// dims FA2 does not take (48, 160); MHA and GQA (2, 4 query heads per KV head); causal from
// position 0 and after a prefix in the cache (pos0 > 0); a sliding window (tiles before it
// skipped, its edge masked); non-causal; soft-capped scores (alone, with a window,
// non-causal); T and key counts that are not multiples of the 32-row query tiles and 32-key
// tiles, and T = 1. Cache rows past the last position hold NaN: reading them anywhere (even
// under a zero weight) would show; so does an unwritten output (NaN-filled).
// And: attention_cuda routes a prefill with an f32 cache (and one with hd 48) here, bit for
// bit; attention_tiled_supports() rejects a shared prefix, an unknown cache dtype, head_dim
// 257 and a head count not divisible by the KV heads, and attention_tiled_cuda throws
// E_INVALID_ARG on them.
//
// Tolerance: as for split-KV (attention_split_kv_test.cu), the kernel computes in f32 and the
// reference in double on identical cache values: the error is f32 rounding of hd-term dot
// products, of exp2 of scores of a few units and of sums over a few hundred keys, ~1e-7
// relative. The bounds, 2e-6 normalized and 5e-6 max-abs (outputs are at most 1), leave room
// for the GPU's contracted FMAs and exp2f without hiding a wrong mask, which errs by 1e-2 or more.
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

struct TiledCase {
  int64_t hd, n_heads, n_kv_heads, T, pos0;
  bool causal;
  int64_t window;
  float softcap = 0;
};

std::string tiled_case_name(DType dt, const TiledCase& c) {
  return std::string(fuselm::dtype_name(dt)) + " hd=" + std::to_string(c.hd) + " heads=" + std::to_string(c.n_heads) +
         "/" + std::to_string(c.n_kv_heads) + " T=" + std::to_string(c.T) + " pos0=" + std::to_string(c.pos0) +
         (c.causal ? " causal" : " non-causal") + (c.window ? " window=" + std::to_string(c.window) : "") +
         (c.softcap > 0 ? " softcap=" + std::to_string(c.softcap) : "");
}

// Random caches of dtype dt (f32, or 16-bit bits), their widened f32 values for the reference,
// and NaN rows past n_keys.
struct Caches {
  std::vector<float> kf, vf;         // the reference's
  std::vector<uint16_t> kh, vh;      // f16/bf16 bits
};

Caches make_caches(Rng& rng, DType dt, int64_t n_keys, int64_t ctx, int64_t width) {
  Caches c;
  const size_t n = size_t(ctx * width);
  c.kf.resize(n), c.vf.resize(n), c.kh.resize(n), c.vh.resize(n);
  const uint16_t nan_bits = dt == DType::F16 ? 0x7e00 : 0x7fc0;
  for (size_t i = 0; i < n; i++) {
    if (int64_t(i) >= n_keys * width) {
      c.kf[i] = c.vf[i] = std::nanf("");
      c.kh[i] = c.vh[i] = nan_bits;
      continue;
    }
    for (int which = 0; which < 2; which++) {
      float f = rng.uniform(-1.0f, 1.0f);
      uint16_t b = 0;
      if (dt == DType::F16) b = fuselm::f32_to_f16(f), f = fuselm::f16_to_f32(b);
      if (dt == DType::BF16) b = fuselm::f32_to_bf16(f), f = fuselm::bf16_to_f32(b);
      (which ? c.vf : c.kf)[i] = f;
      (which ? c.vh : c.kh)[i] = b;
    }
  }
  return c;
}

void tiled_run(Parity& p, Rng& rng, DType dt, const TiledCase& c) {
  const int64_t n_keys = c.pos0 + c.T, ctx = n_keys + 3;  // 3 rows past the keys, never to be read
  const int64_t q_width = c.n_heads * c.hd, kv_width = c.n_kv_heads * c.hd;
  const std::vector<float> q = random_floats(rng, size_t(c.T * q_width), -1.0f, 1.0f);
  const Caches cs = make_caches(rng, dt, n_keys, ctx, kv_width);
  // twice the usual 1/sqrt(hd): scores spread over a few units, so the running max moves
  const float scale = 2.0f / std::sqrt(float(c.hd));
  std::vector<float> want(q.size());
  fuselm::AttentionArgs ra{want.data(), q.data(), cs.kf.data(), cs.vf.data(), DType::F32, c.T, c.n_heads,
                           c.n_kv_heads, c.hd, c.pos0, scale};
  ra.window = c.window;
  ra.causal = c.causal;
  ra.softcap = c.softcap;
  fuselm::attention_cpu(ra, ref_exec());

  DeviceBuffer<float> dq(q), dout(q.size());
  DeviceBuffer<float> dkf(cs.kf), dvf(cs.vf);
  DeviceBuffer<uint16_t> dkh(cs.kh), dvh(cs.vh);
  const bool f32 = dt == DType::F32;
  fuselm::AttentionArgs a{dout.p, dq.p, f32 ? static_cast<const void*>(dkf.p) : dkh.p,
                          f32 ? static_cast<const void*>(dvf.p) : dvh.p, dt, c.T, c.n_heads, c.n_kv_heads, c.hd,
                          c.pos0, scale};
  a.window = c.window;
  a.causal = c.causal;
  a.softcap = c.softcap;
  CHECK_MSG(fuselm::attention_tiled_supports(a), tiled_case_name(dt, c));
  dout.upload(std::vector<float>(q.size(), std::nanf("")));  // an unwritten output shows
  fuselm::attention_tiled_cuda(a, nullptr);
  p.check(tiled_case_name(dt, c), dout.download().data(), want.data(), want.size());
}

}  // namespace

EMU_TEST(attention_tiled_f32_parity) {
  Parity p(2e-6, 5e-6);
  Rng rng(0x711ed);
  const TiledCase cases[] = {
      // hd, heads, kv heads, T, pos0, causal, window[, softcap]
      {64, 2, 2, 40, 0, true, 0},       // 2 query tiles (the second 8 rows), diagonal tiles
      {128, 4, 2, 20, 75, true, 0},     // GQA 2:1 after a prefix: 3 full key tiles and a partial one
      {256, 4, 1, 33, 30, true, 0},     // hd 256 (Gemma), GQA 4:1
      {72, 2, 1, 50, 10, true, 17},     // sliding window: tiles before it skipped, its edge masked
      {5, 3, 3, 17, 0, true, 0},        // one value per lane, odd pitch
      {33, 2, 2, 31, 40, false, 0},     // non-causal after a prefix, hd just past one lane's worth
      {256, 2, 2, 24, 60, true, 0, 1.5f},  // soft-capped (Gemma-2 style)
      {64, 4, 2, 45, 5, true, 20, 2.0f},   // soft-capped with a window
      {128, 2, 1, 18, 0, false, 0, 1.0f},  // soft-capped, non-causal
      {64, 2, 2, 1, 40, true, 0},       // T = 1
  };
  for (const TiledCase& c : cases) tiled_run(p, rng, DType::F32, c);
  p.report();
}

EMU_TEST(attention_tiled_half_parity) {
  Parity p(2e-6, 5e-6);
  Rng rng(0x711ee);
  const TiledCase cases[] = {
      {48, 4, 2, 40, 20, true, 0},      // a head dim FA2 lacks, GQA 2:1
      {160, 2, 1, 20, 0, false, 0},     // another, non-causal
  };
  for (DType dt : {DType::F16, DType::BF16})
    for (const TiledCase& c : cases) tiled_run(p, rng, dt, c);
  p.report();
}

EMU_TEST(attention_tiled_routing) {
  // attention_cuda sends prefills FA2 cannot take here: the same bits as a direct call
  Rng rng(0x711ef);
  for (int64_t hd : {64, 48}) {
    const DType dt = hd == 64 ? DType::F32 : DType::F16;
    const int64_t T = 20, width = 2 * hd;
    const std::vector<float> q = random_floats(rng, size_t(T * width), -1.0f, 1.0f);
    const Caches cs = make_caches(rng, dt, T, T, width);
    DeviceBuffer<float> dq(q), direct(q.size()), routed(q.size()), dkf(cs.kf), dvf(cs.vf);
    DeviceBuffer<uint16_t> dkh(cs.kh), dvh(cs.vh);
    const void* k = dt == DType::F32 ? static_cast<const void*>(dkf.p) : dkh.p;
    const void* v = dt == DType::F32 ? static_cast<const void*>(dvf.p) : dvh.p;
    fuselm::AttentionArgs a{direct.p, dq.p, k, v, dt, T, 2, 2, hd, 0, 0.125f};
    CHECK(!fuselm::attention_fa2_supports(a));
    fuselm::attention_tiled_cuda(a, nullptr);
    a.out = routed.p;
    fuselm::attention_cuda(a, nullptr);
    const std::vector<float> x = direct.download(), y = routed.download();
    CHECK_MSG(std::memcmp(x.data(), y.data(), x.size() * 4) == 0,
              "attention_cuda routes hd " + std::to_string(hd) + " " + fuselm::dtype_name(dt) + " to the tiled kernel");
  }
}

EMU_TEST(attention_tiled_supports) {
  alignas(16) static float cache[64];
  alignas(16) static float qo[64];
  fuselm::AttentionArgs a{qo, qo, cache, cache, DType::F32, 100, 8, 2, 64, 0, 0.125f};
  CHECK(fuselm::attention_tiled_supports(a));
  a.head_dim = 256;
  CHECK(fuselm::attention_tiled_supports(a));
  const auto rejected = [&](const char* what) {
    CHECK_MSG(!fuselm::attention_tiled_supports(a), what);
    bool threw = false;
    try {
      fuselm::attention_tiled_cuda(a, nullptr);
    } catch (const fuselm::Error& e) {
      threw = e.code == "E_INVALID_ARG";
    }
    CHECK_MSG(threw, std::string("attention_tiled_cuda throws E_INVALID_ARG on ") + what);
  };
  a.head_dim = 257;
  rejected("head_dim 257");
  a.head_dim = 64;
  a.prefix_len = 4, a.k_prefix = cache, a.v_prefix = cache;
  rejected("a shared prefix");
  a.prefix_len = 0, a.k_prefix = a.v_prefix = nullptr;
  a.kv_dtype = DType::Q8_0;
  rejected("a q8_0 cache");
  a.kv_dtype = DType::F32;
  a.n_heads = 6, a.n_kv_heads = 4;
  rejected("6 heads on 4 KV heads");
}

}  // namespace emu_tests
