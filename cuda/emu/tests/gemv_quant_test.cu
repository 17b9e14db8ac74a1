// Proves: matmul_gemv_quant_cuda (cuda/gemv_quant.cu), the dp4a decode GEMV, computes y from
// the int8-quantized x and the block-format weights exactly as their definitions say, for each
// GGUF format (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs):
// - y against the quantized-x reference: sum_k w[k] * (q_x[k] * d_x[block]) in f64, with w from
//   a plain value-by-value dequantization (quant_blocks_ref.h) and q_x, d_x from the CPU's
//   quantizer (quantize_row_q8_cpu; the kernel's quantized x is that bit for bit, gemm_q8_0_test).
//   The kernel's integer dots are exact, so only f32 rounding separates them: its scale
//   products (a * dot, d_x * that) and the f32 sums over K / 32 units, a few ulps of terms
//   whose size is that of |y|'s summands: rel 1e-5 (normalized by at least the rms of
//   sqrt(sum_k (w_k x_k)^2), the scale of that rounding), abs 1e-4 (|y| <= ~10). One wrong bit of one weight moves y by >= d * |x_q| * d_x ~ 1e-3.
// - y against f32 x (the plain matmul): each x value moves by at most 0.563 d_x (half a step plus
//   127 times d_x's rounding to f16), so each output by at most sum_k |w_k| 0.563 d_x(k) + 1e-4,
//   checked per output; the normalized error (~1/254 of |y|, as llama.cpp's) is reported.
// - the test's own dequantization agrees with the CPU's (dequant_row_ref) to f32 rounding.
// Shapes: K of 1, 3 and 13 super-blocks (legacy: 1, 3, 41 blocks; the longest rows leave 8 or 9
// lanes two units in the last step, the others one), N = 1, 7
// (a partial block of 4 warps) and 33, T = 1, 2, 3, 8 (one launch, the token loop's four widths
// 1, 2, 4, 8), 11 (two launches: 8 + 3) and 64 (eight); w 2 bytes past 4-byte alignment for the 2-byte formats.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cpu/dequant.h"
#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "ops/swiglu.h"
#include "parity.h"
#include "quant_blocks_ref.h"

