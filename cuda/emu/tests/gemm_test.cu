// Proves: matmul_gemm_cuda (cuda/gemm.cu) equals matmul_cpu's reference (f64 sums of x times
// the widened weights) for f16, bf16 and f32 weights at sizes that leave partial tiles in every
// dimension: T = 1, 17, 130 tokens (tiles of 64), N = 5, 200 rows (tiles of 128 / 64), K = 8,
// 40, 512 (steps of 32 / 16), through
// - the tensor-core path (f16/bf16, K % 8 == 0, w 16-byte aligned), with x aligned (float4
//   loads) and one float off (scalar loads);
// - the SIMT path: f32 weights, and f16/bf16 with K = 33 (K % 8 != 0) or w 2 bytes off.
// Tolerances:
// - tensor cores against a reference that sees x rounded to the weight's type: the products are
//   then exact in f32 on both sides, so only the f32 summation differs (|y| ~ sqrt(K) / 3 <= ~8):
//   rel 1e-5, abs 1e-4, as the GEMV's test. The SIMT path (f32 x, exact f32 products) is held
//   to the same bounds against the plain f32 x reference.
// - tensor cores against plain f32 x: the kernel's rounding of x (relative step u = 2^-11 for f16,
//   2^-8 for bf16 at most) makes an error sum_k x_k w_k d_k with |d_k| <= u, rms u * sqrt(K) / 5.2
//   for these inputs: normalized error <= u (its rms is u / sqrt(3)), max abs <= u * sqrt(K)
//   (5 standard deviations).
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

std::vector<uint8_t> random_rows(Rng& rng, DType dt, int64_t N, int64_t K, size_t offset) {
  const size_t es = dt == DType::F32 ? 4 : 2;
  std::vector<uint8_t> w(offset + es * size_t(N * K));
  for (int64_t i = 0; i < N * K; i++) {
    const float f = rng.uniform(-1.0f, 1.0f);
    if (dt == DType::F32) {
      std::memcpy(w.data() + offset + 4 * i, &f, 4);
    } else {
      const uint16_t h = dt == DType::F16 ? fuselm::f32_to_f16(f) : fuselm::f32_to_bf16(f);
      std::memcpy(w.data() + offset + 2 * i, &h, 2);
    }
  }
  return w;
}

// x rounded to the 16-bit type the tensor-core path converts it to (identity for f32).
std::vector<float> rounded(const std::vector<float>& x, DType dt) {
  std::vector<float> r(x);
  if (dt == DType::F16)
    for (float& v : r) v = fuselm::f16_to_f32(fuselm::f32_to_f16(v));
  if (dt == DType::BF16)
    for (float& v : r) v = fuselm::bf16_to_f32(fuselm::f32_to_bf16(v));
  return r;
}

struct Case {
  int64_t T, K, N;
  int x_off;       // floats x is shifted by (1: not 16-byte aligned)
  size_t w_off;    // bytes w is shifted by (2: not 16-byte aligned)
};

void gemm_cases(DType dt, const std::vector<Case>& cases) {
  Rng rng(0x9e77 + uint64_t(dt));
  const double u = dt == DType::F16 ? std::ldexp(1.0, -11) : dt == DType::BF16 ? std::ldexp(1.0, -8) : 0.0;
  Parity same_x(1e-5, 1e-4);   // x as the kernel sees it: f32 summation order only
  Parity plain_x(u, 0);        // f16/bf16 only: abs bound per K below
  for (const Case& c : cases) {
    const std::vector<float> x = random_floats(rng, size_t(c.T * c.K + c.x_off), -1.0f, 1.0f);
    const std::vector<uint8_t> w = random_rows(rng, dt, c.N, c.K, c.w_off);
    // The tensor-core path rounds x to the weight's type; the SIMT path multiplies f32 x.
    const bool tc = dt != DType::F32 && c.K % 8 == 0 && c.w_off % 16 == 0;
    const std::vector<float> xr = tc ? rounded(x, dt) : x;
    std::vector<float> want(size_t(c.T * c.N)), want_plain(size_t(c.T * c.N));
    fuselm::matmul_cpu({want.data(), xr.data() + c.x_off, w.data() + c.w_off, dt, c.T, c.K, c.N}, ref_exec());
    fuselm::matmul_cpu({want_plain.data(), x.data() + c.x_off, w.data() + c.w_off, dt, c.T, c.K, c.N}, ref_exec());
    DeviceBuffer<float> dx(x), dy(size_t(c.T * c.N));
    DeviceBuffer<uint8_t> dw(w);
    fuselm::matmul_gemm_cuda({dy.p, dx.p + c.x_off, dw.p + c.w_off, dt, c.T, c.K, c.N}, nullptr);
    const std::vector<float> got = dy.download();
    const std::string what = std::string(fuselm::dtype_name(dt)) + (tc ? " tensor cores" : " simt") +
                             " T=" + std::to_string(c.T) + " K=" + std::to_string(c.K) + " N=" + std::to_string(c.N) +
                             (c.x_off ? " x misaligned" : "") + (c.w_off ? " w misaligned" : "");
    const double typical = std::sqrt(double(c.K)) / 3;  // |y| for uniform(-1, 1) x and w
    same_x.check(what, got.data(), want.data(), want.size(), 0.1 * typical);
    if (tc) {
      plain_x.abs_tol = u * std::sqrt(double(c.K));
      plain_x.check(what + " (plain f32 x)", got.data(), want_plain.data(), want.size(), typical);
    }
  }
  same_x.report();
  if (dt != DType::F32) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "against plain f32 x: worst rel %.2g (tol %.2g) max abs %.2g (tol u*sqrt(K))",
                  plain_x.worst_rel, u, plain_x.worst_abs);
    note(buf);
  }
}

std::vector<Case> half_cases() {
  return {
      {1, 8, 5, 0, 0},     {17, 40, 200, 0, 0},  {130, 40, 5, 0, 0}, {17, 512, 200, 0, 0},
      {130, 72, 200, 1, 0},  // x misaligned: scalar x loads
      {17, 33, 200, 0, 0},   // K % 8 != 0: SIMT fallback
      {130, 40, 5, 0, 2},    // w misaligned: SIMT fallback
  };
}

}  // namespace

EMU_TEST(gemm_f16_parity) { gemm_cases(DType::F16, half_cases()); }
EMU_TEST(gemm_bf16_parity) { gemm_cases(DType::BF16, half_cases()); }
EMU_TEST(gemm_f32_parity) {
  gemm_cases(DType::F32, {{1, 1, 5, 0, 0}, {17, 33, 200, 0, 0}, {130, 512, 70, 1, 0}, {65, 16, 64, 0, 0}});
}

}  // namespace emu_tests
