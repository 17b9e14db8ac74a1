// Proves: matmul_gemv_cuda (cuda/gemv.cu) equals matmul_cpu's reference (f64 sums of x times
// the weights) for f16, bf16 and f32 weights: K = 1, 31, 32, 33, 4095, 4097, N = 1, 5 and 33
// rows (partial blocks of 4 warps), 1 and 3 tokens, through the 16-byte path and, with x one float off alignment, the scalar one. The kernel
// sums in f32 (per-lane partials, then a shuffle tree), so the bound is f32 rounding over K;
// the normalized error is taken against at least the typical |y| (sqrt(K) / 3 for these
// inputs), since a single output may cancel to near zero.
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

std::vector<uint8_t> random_weights(Rng& rng, DType dt, int64_t N, int64_t K) {
  std::vector<uint8_t> w(fuselm::row_bytes(dt, K) * size_t(N));
  for (int64_t i = 0; i < N * K; i++) {
    if (dt == DType::F32) {
      const float f = rng.uniform(-1.0f, 1.0f);
      std::memcpy(w.data() + 4 * i, &f, 4);
    } else {
      const float f = rng.uniform(-1.0f, 1.0f);
      const uint16_t h = dt == DType::F16 ? fuselm::f32_to_f16(f) : fuselm::f32_to_bf16(f);
      std::memcpy(w.data() + 2 * i, &h, 2);
    }
  }
  return w;
}

void gemv_cases(DType dt, const std::vector<int64_t>& Ks) {
  Rng rng(0x6e3 + uint64_t(dt));
  Parity p(1e-5, 1e-4);  // |y| up to ~40 at K = 4097: f32 rounding of sums of K products
  for (int64_t K : Ks)
    for (int64_t N : {int64_t(1), int64_t(5), int64_t(33)})
      for (int64_t T : {int64_t(1), int64_t(3)})
        for (int misalign = 0; misalign < 2; misalign++) {
          const int64_t off = misalign;
          const std::vector<float> x = random_floats(rng, size_t(T * K + off), -1.0f, 1.0f);
          const std::vector<uint8_t> w = random_weights(rng, dt, N, K);
          std::vector<float> want(static_cast<size_t>(T * N));
          fuselm::matmul_cpu({want.data(), x.data() + off, w.data(), dt, T, K, N}, ref_exec());
          DeviceBuffer<float> dx(x), dy(size_t(T * N));
          DeviceBuffer<uint8_t> dw(w);
          fuselm::matmul_gemv_cuda({dy.p, dx.p + off, dw.p, dt, T, K, N}, nullptr);
          const std::vector<float> got = dy.download();
          p.check(std::string(fuselm::dtype_name(dt)) + " T=" + std::to_string(T) + " K=" + std::to_string(K) +
                      " N=" + std::to_string(N) + (misalign ? " x misaligned" : ""),
                  got.data(), want.data(), want.size(), 0.1 * std::sqrt(double(K)));  // |y| ~ sqrt(K) / 3
        }
  p.report();
}

}  // namespace

EMU_TEST(gemv_f16_parity) { gemv_cases(DType::F16, {1, 31, 32, 33, 4095, 4097}); }
EMU_TEST(gemv_bf16_parity) { gemv_cases(DType::BF16, {1, 31, 32, 33, 4095, 4097}); }
EMU_TEST(gemv_f32_parity) { gemv_cases(DType::F32, {1, 31, 32, 33, 4095, 4097}); }

}  // namespace emu_tests
