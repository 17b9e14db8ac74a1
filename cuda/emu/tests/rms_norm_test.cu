// Proves: rms_norm_cuda (cuda/rms_norm.cu) equals rms_norm_cpu's reference on random rows at
// awkward widths (1, 31, 32, 33, 4095, 4097, and 4096 for the float4 path), several rows,
// in place (out == x) and out of place, and through the scalar path when a pointer is not
// 16-byte aligned.
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "ops/rms_norm.h"
#include "parity.h"

namespace emu_tests {

EMU_TEST(rms_norm_f32_parity) {
  Rng rng(0x5151);
  Parity p(2e-6, 1e-5);
  const int64_t widths[] = {1, 31, 32, 33, 64, 4095, 4096, 4097};
  for (int64_t D : widths) {
    for (int64_t T : {int64_t(1), int64_t(3)}) {
      for (int mode = 0; mode < 3; mode++) {  // 0: out of place, 1: in place, 2: x misaligned by 1 float
        const int64_t off = mode == 2 ? 1 : 0;
        std::vector<float> x = random_floats(rng, size_t(T * D + off), -3.0f, 3.0f);
        const std::vector<float> w = random_floats(rng, size_t(D), 0.5f, 1.5f);
        std::vector<float> ref(size_t(T * D));
        fuselm::rms_norm_cpu({ref.data(), x.data() + off, w.data(), T, D, 1e-5f}, ref_exec());
        DeviceBuffer<float> dx(x), dw(w), dout(size_t(T * D));
        float* out = mode == 1 ? dx.p : dout.p;
        fuselm::rms_norm_cuda({out, dx.p + off, dw.p, T, D, 1e-5f}, nullptr);
        std::vector<float> got = mode == 1 ? dx.download() : dout.download();
        p.check("T=" + std::to_string(T) + " D=" + std::to_string(D) + " mode=" + std::to_string(mode), got.data(),
                ref.data(), ref.size());
      }
    }
  }
  p.report();
}

}  // namespace emu_tests
