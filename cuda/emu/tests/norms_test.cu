// Proves: layer_norm_cuda (cuda/layer_norm.cu) equals layer_norm_cpu's reference, and
// add_norm_cuda (cuda/add_norm.cu) equals add_cpu followed by rms_norm_cpu (b null) or
// layer_norm_cpu, on random rows of widths that are and are not multiples of 4 (1, 31, 32,
// 33, 600, 2000, 4095, 4096, 4097, 5000, 8192, 16384: every items-per-thread variant of both
// the float4 and the scalar path, the scalar path's longest row on its most threads), 1 and 3 rows, aligned and with every pointer one float off
// 16-byte alignment (the scalar path), layer_norm also in place. add_norm's new residual x
// must equal add_cpu's bit for bit (one f32 add either way). Rows past the register cache and
// an out aliasing x must throw E_INVALID_ARG.
//
// Tolerances: the kernels keep mean and variance in f32 (block sums), the references in
// double; the GPU's rsqrtf adds up to 2 ulp to the scale. Inputs in [-3, 3] (x + r in [-4, 4]),
// |out| below 4: 2e-6 normalized and 4e-6 absolute (16 f32 ulp at 4; 2 ulp measured under the
// emulator). One layer_norm case has rows offset by 50: there the f32 mean's own rounding
// (~50 * 2^-24 per step of the sum) is amplified by 1 / std (~1.7), so its bound is
// 1e-5 / 5e-5, stated separately (measured 1.7e-6 / 3.5e-6 under the emulator; the GPU sums
// in a different order).
#include <cstdio>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "ops/add.h"
#include "ops/layer_norm.h"
#include "ops/rms_norm.h"
#include "parity.h"
#include "quantize_x.cuh"

