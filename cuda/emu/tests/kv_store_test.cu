// Proves: kv_store_cuda (cuda/kv_store.cu) writes the cache bits kv_store_cpu's reference writes
// into a cache of the same type (so both backends hold the same cache), each value rounded
// exactly as tensor.h's f32_to_f16 / f32_to_bf16 round it (bit for bit: a conversion is exact
// or it is wrong), and touches nothing else in the cache: f32,
// f16 and bf16 caches; widths W = 1, 7, 8, 33, 64 and 129 (odd W puts row pos0 off 16-byte
// alignment); pos0 = 0, 3 and 5; 1 and 4 rows; the source aligned, or one float off (the
// destination and source then never line up: the all-scalar path). Sources hold values that
// round to even at a tie, f16 subnormals, values past f16's range (to infinity) and infinities.
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

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> kv_source(Rng& rng, size_t n) {
  std::vector<float> v = random_floats(rng, n, -3.0f, 3.0f);
  for (size_t i = 0; i < n; i++) {
    switch (i % 11) {
      case 1: v[i] = bits_to_float(0x3f801000u); break;            // 1 + 2^-11: f16 tie, rounds to even (1.0)
      case 3: v[i] = bits_to_float(0x3f808000u); break;            // 1 + 2^-8: bf16 tie, rounds to even (1.0)
      case 5: v[i] = rng.uniform(-1.0f, 1.0f) * 1e-6f; break;      // f16 subnormal
      case 7: v[i] = rng.uniform(-1.0f, 1.0f) * 1e5f; break;       // beyond f16: rounds to +-inf
      case 9: v[i] = i % 2 ? INFINITY : -INFINITY; break;
      default: break;
    }
  }
  return v;
}

size_t elem_bytes(DType dt) { return dt == DType::F32 ? 4 : 2; }

void kv_store_cases(DType dt) {
  Rng rng(0x5107e + uint64_t(dt));
  int cases = 0;
  for (int64_t W : {1, 7, 8, 33, 64, 129})
    for (int64_t pos0 : {0, 3, 5})
      for (int64_t T : {1, 4})
        for (int off = 0; off < 2; off++) {
          const int64_t ctx = pos0 + T + 2;  // two rows after the new ones must stay untouched
          const std::vector<float> src = kv_source(rng, size_t(T * W + off));
          // the expected cache: the old contents (random bits), the new rows stored by the reference
          std::vector<uint8_t> before(size_t(ctx * W) * elem_bytes(dt));
          for (uint8_t& b : before) b = uint8_t(rng.next() & 0x7f);  // no NaN patterns
          std::vector<uint8_t> want = before;
          fuselm::kv_store_cpu({want.data(), dt, src.data() + off, T, W, pos0}, ref_exec());
          for (int64_t i = pos0 * W; i < (pos0 + T) * W; i++) {  // and it rounds as tensor.h does
            const float f = src[size_t(off + i - pos0 * W)];
            uint8_t b[4];
            if (dt == DType::F32) {
              std::memcpy(b, &f, 4);
            } else {
              const uint16_t h = dt == DType::F16 ? fuselm::f32_to_f16(f) : fuselm::f32_to_bf16(f);
              std::memcpy(b, &h, 2);
            }
            CHECK(std::memcmp(want.data() + size_t(i) * elem_bytes(dt), b, elem_bytes(dt)) == 0);
          }
          DeviceBuffer<float> dsrc(src);
          DeviceBuffer<uint8_t> dcache(before);
          fuselm::kv_store_cuda({dcache.p, dt, dsrc.p + off, T, W, pos0}, nullptr);
          const std::vector<uint8_t> got = dcache.download();
          for (size_t i = 0; i < got.size(); i++)
            if (got[i] != want[i]) {
              const size_t e = i / elem_bytes(dt);
              CHECK_MSG(false, std::string(fuselm::dtype_name(dt)) + " W=" + std::to_string(W) + " pos0=" +
                                   std::to_string(pos0) + " T=" + std::to_string(T) + (off ? " src misaligned" : "") +
                                   ": cache element " + std::to_string(e) + " (row " + std::to_string(int64_t(e) / W) +
                                   ") differs from the reference");
            }
          cases++;
        }
  note(std::to_string(cases) + " cases bit-exact");
}

}  // namespace

EMU_TEST(kv_store_f32_exact) { kv_store_cases(DType::F32); }
EMU_TEST(kv_store_f16_exact) { kv_store_cases(DType::F16); }
EMU_TEST(kv_store_bf16_exact) { kv_store_cases(DType::BF16); }

}  // namespace emu_tests
