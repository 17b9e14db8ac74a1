// Proves: mma_m16n8k16_f16f32, mma_m16n8k16_bf16f32 and mma_m16n8k32_s8s32 compute D = A*B + C
// for fragments loaded by the PTX ISA layouts from row-major A, column-major B and row-major C
// (several warps, each its own random tile), against a scalar matmul: exact for s8 (including
// -128 and 127), within f32 accumulation rounding for f16/bf16.
#include <cmath>
#include <vector>

#include "common.cuh"
#include "device_buffer.h"
#include "harness.h"

namespace emu_tests {

// One 16x8 tile per block (one warp). A: 16x16 row-major; B: col-major, B[n * 16 + k];
// C, D: 16x8 row-major. g = lane / 4, t = lane % 4.
__global__ void mma_f16_kernel(const uint16_t* A, const uint16_t* B, const float* C, float* D, int bf16) {
  const int lane = int(threadIdx.x), g = lane >> 2, t = lane & 3;
  A += blockIdx.x * 256;
  B += blockIdx.x * 128;
  C += blockIdx.x * 128;
  D += blockIdx.x * 128;
  uint32_t a[4], b[2];
  for (int r = 0; r < 4; r++) {
    const int row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);
    a[r] = uint32_t(A[row * 16 + col]) | uint32_t(A[row * 16 + col + 1]) << 16;
  }
  for (int r = 0; r < 2; r++) {
    const int k = 2 * t + 8 * r;
    b[r] = uint32_t(B[g * 16 + k]) | uint32_t(B[g * 16 + k + 1]) << 16;
  }
  float c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
  float d[4];
  if (bf16) fuselm::mma_m16n8k16_bf16f32(d, a, b, c);
  else fuselm::mma_m16n8k16_f16f32(d, a, b, c);
  D[g * 8 + 2 * t] = d[0];
  D[g * 8 + 2 * t + 1] = d[1];
  D[(g + 8) * 8 + 2 * t] = d[2];
  D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

// A: 16x32 int8 row-major; B: col-major, B[n * 32 + k]; C, D: 16x8 int32 row-major.
__global__ void mma_s8_kernel(const int8_t* A, const int8_t* B, const int32_t* C, int32_t* D) {
  const int lane = int(threadIdx.x), g = lane >> 2, t = lane & 3;
  A += blockIdx.x * 512;
  B += blockIdx.x * 256;
  C += blockIdx.x * 128;
  D += blockIdx.x * 128;
  uint32_t a[4], b[2];
  for (int r = 0; r < 4; r++) {
    const int row = g + 8 * (r & 1), col = 4 * t + 16 * (r >> 1);
    a[r] = *reinterpret_cast<const uint32_t*>(A + row * 32 + col);
  }
  for (int r = 0; r < 2; r++) b[r] = *reinterpret_cast<const uint32_t*>(B + g * 32 + 4 * t + 16 * r);
  int32_t c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
  int32_t d[4];
  fuselm::mma_m16n8k32_s8s32(d, a, b, c);
  D[g * 8 + 2 * t] = d[0];
  D[g * 8 + 2 * t + 1] = d[1];
  D[(g + 8) * 8 + 2 * t] = d[2];
  D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

static void check_mma_16bit(bool bf16) {
  const int tiles = 8;
  Rng rng(bf16 ? 7 : 3);
  std::vector<uint16_t> A(size_t(tiles) * 256), B(size_t(tiles) * 128);
  std::vector<float> C(size_t(tiles) * 128);
  auto enc = [&](float f) { return bf16 ? fuselm::f32_to_bf16(f) : fuselm::f32_to_f16(f); };
  auto dec = [&](uint16_t h) { return bf16 ? fuselm::bf16_to_f32(h) : fuselm::f16_to_f32(h); };
  for (auto& v : A) v = enc(rng.uniform(-2.0f, 2.0f));
  for (auto& v : B) v = enc(rng.uniform(-2.0f, 2.0f));
  for (auto& v : C) v = rng.uniform(-4.0f, 4.0f);
  DeviceBuffer<uint16_t> dA(A), dB(B);
  DeviceBuffer<float> dC(C), dD(size_t(tiles) * 128);
  fuselm::launch_kernel("mma_f16_kernel", mma_f16_kernel, dim3(tiles), dim3(32), 0, nullptr, dA.p, dB.p, dC.p, dD.p,
                        bf16 ? 1 : 0);
  std::vector<float> D = dD.download();
  double worst = 0;
  for (int tile = 0; tile < tiles; tile++)
    for (int i = 0; i < 16; i++)
      for (int j = 0; j < 8; j++) {
        double ref = C[size_t(tile * 128 + i * 8 + j)], mag = std::fabs(ref);
        for (int k = 0; k < 16; k++) {
          const double p = double(dec(A[size_t(tile * 256 + i * 16 + k)])) * dec(B[size_t(tile * 128 + j * 16 + k)]);
          ref += p;
          mag += std::fabs(p);
        }
        const double got = D[size_t(tile * 128 + i * 8 + j)], err = std::fabs(got - ref);
        // f32 accumulation of 17 terms: a few ulps of the magnitude of the terms
        CHECK_MSG(err <= 1e-6 * mag + 1e-30, "tile " + std::to_string(tile) + " D[" + std::to_string(i) + "][" +
                                                 std::to_string(j) + "] = " + std::to_string(got) + ", want " +
                                                 std::to_string(ref));
        worst = std::max(worst, err / (mag + 1e-30));
      }
  char b[64];
  std::snprintf(b, sizeof b, "max rel err %.2e", worst);
  note(b);
}

EMU_TEST(mma_m16n8k16_f16) { check_mma_16bit(false); }
EMU_TEST(mma_m16n8k16_bf16) { check_mma_16bit(true); }

EMU_TEST(mma_m16n8k32_s8) {
  const int tiles = 8;
  Rng rng(11);
  std::vector<int8_t> A(size_t(tiles) * 512), B(size_t(tiles) * 256);
  std::vector<int32_t> C(size_t(tiles) * 128);
  for (auto& v : A) v = int8_t(rng.below(256) - 128);
  for (auto& v : B) v = int8_t(rng.below(256) - 128);
  for (auto& v : C) v = rng.below(200001) - 100000;
  A[0] = -128; A[1] = 127; B[0] = -128; B[1] = -128;  // extremes in the first dot product
  DeviceBuffer<int8_t> dA(A), dB(B);
  DeviceBuffer<int32_t> dC(C), dD(size_t(tiles) * 128);
  fuselm::launch_kernel("mma_s8_kernel", mma_s8_kernel, dim3(tiles), dim3(32), 0, nullptr, dA.p, dB.p, dC.p, dD.p);
  std::vector<int32_t> D = dD.download();
  for (int tile = 0; tile < tiles; tile++)
    for (int i = 0; i < 16; i++)
      for (int j = 0; j < 8; j++) {
        int64_t ref = C[size_t(tile * 128 + i * 8 + j)];
        for (int k = 0; k < 32; k++)
          ref += int64_t(A[size_t(tile * 512 + i * 32 + k)]) * B[size_t(tile * 256 + j * 32 + k)];
        CHECK_MSG(D[size_t(tile * 128 + i * 8 + j)] == int32_t(ref),
                  "tile " + std::to_string(tile) + " D[" + std::to_string(i) + "][" + std::to_string(j) + "]");
      }
}

}  // namespace emu_tests
