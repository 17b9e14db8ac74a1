// Proves: matmul_cuda (cuda/matmul.cu) runs the GEMV for up to 8 tokens and the GEMM above, for
// each weight dtype: its output equals, bit for bit, the direct call of the kernel it should
// pick (T = 1 and 8: matmul_gemv_cuda, or matmul_gemv_quant_cuda for the block formats; T = 9
// and 70: matmul_gemm_cuda, matmul_gemm_q8_0_cuda for q8_0, matmul_gemm_quant_cuda for the
// other block formats), and the other kernel's output differs (summation order, and x's
// quantization to int8 or f16), so a wrong pick fails. Also near the CPU reference (f64 sums,
// f32 x), with uniform(-1, 1) x and weights of rms r (1/sqrt(3); the block formats: measured)
// and K = 96 (k-quants: 256), N = 70:
// - f32: f32 summation only, rel 1e-5, abs 1e-4.
// - f16/bf16: the GEMM rounds x by a relative step of at most u = 2^-11 / 2^-8, the GEMV does
//   not: normalized error <= u, max abs u * sqrt(K) (5 standard deviations, as gemm_test).
// - block formats: the int8 kernels round x to steps of amax / 127: an error of rms amax /
//   (254 sqrt(3)) per value against x's rms amax / sqrt(3), so a normalized error ~1/254: bound
//   2/254; max abs 5 standard deviations, 5 sqrt(K) r / (254 sqrt(3)) with r the largest row
//   rms of a sample (the k-quants' random sub-block scales make rows differ); the f16 GEMM's rounding
//   is smaller. (gemm_q8_0_test, gemv_quant_test and gemm_quant_test check hard per-output
//   bounds.)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/dequant.h"
#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "parity.h"
#include "quant_blocks_ref.h"

