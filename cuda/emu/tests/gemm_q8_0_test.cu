// Proves: matmul_gemm_q8_0_cuda (cuda/gemm_q8_0.cu) computes W8A8 as the CPU's fast q8_0 path
// does (native/cpu/matmul.cc): x quantized per block of 32, exact int32 dot products per block,
// scaled by d_w * d_x in f32.
// - The quantized x it leaves in the workspace (q int8 [T, K], then d f32 [T, K/32] at the next
//   256-byte boundary) equals, bit for bit, the CPU's own quantization (quantize_row_q8_cpu,
//   native/cpu/matmul.cc, as llama.cpp: q = round-to-nearest-even(x * (127 / max|x|)) clamped
//   to +-127, NaN -> 0, d = max|x| / 127 rounded to f16), including an all-zero block, exact .5
//   ties, subnormals, large values (d ~ 1.3e4; beyond 65504 * 127 the f16 scale is inf, as in
//   llama.cpp), and blocks holding NaN and inf. y from it also matches matmul_cpu's portable
//   (quantizing) path within f32 rounding.
// - y against the integer reference: sum over blocks of double(int dot) * f32(d_w * d_x) in
//   f64. The kernel differs only by f32 rounding of at most K/32 = 16 products and sums of
//   |y| <= ~20 (half an ulp of 20 is 1e-6): rel 1e-6, abs 2e-5. One int8 product off by one
//   would move y by ~d_w * d_x * |q_w| ~ 3e-3.
// - y against the f32 reference (x not quantized): x's rounding to 8 bits moves each value by at
//   most half a step plus 127 times d_x's rounding to f16 (2^-11 of it), ~0.563 d_x, so each
//   output by at most sum_k |w_k| 0.563 d_x: checked per output
//   (the normalized error, expected ~1/254 for uniform x, is reported).
// Sizes: T = 1, 33, 130 (tiles of 128), N = 5, 77, 200 (tiles of 128), K = 32 .. 512 (tiles of
// 64: an odd block count leaves half a tile; 8 tiles run the 3-stage ring round more than
// twice), the weights as the device holds them (q8_0 planes, native/q8_0_planes.h), once 16
// bytes into their buffer.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/dequant.h"
#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "parity.h"

