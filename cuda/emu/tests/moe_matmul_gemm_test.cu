// Proves: moe_matmul_gemm_cuda (cuda/moe_matmul_gemm.cu), moe_matmul's grouped prefill GEMM,
// equals the plain product slot by slot (f64 sums of f32 x times expert ids[t, j]'s weights
// dequantized value by value, quant_blocks_ref.h) within f16 rounding, for q4_0, q5_0, q4_k and
// q6_k: per output err <= 2.2 * 2^-11 * sum_k |w_k x_k| + 1e-6 (as gemm_quant_test.cu argues),
// weighted outputs that bound times |weight| summed over the slots, plus a few f32 ulps of the
// residual sum; a slot written to another slot's row, a token gathered from the wrong x row or
// an expert's rows taken from another expert move outputs by far more.
// Routings: T = 9 top 2 of 4 (every expert a few tokens); T = 70 top 2 of 4 with every token's
// first slot on expert 0 (70 slots: two token tiles, the second of 6) and expert 3 never chosen;
// unweighted (each slot its own row of out) with x shared by the slots, and weighted (added to
// a random residual) with each slot's own x; N = 33 and 130 (two row tiles). Below 8 tokens,
// and for q8_0 and float weights, the call is not taken (the warp kernel runs them). An expert id outside the stack is
// recorded in the error word (1 + row, id), and nothing is read out of bounds.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "ops/moe_matmul.h"
#include "parity.h"
#include "quant_blocks_ref.h"