namespace emu_tests {

namespace {

using fuselm::DType;

std::vector<uint8_t> weights(Rng& rng, DType dt, int64_t N, int64_t K) {
  if (fuselm::is_block_dtype(dt) && dt != DType::Q8_0) return random_quant_rows(rng, quant_format(dt), N, K, 0);
  std::vector<uint8_t> w(fuselm::row_bytes(dt, K) * size_t(N));
  if (dt == DType::Q8_0) {
    for (int64_t i = 0; i < N * K / fuselm::kQ8Block; i++) {
      fuselm::BlockQ8_0 b;
      b.d = fuselm::f32_to_f16(rng.uniform(0.002f, 0.01f));
      for (int j = 0; j < fuselm::kQ8Block; j++) b.qs[j] = int8_t(int(rng.next() % 256) - 128);
      std::memcpy(w.data() + sizeof b * size_t(i), &b, sizeof b);
    }
    return w;
  }
  for (int64_t i = 0; i < N * K; i++) {
    const float f = rng.uniform(-1.0f, 1.0f);
    if (dt == DType::F32) {
      std::memcpy(w.data() + 4 * i, &f, 4);
    } else {
      const uint16_t h = dt == DType::F16 ? fuselm::f32_to_f16(f) : fuselm::f32_to_bf16(f);
      std::memcpy(w.data() + 2 * i, &h, 2);
    }
  }
  return w;
}

void dispatch_cases(DType dt) {
  Rng rng(0xd15 + uint64_t(dt));
  const bool block = fuselm::is_block_dtype(dt);
  const int64_t K = fuselm::dtype_block(dt).values == 256 ? 256 : 96, N = 70;
  double r = 1 / std::sqrt(3.0), r_max = r;  // the weights' rms, and the largest of a row's
  if (block) {  // measured on a sample (the k-quants' rows differ widely: random sub-block scales)
    const std::vector<uint8_t> w = weights(rng, dt, N, K);
    std::vector<float> v(static_cast<size_t>(K));
    double s2 = 0;
    r_max = 0;
    for (int64_t n = 0; n < N; n++) {
      fuselm::dequant_row_ref(w.data() + n * fuselm::row_bytes(dt, K), dt, K, v.data());
      double row = 0;
      for (float f : v) row += double(f) * f;
      s2 += row;
      r_max = std::max(r_max, std::sqrt(row / double(K)));
    }
    r = std::sqrt(s2 / double(N * K));
  }
  const double rel = dt == DType::F32 ? 1e-5 : dt == DType::F16 ? std::ldexp(1.0, -11)
                   : dt == DType::BF16 ? std::ldexp(1.0, -8) : 2.0 / 254;
  const double abs = dt == DType::F32 ? 1e-4 : block ? 5 * std::sqrt(double(K)) * r_max / (254 * std::sqrt(3.0))
                                                     : rel * std::sqrt(double(K));
  Parity p(rel, abs);
  for (int64_t T : {int64_t(1), int64_t(8), int64_t(9), int64_t(70)}) {
    const std::vector<float> x = random_floats(rng, size_t(T * K), -1.0f, 1.0f);
    const std::vector<uint8_t> w = weights(rng, dt, N, K);
    std::vector<float> want(size_t(T * N));
    std::vector<float> wrow(static_cast<size_t>(K));
    for (int64_t n = 0; n < N; n++) {  // f64 sums of f32 x times the dequantized weights
      fuselm::dequant_row_ref(w.data() + n * fuselm::row_bytes(dt, K), dt, K, wrow.data());
      for (int64_t t = 0; t < T; t++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++) s += double(wrow[size_t(k)]) * x[size_t(t * K + k)];
        want[size_t(t * N + n)] = float(s);
      }
    }
    DeviceBuffer<float> dx(x), dy(size_t(T * N)), dgemv(size_t(T * N)), dgemm(size_t(T * N));
    DeviceBuffer<uint8_t> dw(device_weights(dt, w)), ws(std::max<size_t>(fuselm::matmul_cuda_workspace(dt, T, K), 1));
    DeviceBuffer<uint8_t> ws_all(std::max<size_t>(fuselm::matmul_cuda_workspace(DType::Q8_0, T, K), 1));
    fuselm::matmul_cuda({dy.p, dx.p, dw.p, dt, T, K, N}, ws.p, nullptr);
    if (block) fuselm::matmul_gemv_quant_cuda({dgemv.p, dx.p, dw.p, dt, T, K, N}, ws_all.p, nullptr);
    else fuselm::matmul_gemv_cuda({dgemv.p, dx.p, dw.p, dt, T, K, N}, nullptr);
    if (dt == DType::Q8_0) fuselm::matmul_gemm_q8_0_cuda({dgemm.p, dx.p, dw.p, dt, T, K, N}, ws_all.p, nullptr);
    else if (block) fuselm::matmul_gemm_quant_cuda({dgemm.p, dx.p, dw.p, dt, T, K, N}, nullptr);
    else fuselm::matmul_gemm_cuda({dgemm.p, dx.p, dw.p, dt, T, K, N}, nullptr);
    const std::vector<float> got = dy.download(), gemv = dgemv.download(), gemm = dgemm.download();
    const bool want_gemv = T <= 8;
    const std::string what = std::string(fuselm::dtype_name(dt)) + " T=" + std::to_string(T);
    CHECK_MSG(std::memcmp(got.data(), (want_gemv ? gemv : gemm).data(), got.size() * 4) == 0,
              what + ": not the " + (want_gemv ? "GEMV" : "GEMM") + "'s output");
    CHECK_MSG(std::memcmp(gemv.data(), gemm.data(), got.size() * 4) != 0, what + ": GEMV and GEMM agree bit for bit");
    p.check(what, got.data(), want.data(), want.size(), std::sqrt(double(K)) * (block ? r / std::sqrt(3.0) : 0.1));
  }
  p.report();
}

}  // namespace

EMU_TEST(matmul_dispatch_f16) { dispatch_cases(DType::F16); }
EMU_TEST(matmul_dispatch_bf16) { dispatch_cases(DType::BF16); }
EMU_TEST(matmul_dispatch_f32) { dispatch_cases(DType::F32); }
EMU_TEST(matmul_dispatch_q8_0) { dispatch_cases(DType::Q8_0); }
EMU_TEST(matmul_dispatch_q4_0) { dispatch_cases(DType::Q4_0); }
EMU_TEST(matmul_dispatch_q4_k) { dispatch_cases(DType::Q4_K); }
EMU_TEST(matmul_dispatch_q5_k) { dispatch_cases(DType::Q5_K); }
EMU_TEST(matmul_dispatch_q6_k) { dispatch_cases(DType::Q6_K); }