namespace emu_tests {

namespace {

using fuselm::DType;
using fuselm::kQ8Block;

std::vector<uint8_t> random_q8_rows(Rng& rng, int64_t N, int64_t K, size_t offset) {
  std::vector<uint8_t> w(offset + fuselm::row_bytes(DType::Q8_0, K) * size_t(N));
  for (int64_t i = 0; i < N * (K / kQ8Block); i++) {
    fuselm::BlockQ8_0 b;
    b.d = fuselm::f32_to_f16(rng.uniform(0.002f, 0.01f));
    for (int j = 0; j < kQ8Block; j++) b.qs[j] = int8_t(int(rng.next() % 256) - 128);
    std::memcpy(w.data() + offset + sizeof b * size_t(i), &b, sizeof b);
  }
  return w;
}

// y from the quantized x: exact integer block sums, f32 scale products, f64 sums.
void integer_reference(float* y, const int8_t* xq, const float* xd, const uint8_t* w, int64_t T, int64_t K, int64_t N) {
  const int64_t nb = K / kQ8Block;
  for (int64_t t = 0; t < T; t++)
    for (int64_t n = 0; n < N; n++) {
      double s = 0;
      for (int64_t b = 0; b < nb; b++) {
        fuselm::BlockQ8_0 blk;
        std::memcpy(&blk, w + size_t(n * nb + b) * sizeof blk, sizeof blk);
        int32_t dot = 0;
        for (int j = 0; j < kQ8Block; j++) dot += int32_t(blk.qs[j]) * int32_t(xq[t * K + b * kQ8Block + j]);
        const float sc = fuselm::f16_to_f32(blk.d) * xd[t * nb + b];
        s += double(dot) * double(sc);
      }
      y[t * N + n] = float(s);
    }
}

struct Case {
  int64_t T, K, N;
  size_t w_off;  // bytes into the weights' buffer (a multiple of 16: the planes' alignment)
  bool specials;  // x holds the quantizer's edge cases (rows with NaN / inf: y NaN)
};

// Fills x's first blocks with the quantizer's edge cases.
void put_specials(std::vector<float>& x, int64_t K) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  float* b0 = x.data();  // all zero: d = 0, q = 0
  for (int j = 0; j < kQ8Block; j++) b0[j] = 0.f;
  float* b1 = x.data() + kQ8Block;  // amax 127: d = 1, so x * (127/amax) = x, and .5 ties round to even
  for (int j = 0; j < kQ8Block; j++) b1[j] = float(j % 2 ? -(j / 2) : j / 2) + 0.5f;
  b1[0] = 127.f;
  float* b2 = x.data() + 2 * kQ8Block;  // subnormals
  for (int j = 0; j < kQ8Block; j++) b2[j] = float(j - 16) * 1e-40f;
  float* b3 = x.data() + 3 * kQ8Block;  // large: d = 16e5 / 127 ~ 1.3e4 (f16 holds up to 65504)
  for (int j = 0; j < kQ8Block; j++) b3[j] = float(j - 15) * 1e5f;
  x[size_t(K) + 5] = nan;                  // row 1, block 0
  x[size_t(K) + kQ8Block + 7] = inf;       // row 1, block 1
  x[size_t(K) + kQ8Block + 8] = -inf;
}

void q8_cases(const std::vector<Case>& cases) {
  Rng rng(0x8a0);
  Parity exact(1e-6, 2e-5), cpu(1e-6, 2e-5);
  double worst_plain_rel = 0, worst_bound_frac = 0;
  static fuselm::ThreadPool pool(1);
  int64_t quantized = 0;
  for (const Case& c : cases) {
    const int64_t nb = c.K / kQ8Block;
    std::vector<float> x = random_floats(rng, size_t(c.T * c.K), -1.0f, 1.0f);
    if (c.specials) put_specials(x, c.K);
    const std::vector<uint8_t> w = random_q8_rows(rng, c.N, c.K, c.w_off);
    const std::string what = "T=" + std::to_string(c.T) + " K=" + std::to_string(c.K) + " N=" + std::to_string(c.N) +
                             (c.w_off ? " w at +" + std::to_string(c.w_off) : "") + (c.specials ? " special x" : "");

    const size_t ws = fuselm::matmul_cuda_workspace(DType::Q8_0, c.T, c.K);
    const size_t d_at = (size_t(c.T * c.K) + 255) / 256 * 256;
    CHECK(ws == d_at + size_t(c.T * nb) * 4);
    DeviceBuffer<float> dx(x), dy(size_t(c.T * c.N));
    DeviceBuffer<uint8_t> dw(device_weights(DType::Q8_0, w, c.w_off)), dws(ws);
    fuselm::matmul_gemm_q8_0_cuda({dy.p, dx.p, dw.p + c.w_off, DType::Q8_0, c.T, c.K, c.N}, dws.p, nullptr);
    const std::vector<float> got = dy.download();
    const std::vector<uint8_t> wsh = dws.download();

    // The quantized x, bit for bit.
    std::vector<int8_t> xq(size_t(c.T * c.K));
    std::vector<float> xd(size_t(c.T * nb));
    for (int64_t t = 0; t < c.T; t++) fuselm::quantize_row_q8_cpu(x.data() + t * c.K, c.K, xq.data() + t * c.K, xd.data() + t * nb);
    CHECK_MSG(std::memcmp(wsh.data(), xq.data(), xq.size()) == 0, what + ": quantized x differs");
    CHECK_MSG(std::memcmp(wsh.data() + d_at, xd.data(), xd.size() * 4) == 0, what + ": x block scales differ");
    quantized += c.T * nb;

    std::vector<float> want(size_t(c.T * c.N));
    integer_reference(want.data(), xq.data(), xd.data(), w.data() + c.w_off, c.T, c.K, c.N);
    const double typical = 0.1 * std::sqrt(double(c.K));
    if (c.specials) {  // row 0: |y| ~ 1e6 from the large block, relative; row 1: NaN; row 2 as usual
      for (int64_t n = 0; n < c.N; n++) {
        CHECK_MSG(std::fabs(double(got[n]) - want[n]) <= 1e-6 * std::fabs(double(want[n])), what + ": row 0");
        CHECK_MSG(std::isnan(got[c.N + n]), what + ": a row with NaN / inf in x gives NaN");
      }
      exact.check(what + " row 2", got.data() + 2 * c.N, want.data() + 2 * c.N, size_t(c.N), typical);
      continue;
    }
    exact.check(what, got.data(), want.data(), want.size(), typical);
    // The formula above is the CPU's: its quantizing fast path (portable level) agrees.
    std::vector<float> fast(want.size());
    fuselm::matmul_cpu({fast.data(), x.data(), w.data() + c.w_off, DType::Q8_0, c.T, c.K, c.N},
                       fuselm::Exec{&pool, fuselm::Impl::kPortable});
    cpu.check(what + " (integer reference vs CPU fast path)", want.data(), fast.data(), want.size(), typical);
    // Against f32 x: each x value moves by at most half a quantization step plus 127 times the
    // f16 rounding of d_x (2^-11 of it): 0.5 + 127 * 2^-11 < 0.563 of d_x, so each output by at
    // most sum_k |w_k| * 0.563 * d_x(block of k) (plus the f32 sums' 2e-5 above).
    std::vector<float> ref(want.size());
    fuselm::matmul_cpu({ref.data(), x.data(), w.data() + c.w_off, DType::Q8_0, c.T, c.K, c.N}, ref_exec());
    std::vector<float> wrow(size_t(c.K));
    double num = 0, den = 0;
    for (int64_t n = 0; n < c.N; n++) {
      fuselm::dequant_row_ref(w.data() + c.w_off + fuselm::row_bytes(DType::Q8_0, c.K) * size_t(n), DType::Q8_0, c.K,
                              wrow.data());
      for (int64_t t = 0; t < c.T; t++) {
        double bound = 2e-5;
        for (int64_t k = 0; k < c.K; k++) bound += std::fabs(wrow[size_t(k)]) * xd[size_t(t * nb + k / kQ8Block)] * 0.563;
        const double err = std::fabs(double(got[t * c.N + n]) - ref[t * c.N + n]);
        CHECK_MSG(err <= bound, what + ": against f32 x, y[" + std::to_string(t) + ", " + std::to_string(n) +
                                    "] off by " + std::to_string(err) + " > " + std::to_string(bound));
        num += err * err;
        den += double(ref[t * c.N + n]) * ref[t * c.N + n];
        worst_bound_frac = std::max(worst_bound_frac, err / bound);
      }
    }
    worst_plain_rel = std::max(worst_plain_rel, std::sqrt(num / den));
  }
  exact.report();
  char buf[160];
  std::snprintf(buf, sizeof buf, "%lld x blocks quantized bit-exact; CPU fast path vs integer reference: worst rel %.2g",
                static_cast<long long>(quantized), cpu.worst_rel);
  note(buf);
  std::snprintf(buf, sizeof buf, "against f32 x: worst rel %.2g, worst error %.2g of its bound", worst_plain_rel,
                worst_bound_frac);
  note(buf);
}

}  // namespace