namespace emu_tests {

namespace {

using fuselm::DType;

void gemv_quant_cases(DType dt) {
  const QFormat& f = quant_format(dt);
  Rng rng(0x9e7 + uint64_t(dt));
  Parity exact(1e-5, 1e-4);
  double worst_rel = 0, worst_bound = 0;
  const std::vector<int64_t> Ks = f.values == 32 ? std::vector<int64_t>{32, 96, 1312} : std::vector<int64_t>{256, 768, 3328};
  const bool a4 = f.bytes % 4 == 0 || dt == DType::Q8_0;  // (q8_0: 16-byte aligned planes)
  for (int64_t K : Ks)
    for (int64_t N : {int64_t(1), int64_t(7), int64_t(33)})
      for (int64_t T : {int64_t(1), int64_t(2), int64_t(3), int64_t(8), int64_t(11), int64_t(64)}) {
        if (T == 2 && N != 7) continue;
        if (K == Ks.back() && T != 3 && N != 33) continue;  // the long rows: fewer cases (emulator time)
        if (T == 64 && (K != Ks.front() || N != 7)) continue;  // 8 launches of 8 tokens: one case
        const size_t off = a4 ? 0 : 2;
        const int64_t nb = K / 32;
        const std::vector<float> x = random_floats(rng, size_t(T * K), -1.0f, 1.0f);
        const std::vector<uint8_t> w = random_quant_rows(rng, f, N, K, off);
        const std::string what = std::string(fuselm::dtype_name(dt)) + " T=" + std::to_string(T) +
                                 " K=" + std::to_string(K) + " N=" + std::to_string(N);
        DeviceBuffer<float> dx(x), dy(size_t(T * N));
        DeviceBuffer<uint8_t> dw(device_weights(dt, w, off)), ws(fuselm::matmul_cuda_workspace(dt, T, K));
        CHECK(ws.n >= size_t(std::min<int64_t>(T, 8) * (K + nb * 4)));
        fuselm::matmul_gemv_quant_cuda({dy.p, dx.p, dw.p + off, dt, T, K, N}, ws.p, nullptr);
        const std::vector<float> got = dy.download();

        std::vector<int8_t> xq(size_t(T * K));
        std::vector<float> xd(size_t(T * nb)), wrow(static_cast<size_t>(K)), want(size_t(T * N));
        for (int64_t t = 0; t < T; t++) fuselm::quantize_row_q8_cpu(x.data() + t * K, K, xq.data() + t * K, xd.data() + t * nb);
        double num = 0, den = 0, mag2 = 0;
        std::vector<float> wcpu(static_cast<size_t>(K));
        for (int64_t n = 0; n < N; n++) {
          dequant_quant_row(f, w.data() + off, n, K, wrow.data());
          // the CPU's reference dequantization (native/cpu/quant_ref.h) agrees with this one
          fuselm::dequant_row_ref(w.data() + off + size_t(n) * fuselm::row_bytes(dt, K), dt, K, wcpu.data());
          for (int64_t k = 0; k < K; k++)
            CHECK_MSG(std::fabs(wcpu[size_t(k)] - wrow[size_t(k)]) <= 1e-6f * std::fabs(wrow[size_t(k)]) + 1e-12f,
                      what + ": dequant_row_ref differs at k = " + std::to_string(k));
          for (int64_t t = 0; t < T; t++) {
            double sq = 0, sf = 0, bound = 1e-4;
            for (int64_t k = 0; k < K; k++) {
              const double wk = wrow[size_t(k)], dxk = xd[size_t(t * nb + k / 32)];
              sq += wk * double(xq[size_t(t * K + k)]) * dxk;
              mag2 += (wk * double(xq[size_t(t * K + k)]) * dxk) * (wk * double(xq[size_t(t * K + k)]) * dxk);
              sf += wk * double(x[size_t(t * K + k)]);
              bound += std::fabs(wk) * 0.563 * dxk;
            }
            want[size_t(t * N + n)] = float(sq);
            const double err = std::fabs(double(got[size_t(t * N + n)]) - sf);
            CHECK_MSG(err <= bound, what + ": against f32 x, y[" + std::to_string(t) + ", " + std::to_string(n) +
                                        "] off by " + std::to_string(err) + " > " + std::to_string(bound));
            worst_bound = std::max(worst_bound, err / bound);
            num += err * err;
            den += sf * sf;
          }
        }
        worst_rel = std::max(worst_rel, std::sqrt(num / std::max(den, mag2)));  // mag2: a floor, as below
        // the floor of the normalized error: the rms over outputs of sqrt(sum_k (w_k x_k)^2), the
        // size of the terms whose f32 rounding the kernel adds up (an output can cancel to ~0)
        const double typical = std::sqrt(mag2 / double(want.size()));
        exact.check(what, got.data(), want.data(), want.size(), typical);
      }
  exact.report();
  char buf[128];
  std::snprintf(buf, sizeof buf, "against f32 x: worst rel %.2g, worst error %.2g of its bound", worst_rel, worst_bound);
  note(buf);
}

}  // namespace

EMU_TEST(gemv_quant_q8_0_parity) { gemv_quant_cases(DType::Q8_0); }
EMU_TEST(gemv_quant_q4_0_parity) { gemv_quant_cases(DType::Q4_0); }
EMU_TEST(gemv_quant_q4_1_parity) { gemv_quant_cases(DType::Q4_1); }
EMU_TEST(gemv_quant_q5_0_parity) { gemv_quant_cases(DType::Q5_0); }
EMU_TEST(gemv_quant_q5_1_parity) { gemv_quant_cases(DType::Q5_1); }
EMU_TEST(gemv_quant_iq4_nl_parity) { gemv_quant_cases(DType::IQ4_NL); }
EMU_TEST(gemv_quant_q2_k_parity) { gemv_quant_cases(DType::Q2_K); }
EMU_TEST(gemv_quant_q3_k_parity) { gemv_quant_cases(DType::Q3_K); }
EMU_TEST(gemv_quant_q4_k_parity) { gemv_quant_cases(DType::Q4_K); }
EMU_TEST(gemv_quant_q5_k_parity) { gemv_quant_cases(DType::Q5_K); }
EMU_TEST(gemv_quant_q6_k_parity) { gemv_quant_cases(DType::Q6_K); }
EMU_TEST(gemv_quant_iq4_xs_parity) { gemv_quant_cases(DType::IQ4_XS); }

// Inputs the launcher refuses: no workspace, K not whole super-blocks, misaligned weights, a
// plain dtype.
EMU_TEST(gemv_quant_errors) {
  DeviceBuffer<float> x(512), y(4);
  DeviceBuffer<uint8_t> w(144 * 4 + 4), ws(4096);
  auto throws = [&](DType dt, int64_t K, size_t w_off, bool with_ws) {
    try {
      fuselm::matmul_gemv_quant_cuda({y.p, x.p, w.p + w_off, dt, 1, K, 2}, with_ws ? ws.p : nullptr, nullptr);
    } catch (const fuselm::Error& e) {
      return e.code == "E_INVALID_ARG";
    }
    return false;
  };
  CHECK(throws(DType::Q4_K, 256, 0, false));
  CHECK(throws(DType::Q4_K, 288, 0, true));
  CHECK(throws(DType::Q4_K, 256, 2, true));
  CHECK(throws(DType::Q4_0, 64, 1, true));
  CHECK(throws(DType::Q8_0, 64, 2, true));  // q8_0's planes need 16-byte alignment
  CHECK(throws(DType::F16, 256, 0, true));
  CHECK(!throws(DType::Q4_K, 256, 0, true));
}

// Up to three matmuls on one x in one launch (matmul_gemv_quant_group_cuda: q, k, v; gate, up)
// write, bit for bit, what each alone writes: parts of 33, 7 and 1 rows, 9 and 4 rows, and 9,
// 0 and 4 (a part without rows gets no blocks), T = 1, 3 and 11 (two launches of 8 + 3), a
// q8_0 (its planes) and a 4-byte aligned format (q4_k). Matmuls that do not share x, T, K and the
// weight type are refused.
EMU_TEST(gemv_quant_group_parity) {
  Rng rng(0x6e7);
  int cases = 0;
  for (DType dt : {DType::Q8_0, DType::Q4_K}) {
    const QFormat& f = quant_format(dt);
    const int64_t K = f.values == 32 ? 96 : 512;
    const size_t off = f.bytes % 4 == 0 || dt == DType::Q8_0 ? 0 : 2;
    for (const std::vector<int64_t>& Ns : {std::vector<int64_t>{33, 7, 1}, {9, 4}, {9, 0, 4}})
      for (int64_t T : {int64_t(1), int64_t(3), int64_t(11)}) {
        const int count = int(Ns.size());
        DeviceBuffer<float> dx(random_floats(rng, size_t(T * K), -1.0f, 1.0f));
        DeviceBuffer<uint8_t> ws(fuselm::matmul_cuda_workspace(dt, T, K));
        std::vector<std::unique_ptr<DeviceBuffer<uint8_t>>> w;
        std::vector<std::unique_ptr<DeviceBuffer<float>>> together, alone;
        std::vector<fuselm::MatmulArgs> m;
        for (int j = 0; j < count; j++) {
          w.push_back(std::make_unique<DeviceBuffer<uint8_t>>(device_weights(dt, random_quant_rows(rng, f, Ns[size_t(j)], K, off), off)));
          together.push_back(std::make_unique<DeviceBuffer<float>>(std::vector<float>(size_t(T * Ns[size_t(j)]) + 1, -7.0f)));
          alone.push_back(std::make_unique<DeviceBuffer<float>>(std::vector<float>(size_t(T * Ns[size_t(j)]) + 1, -7.0f)));
          m.push_back({together.back()->p, dx.p, w.back()->p + off, dt, T, K, Ns[size_t(j)]});
        }
        fuselm::matmul_gemv_quant_group_cuda(m.data(), count, ws.p, nullptr);
        for (int j = 0; j < count; j++) {
          fuselm::MatmulArgs one = m[size_t(j)];
          one.y = alone[size_t(j)]->p;
          fuselm::matmul_gemv_quant_cuda(one, ws.p, nullptr);
          const std::vector<float> a = together[size_t(j)]->download(), b = alone[size_t(j)]->download();
          CHECK_MSG(std::memcmp(a.data(), b.data(), a.size() * 4) == 0,
                    std::string(fuselm::dtype_name(dt)) + " T=" + std::to_string(T) + " part " + std::to_string(j) +
                        " of " + std::to_string(count) + ": the grouped launch differs from the part alone");
          CHECK_MSG(a.back() == -7.0f, "a part wrote past its rows");
        }
        cases++;
      }
  }
  DeviceBuffer<float> x(512), x2(512), y(64);
  DeviceBuffer<uint8_t> w(144 * 4), ws(4096);
  auto refused = [&](fuselm::MatmulArgs second) {
    const fuselm::MatmulArgs m[2] = {{y.p, x.p, w.p, DType::Q4_K, 1, 256, 2}, second};
    try {
      fuselm::matmul_gemv_quant_group_cuda(m, 2, ws.p, nullptr);
    } catch (const fuselm::Error& e) {
      return e.code == "E_INVALID_ARG";
    }
    return false;
  };
  CHECK(refused({y.p + 8, x2.p, w.p, DType::Q4_K, 1, 256, 2}));  // another x
  CHECK(refused({y.p + 8, x.p, w.p, DType::Q4_K, 2, 256, 2}));   // another T
  CHECK(refused({y.p + 8, x.p, w.p, DType::Q6_K, 1, 256, 2}));   // another weight type
  CHECK(!refused({y.p + 8, x.p, w.p, DType::Q4_K, 1, 256, 2}));
  note(std::to_string(cases) + " groups bit-exact against their parts alone");
}

// Gate, up and SwiGLU in one launch (matmul_swiglu_gemv_quant_cuda) write, bit for bit, what
// the grouped gate and up launch followed by swiglu_cuda writes, and leave gate's and up's own
// outputs untouched: N = 33 and 7, T = 1, 3 and 11, q8_0 and q4_k; K = 0 gives zeros.
EMU_TEST(gemv_quant_swiglu_parity) {
  Rng rng(0x5f1);
  int cases = 0;
  for (DType dt : {DType::Q8_0, DType::Q4_K}) {
    const QFormat& f = quant_format(dt);
    const int64_t K = f.values == 32 ? 96 : 512;
    const size_t off = f.bytes % 4 == 0 || dt == DType::Q8_0 ? 0 : 2;
    for (int64_t N : {int64_t(33), int64_t(7)})
      for (int64_t T : {int64_t(1), int64_t(3), int64_t(11)}) {
        DeviceBuffer<float> dx(random_floats(rng, size_t(T * K), -1.0f, 1.0f));
        DeviceBuffer<uint8_t> ws(fuselm::matmul_cuda_workspace(dt, T, K));
        DeviceBuffer<uint8_t> wg(device_weights(dt, random_quant_rows(rng, f, N, K, off), off)),
            wu(device_weights(dt, random_quant_rows(rng, f, N, K, off), off));
        const std::vector<float> sentinel(size_t(T * N), -7.0f);
        DeviceBuffer<float> g(sentinel), u(sentinel), fused(sentinel), ref(sentinel);
        const fuselm::MatmulArgs m[2] = {{g.p, dx.p, wg.p + off, dt, T, K, N}, {u.p, dx.p, wu.p + off, dt, T, K, N}};
        fuselm::matmul_swiglu_gemv_quant_cuda(m[0], m[1], fused.p, ws.p, nullptr);
        const std::vector<float> g_after = g.download(), u_after = u.download();
        CHECK_MSG(g_after == sentinel && u_after == sentinel, "the fused launch wrote gate's or up's own output");
        fuselm::matmul_gemv_quant_group_cuda(m, 2, ws.p, nullptr);
        fuselm::swiglu_cuda({ref.p, g.p, u.p, T, N}, nullptr);
        const std::vector<float> a = fused.download(), b = ref.download();
        CHECK_MSG(std::memcmp(a.data(), b.data(), a.size() * 4) == 0,
                  std::string(fuselm::dtype_name(dt)) + " T=" + std::to_string(T) + " N=" + std::to_string(N) +
                      ": the fused launch differs from gate, up and swiglu apart");
        cases++;
      }
  }
  DeviceBuffer<float> x(64), out(std::vector<float>(6, -7.0f));
  DeviceBuffer<uint8_t> w(64), ws(4096);
  fuselm::matmul_swiglu_gemv_quant_cuda({nullptr, x.p, w.p, DType::Q8_0, 2, 0, 3}, {nullptr, x.p, w.p, DType::Q8_0, 2, 0, 3},
                                        out.p, ws.p, nullptr);
  CHECK(out.download() == std::vector<float>(6, 0.0f));
  note(std::to_string(cases) + " cases bit-exact against gate, up and swiglu apart");
}

}  // namespace emu_tests