namespace emu_tests {

namespace {

const int64_t kWidths[] = {1, 31, 32, 33, 600, 2000, 4095, 4096, 4097, 5000, 8192, 16384};

std::string label(int64_t T, int64_t D, int mode) {
  return "T=" + std::to_string(T) + " D=" + std::to_string(D) + " mode=" + std::to_string(mode);
}

// Requires fn to throw fuselm::Error with code E_INVALID_ARG.
template <class F>
void expect_invalid_arg(const char* what, F fn) {
  try {
    fn();
  } catch (const fuselm::Error& e) {
    CHECK_MSG(e.code == "E_INVALID_ARG", std::string(what) + ": code " + e.code + ": " + e.what());
    return;
  }
  fail_at(__FILE__, __LINE__, std::string(what) + ": did not throw");
}

void layer_norm_case(Parity& p, Rng& rng, int64_t T, int64_t D, int mode, float offset) {
  const int64_t off = mode == 2 ? 1 : 0;  // 0: out of place, 1: in place, 2: misaligned
  std::vector<float> x = random_floats(rng, size_t(T * D + off), offset - 3.0f, offset + 3.0f);
  const std::vector<float> w = random_floats(rng, size_t(D + off), 0.5f, 1.5f);
  const std::vector<float> b = random_floats(rng, size_t(D + off), -0.5f, 0.5f);
  std::vector<float> ref(size_t(T * D));
  fuselm::layer_norm_cpu({ref.data(), x.data() + off, w.data() + off, b.data() + off, T, D, 1e-5f}, ref_exec());
  DeviceBuffer<float> dx(x), dw(w), db(b), dout(size_t(T * D + off));
  float* out = mode == 1 ? dx.p : dout.p + off;
  fuselm::layer_norm_cuda({out, dx.p + off, dw.p + off, db.p + off, T, D, 1e-5f}, nullptr);
  const std::vector<float> got = mode == 1 ? dx.download() : dout.download();
  p.check(label(T, D, mode), got.data() + off, ref.data(), ref.size());
}

void add_norm_cases(bool layer_norm) {
  Rng rng(layer_norm ? 0xa11e : 0xa125);
  Parity p(2e-6, 4e-6), exact(0, 0);
  for (int64_t D : kWidths)
    for (int64_t T : {int64_t(1), int64_t(3)})
      for (int mode = 0; mode < 2; mode++) {  // 0: aligned, 1: every pointer misaligned
        const int64_t off = mode, n = T * D;
        const std::vector<float> x = random_floats(rng, size_t(n + off), -3.0f, 3.0f);
        const std::vector<float> r = random_floats(rng, size_t(n + off), -1.0f, 1.0f);
        const std::vector<float> w = random_floats(rng, size_t(D + off), 0.5f, 1.5f);
        const std::vector<float> b = random_floats(rng, size_t(D + off), -0.5f, 0.5f);
        std::vector<float> sum(static_cast<size_t>(n)), ref(static_cast<size_t>(n));
        fuselm::add_cpu({sum.data(), x.data() + off, r.data() + off, T, D}, ref_exec());
        if (layer_norm)
          fuselm::layer_norm_cpu({ref.data(), sum.data(), w.data() + off, b.data() + off, T, D, 1e-5f}, ref_exec());
        else
          fuselm::rms_norm_cpu({ref.data(), sum.data(), w.data() + off, T, D, 1e-5f}, ref_exec());
        DeviceBuffer<float> dx(x), dr(r), dw(w), db(b), dout(size_t(n + off));
        fuselm::add_norm_cuda({dout.p + off, dx.p + off, dr.p + off, dw.p + off, layer_norm ? db.p + off : nullptr, T,
                               D, 1e-5f},
                              nullptr);
        const std::vector<float> got_x = dx.download(), got = dout.download();
        exact.check(label(T, D, mode) + " x", got_x.data() + off, sum.data(), sum.size());
        p.check(label(T, D, mode), got.data() + off, ref.data(), ref.size());
      }
  DeviceBuffer<float> buf(20000);
  expect_invalid_arg("add_norm out == x", [&] {
    fuselm::add_norm_cuda({buf.p, buf.p, buf.p, buf.p, layer_norm ? buf.p : nullptr, 1, 8, 1e-5f}, nullptr);
  });
  expect_invalid_arg("add_norm D = 16385", [&] {
    fuselm::add_norm_cuda({buf.p, buf.p + 1, buf.p, buf.p, layer_norm ? buf.p : nullptr, 1, 16385, 1e-5f}, nullptr);
  });
  p.report();
  note("x bit-exact in " + std::to_string(exact.cases) + " cases");
}

}  // namespace

EMU_TEST(layer_norm_f32_parity) {
  Rng rng(0x1a7e);
  Parity p(2e-6, 4e-6);
  for (int64_t D : kWidths)
    for (int64_t T : {int64_t(1), int64_t(3)})
      for (int mode = 0; mode < 3; mode++) layer_norm_case(p, rng, T, D, mode, 0.0f);
  Parity offset(1e-5, 5e-5);
  for (int64_t D : {int64_t(33), int64_t(4096)}) layer_norm_case(offset, rng, 2, D, 0, 50.0f);
  DeviceBuffer<float> buf(16386);
  expect_invalid_arg("layer_norm D = 16385", [&] {
    fuselm::layer_norm_cuda({buf.p, buf.p + 1, buf.p, buf.p, 1, 16385, 1e-5f}, nullptr);
  });
  p.report();
  char buf2[96];
  std::snprintf(buf2, sizeof buf2, "offset 50: worst rel %.2g max abs %.2g", offset.worst_rel, offset.worst_abs);
  note(buf2);
}

// add_norm_cuda with quantize_to: out and x bit for bit as without it, and the workspace holds
// what quantize_x_q8_cuda writes from that out, bit for bit (int8 and scales): widths 32, 96,
// 4096 and 16384 (float4 path), 96 misaligned (scalar path), 1, 3 and 8 rows, both norms; a
// width not of whole 32-value blocks or a misaligned workspace throws.
void add_norm_quantize_cases(bool layer_norm) {
  Rng rng(layer_norm ? 0xa1f1 : 0xa1f2);
  int cases = 0;
  for (int64_t D : {int64_t(32), int64_t(96), int64_t(4096), int64_t(16384)})
    for (int64_t T : {int64_t(1), int64_t(3), int64_t(8)})
      for (int mode = 0; mode < 2; mode++) {
        if (mode && D != 96) continue;
        const int64_t off = mode, n = T * D;
        const std::vector<float> x = random_floats(rng, size_t(n + off), -3.0f, 3.0f);
        const std::vector<float> r = random_floats(rng, size_t(n + off), -1.0f, 1.0f);
        const std::vector<float> w = random_floats(rng, size_t(D + off), 0.5f, 1.5f);
        const std::vector<float> b = random_floats(rng, size_t(D + off), -0.5f, 0.5f);
        const size_t ws_bytes = fuselm::quantize_x_q8_bytes(T, D);
        DeviceBuffer<float> dx1(x), dx2(x), dr(r), dw(w), db(b), out1(size_t(n + off)), out2(size_t(n + off));
        DeviceBuffer<uint8_t> ws1(ws_bytes), ws2(ws_bytes);
        const float* bias = layer_norm ? db.p + off : nullptr;
        fuselm::add_norm_cuda({out1.p + off, dx1.p + off, dr.p + off, dw.p + off, bias, T, D, 1e-5f}, nullptr);
        int8_t* q;
        float* d;
        fuselm::quantize_x_q8_cuda(out1.p + off, T, D, ws1.p, q, d, nullptr);
        fuselm::add_norm_cuda({out2.p + off, dx2.p + off, dr.p + off, dw.p + off, bias, T, D, 1e-5f, ws2.p}, nullptr);
        const std::string what = std::string(layer_norm ? "layer_norm" : "rms_norm") + " T=" + std::to_string(T) +
                                 " D=" + std::to_string(D) + (mode ? " misaligned" : "");
        CHECK_MSG(out1.download() == out2.download() && dx1.download() == dx2.download(), what + ": out or x differs");
        CHECK_MSG(ws1.download() == ws2.download(), what + ": the quantized out differs from quantize_x_q8_cuda's");
        cases++;
      }
  DeviceBuffer<float> buf(256);
  DeviceBuffer<uint8_t> ws(4096);
  expect_invalid_arg("add_norm quantizing D = 48", [&] {
    fuselm::add_norm_cuda({buf.p, buf.p + 64, buf.p, buf.p, nullptr, 1, 48, 1e-5f, ws.p}, nullptr);
  });
  expect_invalid_arg("add_norm quantizing into a misaligned workspace", [&] {
    fuselm::add_norm_cuda({buf.p, buf.p + 64, buf.p, buf.p, nullptr, 1, 32, 1e-5f, ws.p + 16}, nullptr);
  });
  note(std::to_string(cases) + " cases bit-exact against add_norm then quantize_x_q8_cuda");
}

EMU_TEST(add_norm_rms_f32_parity) { add_norm_cases(false); }

EMU_TEST(add_norm_layer_norm_f32_parity) { add_norm_cases(true); }

EMU_TEST(add_norm_quantize_rms_parity) { add_norm_quantize_cases(false); }

EMU_TEST(add_norm_quantize_layer_norm_parity) { add_norm_quantize_cases(true); }

}  // namespace emu_tests
