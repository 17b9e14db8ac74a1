// Proves: rope_cuda (cuda/rope.cu) equals rope_cpu's reference, in llama and NeoX layouts, with
// n_rot == head_dim and n_rot < head_dim (the dims past n_rot untouched), odd head counts
// (1, 5, 9: a partial last group of heads per block), head dims 2, 64, 80, 128 and 576 (more
// pairs than threads), positions from 0 and from 4090 (angles of thousands of radians),
// theta_base 1e4 and 1e6, freq_scale 1 and 0.25.
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "ops/rope.h"
#include "parity.h"

namespace emu_tests {

static void rope_cases(bool neox, Parity& p) {
  Rng rng(neox ? 0x4e0 : 0x11a);
  struct Case { int64_t T, n_heads, head_dim, n_rot, pos0; float base, scale; };
  const Case cases[] = {
      {1, 1, 2, 2, 0, 10000.0f, 1.0f},        {3, 5, 64, 64, 0, 10000.0f, 1.0f},
      {2, 9, 128, 128, 4090, 10000.0f, 1.0f}, {1, 5, 128, 64, 4095, 1e6f, 1.0f},
      {4, 3, 80, 32, 17, 10000.0f, 0.25f},    {1, 2, 576, 576, 1000, 10000.0f, 1.0f},
      {33, 1, 64, 64, 4064, 500000.0f, 1.0f},
  };
  for (const Case& c : cases) {
    const size_t n = size_t(c.T * c.n_heads * c.head_dim);
    std::vector<float> x = random_floats(rng, n, -2.0f, 2.0f);
    std::vector<float> want = x;
    fuselm::RopeArgs ra{want.data(), c.T, c.n_heads, c.head_dim, c.n_rot, c.pos0, c.base, c.scale, neox};
    fuselm::rope_cpu(ra, ref_exec());
    DeviceBuffer<float> dx(x);
    ra.x = dx.p;
    fuselm::rope_cuda(ra, nullptr);
    std::vector<float> got = dx.download();
    p.check("T=" + std::to_string(c.T) + " heads=" + std::to_string(c.n_heads) + " hd=" + std::to_string(c.head_dim) +
                " n_rot=" + std::to_string(c.n_rot) + " pos0=" + std::to_string(c.pos0),
            got.data(), want.data(), n);
    for (size_t i = 0; i < n; i++)  // exact where nothing rotates
      if (int64_t(i) % c.head_dim >= c.n_rot) CHECK(got[i] == x[i]);
  }
}

EMU_TEST(rope_llama_f32_parity) {
  Parity p(1e-6, 2e-6);
  rope_cases(false, p);
  p.report();
}

EMU_TEST(rope_neox_f32_parity) {
  Parity p(1e-6, 2e-6);
  rope_cases(true, p);
  p.report();
}

}  // namespace emu_tests