namespace emu_tests {

namespace {

using fuselm::DType;

struct MCase { int64_t T, E, k, N; bool weighted, first_on_zero; };

std::vector<int32_t> route(const MCase& c) {
  std::vector<int32_t> ids(size_t(c.T * c.k));
  for (int64_t t = 0; t < c.T; t++)
    for (int64_t j = 0; j < c.k; j++)
      ids[size_t(t * c.k + j)] = int32_t(c.first_on_zero ? (j == 0 ? 0 : 1 + t % 2) : (t + 2 * j + t / 3) % c.E);
  return ids;
}

void moe_gemm_cases(DType dt) {
  const QFormat& f = quant_format(dt);
  Rng rng(0x3e0 + uint64_t(dt));
  Parity p(std::ldexp(1.0, -10), 1.0);  // abs: the per-output bound below is the real check
  const int64_t K = f.values == 32 ? 96 : 256;
  double worst_frac = 0;
  for (const MCase& c : std::vector<MCase>{{9, 4, 2, 33, false, false}, {9, 4, 2, 33, true, false}, {70, 4, 2, 130, false, true}, {70, 4, 2, 130, true, true}}) {
    const int64_t S = c.T * c.k, xrows = c.weighted ? S : c.T, outs = c.weighted ? c.T * c.N : S * c.N;
    const std::vector<float> x = random_floats(rng, size_t(xrows * K), -1.0f, 1.0f);
    const std::vector<uint8_t> w = random_quant_rows(rng, f, c.E * c.N, K, 0);
    const std::vector<float> wts = random_floats(rng, size_t(S), 0.0f, 1.0f);
    const std::vector<float> out0 = c.weighted ? random_floats(rng, size_t(outs), -1.0f, 1.0f) : std::vector<float>(size_t(outs), 0.0f);
    const std::vector<int32_t> ids = route(c);
    const std::string what = std::string(fuselm::dtype_name(dt)) + " T=" + std::to_string(c.T) + " N=" + std::to_string(c.N) +
                             (c.weighted ? " weighted" : "");
    DeviceBuffer<float> dx(x), dout(out0), dwts(wts);
    DeviceBuffer<uint8_t> dw(w);
    DeviceBuffer<int32_t> dids(ids), err(2);
    const size_t bytes = fuselm::moe_matmul_gemm_workspace(dt, c.T, K, c.N, c.E, c.k, c.weighted);
    CHECK_MSG(bytes > 0, what + ": no workspace asked");
    DeviceBuffer<float> ws(bytes / 4 + 1);
    const fuselm::MoeMatmulArgs a{dout.p, dx.p, dw.p, dt, dids.p, c.weighted ? dwts.p : nullptr, c.T, K, c.N, c.E, c.k, c.weighted};
    CHECK_MSG(fuselm::moe_matmul_gemm_cuda(a, err.p, ws.p, bytes, nullptr), what + ": the grouped GEMM did not take the call");
    const std::vector<float> got = dout.download();
    CHECK(err.download()[0] == 0);
    std::vector<double> want(out0.begin(), out0.end()), bound(size_t(outs), 1e-6);
    std::vector<float> wrow(static_cast<size_t>(K));
    for (int64_t t = 0; t < c.T; t++)
      for (int64_t j = 0; j < c.k; j++) {
        const int64_t s = t * c.k + j, e = ids[size_t(s)];
        const float* xs = x.data() + (c.weighted ? s : t) * K;
        for (int64_t n = 0; n < c.N; n++) {
          dequant_quant_row(f, w.data(), e * c.N + n, K, wrow.data());
          double d = 0, mag = 0;
          for (int64_t i = 0; i < K; i++) {
            d += double(wrow[size_t(i)]) * double(xs[i]);
            mag += std::fabs(double(wrow[size_t(i)]) * double(xs[i]));
          }
          const size_t o = size_t(c.weighted ? t * c.N + n : s * c.N + n);
          const double b = 2.2 * std::ldexp(1.0, -11) * mag;
          if (c.weighted) {
            want[o] += double(wts[size_t(s)]) * d;
            bound[o] += double(wts[size_t(s)]) * b + 4 * std::ldexp(1.0, -24) * (std::fabs(want[o]) + std::fabs(double(wts[size_t(s)]) * d));
          } else {
            want[o] = d;
            bound[o] += b;
          }
        }
      }
    std::vector<float> wantf(want.begin(), want.end());
    for (size_t o = 0; o < size_t(outs); o++) {
      const double e = std::fabs(double(got[o]) - want[o]);
      CHECK_MSG(e <= bound[o], what + ": out[" + std::to_string(o) + "] off by " + std::to_string(e) + " > " + std::to_string(bound[o]));
      worst_frac = std::max(worst_frac, e / bound[o]);
    }
    p.check(what, got.data(), wantf.data(), wantf.size());
  }
  p.report();
  char buf[96];
  std::snprintf(buf, sizeof buf, "worst error %.2g of its per-output bound", worst_frac);
  note(buf);
}

}  // namespace

EMU_TEST(moe_matmul_gemm_q5_0_parity) { moe_gemm_cases(DType::Q5_0); }
EMU_TEST(moe_matmul_gemm_q4_0_parity) { moe_gemm_cases(DType::Q4_0); }
EMU_TEST(moe_matmul_gemm_q4_k_parity) { moe_gemm_cases(DType::Q4_K); }
EMU_TEST(moe_matmul_gemm_q6_k_parity) { moe_gemm_cases(DType::Q6_K); }

// Calls it does not take (fewer than 8 tokens, q8_0 and float weights) and a bad expert id: recorded as
// (1 + row, id), the other slots still computed, nothing read past the stack.
EMU_TEST(moe_matmul_gemm_routes_and_errors) {
  const QFormat& f = quant_format(DType::Q4_0);
  Rng rng(0x3f0);
  const int64_t T = 8, E = 4, k = 2, N = 5, K = 64;
  const std::vector<float> x = random_floats(rng, size_t(T * K), -1.0f, 1.0f);
  const std::vector<uint8_t> w = random_quant_rows(rng, f, E * N, K, 0);
  std::vector<int32_t> ids(size_t(T * k));
  for (size_t i = 0; i < ids.size(); i++) ids[i] = int32_t(i % E);
  ids[11] = 7;  // token 5, slot 1
  DeviceBuffer<float> dx(x), dout(size_t(T * k * N));
  DeviceBuffer<uint8_t> dw(w);
  DeviceBuffer<int32_t> dids(ids), err(2);
  const size_t bytes = fuselm::moe_matmul_gemm_workspace(DType::Q4_0, T, K, N, E, k, false);
  DeviceBuffer<float> ws(bytes / 4 + 1);
  fuselm::MoeMatmulArgs a{dout.p, dx.p, dw.p, DType::Q4_0, dids.p, nullptr, T, K, N, E, k, false};
  CHECK(fuselm::moe_matmul_gemm_cuda(a, err.p, ws.p, bytes, nullptr));
  const std::vector<int32_t> e = err.download();
  CHECK(e[0] == 6 && e[1] == 7);
  // slot 10 (token 5, slot 0: expert 2) is still computed
  const std::vector<float> got = dout.download();
  std::vector<float> wrow(static_cast<size_t>(K));
  dequant_quant_row(f, w.data(), 2 * N + 3, K, wrow.data());
  double d = 0;
  for (int64_t i = 0; i < K; i++) d += double(wrow[size_t(i)]) * double(x[size_t(5 * K + i)]);
  CHECK(std::fabs(got[size_t(10 * N + 3)] - d) < 1e-2);
  a.T = 7;
  CHECK(!fuselm::moe_matmul_gemm_cuda(a, err.p, ws.p, bytes, nullptr));
  CHECK(fuselm::moe_matmul_gemm_workspace(DType::Q4_0, 7, K, N, E, k, false) == 0);
  a.T = 8;
  for (DType other : {DType::F16, DType::Q8_0}) {
    a.w_dtype = other;
    CHECK(!fuselm::moe_matmul_gemm_cuda(a, err.p, ws.p, bytes, nullptr));
    CHECK(fuselm::moe_matmul_gemm_workspace(other, 8, K, N, E, k, false) == 0);
  }
  a.w_dtype = DType::Q4_0;
  try {
    fuselm::moe_matmul_gemm_cuda(a, err.p, ws.p, bytes - 16, nullptr);
    CHECK_MSG(false, "a short workspace was taken");
  } catch (const fuselm::Error& x) {
    CHECK(x.code == "E_INVALID_ARG");
  }
}

}  // namespace emu_tests
