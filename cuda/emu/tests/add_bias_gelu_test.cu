// Proves: add_bias_cuda (cuda/add_bias.cu) and gelu_cuda (cuda/gelu.cu, both forms) equal
// add_bias_cpu's and gelu_cpu's references on random data at awkward sizes, out of place, in
// place (out == x), and with every pointer one float off 16-byte alignment (the scalar path).
// add_bias is exact (one f32 add per element either way), including D % 4 != 0 with aligned
// pointers (the scalar path) and D % 4 == 0 (float4 vectors, bias indexed per row).
// gelu: x in [-10, 10], and a case of edges: 0, -0, +-100 and +-1e20 (x^3 overflows: the
// result must be x or -0, as the reference's, never NaN). Computed in f32 with expf / erfcf
// (erfcf: 4 ulp on the GPU) against the reference's double: 1e-6 normalized and 1e-5 absolute
// (about 10 ulp at |out| = 10: erfcf's or expf's error, the division's and the products'
// roundings, with margin; the edge outputs are exact). The normalized error's denominator is
// at least 1 per value (Parity's floor): the reference's own 1 + erf cancels in double to
// ~1e-16 absolute for x near -8, where gelu is ~1e-13, so a lone tiny output is no yardstick.
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "ops/add_bias.h"
#include "ops/gelu.h"
#include "parity.h"

namespace emu_tests {

EMU_TEST(add_bias_f32_parity) {
  Rng rng(0xb1a5);
  Parity p(0, 0);
  const int64_t shapes[][2] = {{1, 1}, {1, 31}, {3, 33}, {2, 4096}, {5, 7}, {3, 4100}, {4, 6}};
  for (const auto& s : shapes) {
    const int64_t T = s[0], D = s[1], n = T * D;
    for (int mode = 0; mode < 3; mode++) {  // 0: out of place, 1: in place, 2: misaligned
      const int64_t off = mode == 2 ? 1 : 0;
      const std::vector<float> x = random_floats(rng, size_t(n + off), -10.0f, 10.0f);
      const std::vector<float> bias = random_floats(rng, size_t(D + off), -2.0f, 2.0f);
      std::vector<float> ref(static_cast<size_t>(n));
      fuselm::add_bias_cpu({ref.data(), x.data() + off, bias.data() + off, T, D}, ref_exec());
      DeviceBuffer<float> dx(x), db(bias), dout(size_t(n + off));
      float* out = mode == 1 ? dx.p : dout.p + off;
      fuselm::add_bias_cuda({out, dx.p + off, db.p + off, T, D}, nullptr);
      const std::vector<float> got = mode == 1 ? dx.download() : dout.download();
      p.check("T=" + std::to_string(T) + " D=" + std::to_string(D) + " mode=" + std::to_string(mode), got.data() + off,
              ref.data(), ref.size());
    }
  }
  p.report();
}

namespace {

void gelu_cases(bool tanh_approx) {
  Rng rng(tanh_approx ? 0x6e1a : 0x6e1b);
  Parity p(1e-6, 1e-5);
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(4), int64_t(31), int64_t(33), int64_t(4097)}) {
    for (int mode = 0; mode < 3; mode++) {  // 0: out of place, 1: in place, 2: misaligned
      const int64_t off = mode == 2 ? 1 : 0;
      const std::vector<float> x = random_floats(rng, size_t(n + off), -10.0f, 10.0f);
      std::vector<float> ref(static_cast<size_t>(n));
      fuselm::gelu_cpu({ref.data(), x.data() + off, n, tanh_approx}, ref_exec());
      DeviceBuffer<float> dx(x), dout(size_t(n + off));
      float* out = mode == 1 ? dx.p : dout.p + off;
      fuselm::gelu_cuda({out, dx.p + off, n, tanh_approx}, nullptr);
      const std::vector<float> got = mode == 1 ? dx.download() : dout.download();
      p.check("n=" + std::to_string(n) + " mode=" + std::to_string(mode), got.data() + off, ref.data(), ref.size(), 1.0);
    }
  }
  // The edges, in a case of their own (1e20 would swamp the normalized error of random data):
  // both signs of zero, saturation at +-100 and x^3 overflowing at +-1e20 (x or -0, not NaN).
  const std::vector<float> x = {0.0f, -0.0f, 100.0f, -100.0f, 1e20f, -1e20f, 0.5f};
  std::vector<float> ref(x.size());
  fuselm::gelu_cpu({ref.data(), x.data(), int64_t(x.size()), tanh_approx}, ref_exec());
  DeviceBuffer<float> dx(x), dout(x.size());
  fuselm::gelu_cuda({dout.p, dx.p, int64_t(x.size()), tanh_approx}, nullptr);
  const std::vector<float> got = dout.download();
  p.check("edges", got.data(), ref.data(), ref.size());
  for (size_t i = 0; i < x.size(); i++) CHECK_MSG(got[i] == got[i], "NaN from x = " + std::to_string(x[i]));
  p.report();
}

}  // namespace

EMU_TEST(gelu_erf_f32_parity) { gelu_cases(false); }

EMU_TEST(gelu_tanh_f32_parity) { gelu_cases(true); }

}  // namespace emu_tests
