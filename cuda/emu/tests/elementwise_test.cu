// Proves: add_cuda (cuda/add.cu) and swiglu_cuda (cuda/swiglu.cu) equal add_cpu's and
// swiglu_cpu's references on random [T, D] data at awkward sizes (1, 31, 32, 33, 4095, 4097
// values and 3 x 4097), out of place and in place (out == first input), through the float4
// path and, with every pointer one float off 16-byte alignment, the scalar path. add is exact;
// swiglu compares silu in f32 with the reference's double (gate in [-12, 12], plus +-100 so
// exp overflows to inf).
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "ops/add.h"
#include "ops/swiglu.h"
#include "parity.h"

namespace emu_tests {

namespace {

struct Shape { int64_t T, D; };
const Shape kShapes[] = {{1, 1}, {1, 31}, {1, 32}, {1, 33}, {1, 4095}, {1, 4097}, {3, 4097}, {5, 7}};

// Runs op(out, a, b) on the device and ref(out, a, b) on the CPU for every shape and mode.
template <class Dev, class Ref>
void elementwise_parity(Parity& p, uint64_t seed, float lo, float hi, Dev dev, Ref ref) {
  Rng rng(seed);
  for (const Shape& s : kShapes) {
    for (int mode = 0; mode < 3; mode++) {  // 0: out of place, 1: in place, 2: all pointers misaligned
      const int64_t n = s.T * s.D, off = mode == 2 ? 1 : 0;
      std::vector<float> a = random_floats(rng, size_t(n + off), lo, hi);
      std::vector<float> b = random_floats(rng, size_t(n + off), -2.0f, 2.0f);
      if (n > 40) a[size_t(off + 17)] = 100.0f, a[size_t(off + 23)] = -100.0f;
      std::vector<float> want(static_cast<size_t>(n));
      ref(want.data(), a.data() + off, b.data() + off, s.T, s.D);
      DeviceBuffer<float> da(a), db(b), dout(size_t(n + off));
      float* out = mode == 1 ? da.p : dout.p + off;
      dev(out, da.p + off, db.p + off, s.T, s.D);
      std::vector<float> got = mode == 1 ? da.download() : dout.download();
      p.check("T=" + std::to_string(s.T) + " D=" + std::to_string(s.D) + " mode=" + std::to_string(mode),
              got.data() + off, want.data(), want.size());
    }
  }
}

}  // namespace

EMU_TEST(add_f32_parity) {
  Parity p(0, 0);  // exact: one f32 add per element either way
  elementwise_parity(
      p, 0xadd, -10.0f, 10.0f,
      [](float* o, const float* a, const float* b, int64_t T, int64_t D) { fuselm::add_cuda({o, a, b, T, D}, nullptr); },
      [](float* o, const float* a, const float* b, int64_t T, int64_t D) { fuselm::add_cpu({o, a, b, T, D}, ref_exec()); });
  p.report();
}

EMU_TEST(swiglu_f32_parity) {
  Parity p(1e-6, 2e-5);  // |out| up to 200: 2e-5 is about one f32 ulp there
  elementwise_parity(
      p, 0x5e1u, -12.0f, 12.0f,
      [](float* o, const float* g, const float* u, int64_t T, int64_t D) {
        fuselm::swiglu_cuda({o, g, u, T, D}, nullptr);
      },
      [](float* o, const float* g, const float* u, int64_t T, int64_t D) {
        fuselm::swiglu_cpu({o, g, u, T, D}, ref_exec());
      });
  p.report();
}

}  // namespace emu_tests