// matmul_cuda_workspace: room for the int8 x and its block scales for the block formats: every
// token for q8_0 (its GEMM quantizes x too), at most 8 (the GEMV's) for the others.
EMU_TEST(matmul_workspace_bytes) {
  CHECK(fuselm::matmul_cuda_workspace(DType::F16, 512, 4096) == 0);
  CHECK(fuselm::matmul_cuda_workspace(DType::F32, 512, 4096) == 0);
  CHECK(fuselm::matmul_cuda_workspace(DType::Q8_0, 512, 4096) == size_t(512) * 4096 + size_t(512) * 128 * 4);
  CHECK(fuselm::matmul_cuda_workspace(DType::Q8_0, 3, 32) == 256 + 3 * 4);
  CHECK(fuselm::matmul_cuda_workspace(DType::Q4_K, 512, 4096) == size_t(8) * 4096 + size_t(8) * 128 * 4);
  CHECK(fuselm::matmul_cuda_workspace(DType::Q6_K, 3, 256) == 768 + 3 * 8 * 4);
}

// QuantizedX (cuda_op.h): after a matmul that quantized x into the workspace (block-format
// weights: the dp4a GEMV for up to 8 tokens, q8_0's GEMM above), a matmul on the same x and T
// skips the quantization and gives the same bits as a fresh call (the workspace holding x's
// quantization is the only thing it reads of x). Proved by scribbling over x between the two:
// the reusing call must not see it (it reads the workspace), a fresh one does. Matmuls that take
// f32 x (f16 weights, the f16-tile GEMM) leave no record, so a q8_0 GEMM after them quantizes.
EMU_TEST(matmul_reuses_quantized_x) {
  Rng rng(0x9e5);
  const int64_t K = 256, N = 9;
  for (int64_t T : {int64_t(3), int64_t(12)}) {
    const std::vector<float> x = random_floats(rng, size_t(T * K), -1.0f, 1.0f);
    const std::vector<uint8_t> wk = weights(rng, DType::Q4_K, N, K), w8 = weights(rng, DType::Q8_0, N, K);
    const std::vector<uint8_t>& first = T <= 8 ? wk : w8;  // a matmul that quantizes x at this T
    const DType first_dt = T <= 8 ? DType::Q4_K : DType::Q8_0;
    DeviceBuffer<float> dx(x), y1(size_t(T * N)), y2(size_t(T * N)), fresh(size_t(T * N));
    DeviceBuffer<uint8_t> dwk(device_weights(first_dt, first)), dw8(device_weights(DType::Q8_0, w8));
    DeviceBuffer<uint8_t> ws(fuselm::matmul_cuda_workspace(DType::Q8_0, T, K));
    fuselm::QuantizedX qx;
    fuselm::matmul_cuda({y1.p, dx.p, dwk.p, first_dt, T, K, N}, ws.p, nullptr, &qx);
    CHECK(qx.x == dx.p && qx.T == T && qx.K == K);
    fuselm::matmul_cuda({fresh.p, dx.p, dw8.p, DType::Q8_0, T, K, N}, ws.p, nullptr);  // fresh, same x
    dx.upload(std::vector<float>(size_t(T * K), 7.0f));  // the reusing call must not read x
    fuselm::matmul_cuda({y2.p, dx.p, dw8.p, DType::Q8_0, T, K, N}, ws.p, nullptr, &qx);
    const std::vector<float> a = y2.download(), b = fresh.download();
    CHECK_MSG(std::memcmp(a.data(), b.data(), a.size() * 4) == 0, "T=" + std::to_string(T) + ": reuse differs from a fresh call");
    CHECK(qx.x == dx.p);
  }
  // f32-x kernels leave no record: the q8_0 GEMM after an f16-tile q4_k GEMM quantizes (sees x)
  const int64_t T = 12;
  const std::vector<uint8_t> wk = weights(rng, DType::Q4_K, N, K), w8 = weights(rng, DType::Q8_0, N, K);
  DeviceBuffer<float> dx(random_floats(rng, size_t(T * K), -1.0f, 1.0f)), y(size_t(T * N)), fresh(size_t(T * N));
  DeviceBuffer<uint8_t> dwk(wk), dw8(device_weights(DType::Q8_0, w8)), ws(fuselm::matmul_cuda_workspace(DType::Q8_0, T, K));
  fuselm::QuantizedX qx{dx.p, T, K};  // a stale record (as if x had been quantized before)
  fuselm::matmul_cuda({y.p, dx.p, dwk.p, DType::Q4_K, T, K, N}, ws.p, nullptr, &qx);
  CHECK(qx.x == nullptr);
  fuselm::matmul_cuda({y.p, dx.p, dw8.p, DType::Q8_0, T, K, N}, ws.p, nullptr, &qx);
  fuselm::matmul_cuda({fresh.p, dx.p, dw8.p, DType::Q8_0, T, K, N}, ws.p, nullptr);
  const std::vector<float> a = y.download(), b = fresh.download();
  CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

}  // namespace emu_tests
