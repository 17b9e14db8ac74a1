// Proves: matmul_gemm_quant_cuda (cuda/gemm_quant.cu), the prefill GEMM that dequantizes GGUF
// block-format weights into f16 tiles for mma m16n8k16, equals the plain f32 matmul (f64 sums of
// f32 x times the weights dequantized value by value, quant_blocks_ref.h) within f16 rounding,
// for q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k and iq4_xs:
// - each product w * x becomes f16(w) * f16(x), off by at most (2u + u^2) |w x| with u = 2^-11,
//   and the f32 sums add a few ulps of sum |w x|: per output, err <= 2.2 * 2^-11 * sum_k |w_k x_k|
//   + 1e-6, checked for every output. A wrong nibble, scale or row moves y by far more (the
//   weights' steps are >= d ~ 1e-3 relative to |w| ~ 1 and no rounding hides them).
// - the normalized error is bounded by 2^-10 (expected ~2^-11 / sqrt(3) for random signs).
// Shapes: T = 3 (a mostly empty 64-token tile), 64 and 130 (3 tiles, the last with 2 tokens),
// N = 5, 77, 200 (tiles of 128), K = 1, 2 and 3 super-blocks (legacy: 1, 3, 8 and 24 blocks);
// w 2 bytes past 4-byte alignment for the 2-byte formats; x one float off 16-byte alignment
// (the scalar x loads) in some cases.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "parity.h"
#include "quant_blocks_ref.h"

namespace emu_tests {

namespace {

using fuselm::DType;

struct GCase { int64_t T, K, N; bool x_off; };

void gemm_quant_cases(DType dt) {
  const QFormat& f = quant_format(dt);
  Rng rng(0x6e0 + uint64_t(dt));
  Parity p(std::ldexp(1.0, -10), 1.0);  // abs: the per-output bound below is the real check
  const int64_t sb = f.values;
  const std::vector<GCase> cases = sb == 32 ? std::vector<GCase>{{3, 32, 5, false}, {64, 96, 77, true}, {130, 256, 200, false}, {9, 768, 33, false}}
                                            : std::vector<GCase>{{3, 256, 5, false}, {64, 512, 77, true}, {130, 768, 200, false}};
  double worst_frac = 0;
  const size_t off = f.bytes % 4 ? 2 : 0;
  for (const GCase& c : cases) {
    const std::vector<float> x = random_floats(rng, size_t(c.T * c.K + 1), -1.0f, 1.0f);
    const std::vector<uint8_t> w = random_quant_rows(rng, f, c.N, c.K, off);
    const std::string what = std::string(fuselm::dtype_name(dt)) + " T=" + std::to_string(c.T) + " K=" +
                             std::to_string(c.K) + " N=" + std::to_string(c.N) + (c.x_off ? " x misaligned" : "");
    DeviceBuffer<float> dx(x), dy(size_t(c.T * c.N));
    DeviceBuffer<uint8_t> dw(w);
    const float* xp = x.data() + (c.x_off ? 1 : 0);
    fuselm::matmul_gemm_quant_cuda({dy.p, dx.p + (c.x_off ? 1 : 0), dw.p + off, dt, c.T, c.K, c.N}, nullptr);
    const std::vector<float> got = dy.download();
    std::vector<float> want(size_t(c.T * c.N)), wrow(size_t(c.K));
    for (int64_t n = 0; n < c.N; n++) {
      dequant_quant_row(f, w.data() + off, n, c.K, wrow.data());
      for (int64_t t = 0; t < c.T; t++) {
        double s = 0, mag = 0;
        for (int64_t k = 0; k < c.K; k++) {
          s += double(wrow[size_t(k)]) * double(xp[t * c.K + k]);
          mag += std::fabs(double(wrow[size_t(k)]) * double(xp[t * c.K + k]));
        }
        want[size_t(t * c.N + n)] = float(s);
        const double bound = 2.2 * std::ldexp(1.0, -11) * mag + 1e-6;
        const double err = std::fabs(double(got[size_t(t * c.N + n)]) - s);
        CHECK_MSG(err <= bound, what + ": y[" + std::to_string(t) + ", " + std::to_string(n) + "] off by " +
                                    std::to_string(err) + " > " + std::to_string(bound));
        worst_frac = std::max(worst_frac, err / bound);
      }
    }
    p.check(what, got.data(), want.data(), want.size());
  }
  p.report();
  char buf[96];
  std::snprintf(buf, sizeof buf, "worst error %.2g of its per-output bound", worst_frac);
  note(buf);
}

}  // namespace

EMU_TEST(gemm_quant_q4_0_parity) { gemm_quant_cases(DType::Q4_0); }
EMU_TEST(gemm_quant_q4_1_parity) { gemm_quant_cases(DType::Q4_1); }
EMU_TEST(gemm_quant_q5_0_parity) { gemm_quant_cases(DType::Q5_0); }
EMU_TEST(gemm_quant_q5_1_parity) { gemm_quant_cases(DType::Q5_1); }
EMU_TEST(gemm_quant_iq4_nl_parity) { gemm_quant_cases(DType::IQ4_NL); }
EMU_TEST(gemm_quant_q2_k_parity) { gemm_quant_cases(DType::Q2_K); }
EMU_TEST(gemm_quant_q3_k_parity) { gemm_quant_cases(DType::Q3_K); }
EMU_TEST(gemm_quant_q4_k_parity) { gemm_quant_cases(DType::Q4_K); }
EMU_TEST(gemm_quant_q5_k_parity) { gemm_quant_cases(DType::Q5_K); }
EMU_TEST(gemm_quant_q6_k_parity) { gemm_quant_cases(DType::Q6_K); }
EMU_TEST(gemm_quant_iq4_xs_parity) { gemm_quant_cases(DType::IQ4_XS); }

// Inputs the launcher refuses: K not whole super-blocks, misaligned weights, q8_0 (its own
// GEMM) and plain dtypes.
EMU_TEST(gemm_quant_errors) {
  DeviceBuffer<float> x(64 * 512), y(64 * 4);
  DeviceBuffer<uint8_t> w(176 * 8 + 4);
  auto throws = [&](DType dt, int64_t K, size_t w_off) {
    try {
      fuselm::matmul_gemm_quant_cuda({y.p, x.p, w.p + w_off, dt, 64, K, 2}, nullptr);
    } catch (const fuselm::Error& e) {
      return e.code == "E_INVALID_ARG";
    }
    return false;
  };
  CHECK(throws(DType::Q5_K, 288, 0));
  CHECK(throws(DType::Q5_K, 256, 2));
  CHECK(throws(DType::Q6_K, 256, 1));
  CHECK(throws(DType::Q8_0, 256, 0));
  CHECK(throws(DType::BF16, 256, 0));
  CHECK(!throws(DType::Q5_K, 512, 0));
}

}  // namespace emu_tests
