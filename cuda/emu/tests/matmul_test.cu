// Proves: matmul_cuda (cuda/matmul.cu) runs the GEMV for up to 8 tokens and the GEMM above, for
// each weight dtype: its output equals, bit for bit, the direct call of the kernel it should
// pick (T = 1 and 8: matmul_gemv_cuda; T = 9 and 70: matmul_gemm_cuda or, for q8_0,
// matmul_gemm_q8_0_cuda), and the other kernel's output differs (summation order, and for q8_0
// x's quantization), so a wrong pick fails. Also near the CPU reference (f64 sums, f32 x), with
// uniform(-1, 1) x and weights of rms r (1/sqrt(3); q8_0 ~0.48) and K = 96, N = 70:
// - f32: f32 summation only, rel 1e-5, abs 1e-4.
// - f16/bf16: the GEMM rounds x by a relative step of at most u = 2^-11 / 2^-8, the GEMV does
//   not: normalized error <= u, max abs u * sqrt(K) (5 standard deviations, as gemm_test).
// - q8_0: the GEMM rounds x to steps of amax / 127: an error of rms amax / (254 sqrt(3)) per
//   value against x's rms amax / sqrt(3), so a normalized error ~1/254: bound 2/254; max abs 5
//   standard deviations, 5 sqrt(K) r / (254 sqrt(3)). (gemm_q8_0_test checks a hard per-output
//   bound.)
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "harness.h"
#include "ops.h"
#include "parity.h"

namespace emu_tests {

namespace {

using fuselm::DType;

std::vector<uint8_t> weights(Rng& rng, DType dt, int64_t N, int64_t K) {
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
  const int64_t K = 96, N = 70;
  const double rel = dt == DType::F32 ? 1e-5 : dt == DType::F16 ? std::ldexp(1.0, -11)
                   : dt == DType::BF16 ? std::ldexp(1.0, -8) : 2.0 / 254;
  const double abs = dt == DType::F32 ? 1e-4 : dt == DType::Q8_0 ? 5 * std::sqrt(double(K)) * 0.48 / (254 * std::sqrt(3.0))
                                                                  : rel * std::sqrt(double(K));
  Parity p(rel, abs);
  for (int64_t T : {int64_t(1), int64_t(8), int64_t(9), int64_t(70)}) {
    const std::vector<float> x = random_floats(rng, size_t(T * K), -1.0f, 1.0f);
    const std::vector<uint8_t> w = weights(rng, dt, N, K);
    std::vector<float> want(size_t(T * N));
    fuselm::matmul_cpu({want.data(), x.data(), w.data(), dt, T, K, N}, ref_exec());
    DeviceBuffer<float> dx(x), dy(size_t(T * N)), dgemv(size_t(T * N)), dgemm(size_t(T * N));
    DeviceBuffer<uint8_t> dw(w), ws(fuselm::matmul_cuda_workspace(dt, T, K));
    fuselm::matmul_cuda({dy.p, dx.p, dw.p, dt, T, K, N}, ws.p, nullptr);
    fuselm::matmul_gemv_cuda({dgemv.p, dx.p, dw.p, dt, T, K, N}, nullptr);
    if (dt == DType::Q8_0) fuselm::matmul_gemm_q8_0_cuda({dgemm.p, dx.p, dw.p, dt, T, K, N}, ws.p, nullptr);
    else fuselm::matmul_gemm_cuda({dgemm.p, dx.p, dw.p, dt, T, K, N}, nullptr);
    const std::vector<float> got = dy.download(), gemv = dgemv.download(), gemm = dgemm.download();
    const bool want_gemv = T <= 8;
    const std::string what = std::string(fuselm::dtype_name(dt)) + " T=" + std::to_string(T);
    CHECK_MSG(std::memcmp(got.data(), (want_gemv ? gemv : gemm).data(), got.size() * 4) == 0,
              what + ": not the " + (want_gemv ? "GEMV" : "GEMM") + "'s output");
    CHECK_MSG(std::memcmp(gemv.data(), gemm.data(), got.size() * 4) != 0, what + ": GEMV and GEMM agree bit for bit");
    p.check(what, got.data(), want.data(), want.size(), std::sqrt(double(K)) / 10);
  }
  p.report();
}

}  // namespace

EMU_TEST(matmul_dispatch_f16) { dispatch_cases(DType::F16); }
EMU_TEST(matmul_dispatch_bf16) { dispatch_cases(DType::BF16); }
EMU_TEST(matmul_dispatch_f32) { dispatch_cases(DType::F32); }
EMU_TEST(matmul_dispatch_q8_0) { dispatch_cases(DType::Q8_0); }

// matmul_cuda_workspace: room for the int8 x and its block scales for q8_0 only.
EMU_TEST(matmul_workspace_bytes) {
  CHECK(fuselm::matmul_cuda_workspace(DType::F16, 512, 4096) == 0);
  CHECK(fuselm::matmul_cuda_workspace(DType::F32, 512, 4096) == 0);
  CHECK(fuselm::matmul_cuda_workspace(DType::Q8_0, 512, 4096) == size_t(512) * 4096 + size_t(512) * 128 * 4);
  CHECK(fuselm::matmul_cuda_workspace(DType::Q8_0, 3, 32) == 256 + 3 * 4);
}

}  // namespace emu_tests
