// Proves: rope_kv_store_cuda (cuda/rope_kv_store.cu) stores what rope_cpu's reference followed
// by kv_store_cpu gives, rounded to the cache's type: f32 within the rope kernel's bound
// (angles of thousands of radians), f16 and bf16 within half a unit in the last place of the
// stored value plus that bound (the two sides can round a value lying on a rounding boundary
// differently). Llama and NeoX layouts, n_rot < head_dim (the rest copied), odd head counts,
// pos0 > 0 (rows before pos0 untouched), per-pair frequency factors (Llama-3.1's rope_freqs),
// a magnitude on cos and sin (YaRN's mscale), and src left unchanged.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "ops/rope.h"
#include "parity.h"

namespace emu_tests {

namespace {

float widen(fuselm::DType t, const void* p, size_t i) {
  if (t == fuselm::DType::F32) return static_cast<const float*>(p)[i];
  const uint16_t b = static_cast<const uint16_t*>(p)[i];
  return t == fuselm::DType::F16 ? fuselm::f16_to_f32(b) : fuselm::bf16_to_f32(b);
}

void rope_store_cases(fuselm::DType dt, double rel, double abs) {
  Rng rng(0x5707e + int(dt));
  struct Case { int64_t T, n_heads, head_dim, n_rot, pos0; bool neox, factors; float mscale = 1; };
  const Case cases[] = {{1, 1, 8, 8, 0, false, false},      {3, 5, 64, 64, 7, false, false}, {2, 3, 80, 32, 4090, true, false},
                        {5, 2, 128, 128, 100, true, false}, {3, 2, 16, 16, 3000, false, true}, {4, 3, 64, 32, 17, true, true},
                        {2, 2, 32, 24, 5000, true, true, 1.19f}};
  const size_t esize = dt == fuselm::DType::F32 ? 4 : 2;
  Parity p(rel, abs);
  for (const Case& c : cases) {
    const int64_t W = c.n_heads * c.head_dim, ctx = c.pos0 + c.T + 2;
    std::vector<float> src = random_floats(rng, size_t(c.T * W), -2.0f, 2.0f);
    std::vector<float> want = src;
    // factors 1 .. 8 over the pairs, as Llama-3.1's bands
    std::vector<float> factors(size_t(c.n_rot / 2));
    for (size_t i = 0; i < factors.size(); i++) factors[i] = 1.0f + 7.0f * float(i) / float(factors.size() - 1);
    DeviceBuffer<float> dfactors(factors);
    const float* ff = c.factors ? factors.data() : nullptr;
    fuselm::rope_cpu({want.data(), c.T, c.n_heads, c.head_dim, c.n_rot, c.pos0, 10000.0f, 1.0f, c.neox, ff, c.mscale}, ref_exec());
    DeviceBuffer<float> dsrc(src);
    DeviceBuffer<uint8_t> dcache(size_t(ctx * W) * esize);
    fuselm::rope_kv_store_cuda({dcache.p, dt, dsrc.p, c.T, c.n_heads, c.head_dim, c.n_rot, c.pos0, 10000.0f, 1.0f, c.neox,
                                c.factors ? dfactors.p : nullptr, c.mscale},
                               nullptr);
    const std::vector<uint8_t> cache = dcache.download();
    std::vector<float> got(size_t(c.T * W));
    for (size_t i = 0; i < got.size(); i++) got[i] = widen(dt, cache.data(), size_t(c.pos0 * W) + i);
    p.check(std::string(c.neox ? "neox" : "llama") + " T=" + std::to_string(c.T) + " heads=" + std::to_string(c.n_heads) +
                " hd=" + std::to_string(c.head_dim) + " n_rot=" + std::to_string(c.n_rot) + " pos0=" + std::to_string(c.pos0) +
                (c.factors ? " freq factors" : "") + (c.mscale != 1 ? " mscale" : ""),
            got.data(), want.data(), got.size());
    for (size_t i = 0; i < size_t(c.pos0 * W) * esize; i++) CHECK(cache[i] == 0);  // earlier rows untouched
    const std::vector<float> after = dsrc.download();
    CHECK(std::memcmp(after.data(), src.data(), src.size() * 4) == 0);
  }
  p.report();
}

}  // namespace

EMU_TEST(rope_kv_store_f32_parity) { rope_store_cases(fuselm::DType::F32, 1e-6, 2e-6); }
// f16 keeps 11 significant bits: half an ulp of values below 4 is at most 2^-10
EMU_TEST(rope_kv_store_f16_parity) { rope_store_cases(fuselm::DType::F16, 6e-4, 1e-3); }
// bf16 keeps 8: at most 2^-7 below 4
EMU_TEST(rope_kv_store_bf16_parity) { rope_store_cases(fuselm::DType::BF16, 5e-3, 8e-3); }

}  // namespace emu_tests