EMU_TEST(gemm_q8_0_parity) {
  q8_cases({
      {1, 32, 5, 0, false},
      {33, 96, 77, 0, false},
      {130, 512, 200, 0, false},
      {17, 160, 130, 16, false},
      {3, 128, 9, 0, true},
  });
}

// Inputs the launcher refuses: no workspace, K not whole blocks, another weight dtype, planes
// off 16-byte alignment.
EMU_TEST(gemm_q8_0_errors) {
  DeviceBuffer<float> x(64 * 2), y(4);
  DeviceBuffer<uint8_t> w(34 * 4), ws(4096);
  bool threw = false;
  try {
    fuselm::matmul_gemm_q8_0_cuda({y.p, x.p, w.p, DType::Q8_0, 2, 64, 2}, nullptr, nullptr);
  } catch (const fuselm::Error&) { threw = true; }
  CHECK(threw);
  threw = false;
  try {
    fuselm::matmul_gemm_q8_0_cuda({y.p, x.p, w.p, DType::Q8_0, 2, 48, 2}, ws.p, nullptr);
  } catch (const fuselm::Error&) { threw = true; }
  CHECK(threw);
  threw = false;
  try {
    fuselm::matmul_gemm_q8_0_cuda({y.p, x.p, w.p, DType::F16, 2, 64, 2}, ws.p, nullptr);
  } catch (const fuselm::Error&) { threw = true; }
  CHECK(threw);
  threw = false;
  try {
    fuselm::matmul_gemm_q8_0_cuda({y.p, x.p, w.p + 2, DType::Q8_0, 2, 64, 1}, ws.p, nullptr);
  } catch (const fuselm::Error&) { threw = true; }
  CHECK(threw);
}

}  // namespace emu_tests
