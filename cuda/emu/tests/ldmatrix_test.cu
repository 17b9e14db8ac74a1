// Proves: ldmatrix x4/x2 and their .trans forms deliver the PTX ISA fragment (register i of
// lane l: matrix i's row l/4, columns 2(l%4)+{0,1}; transposed: rows 2(l%4)+{0,1} of column
// l/4) from rows at a padded pitch; and that ldmatrix feeds mma the way GEMM kernels use it:
// A via x4, B via x2 from column-major storage or x2.trans from row-major storage, both
// equal to the scalar matmul.
#include <vector>

#include "common.cuh"
#include "device_buffer.h"
#include "harness.h"

namespace emu_tests {

constexpr int kPitch = 24;  // u16 elements per smem row: 48 bytes, rows stay 16-byte aligned

// src: 4 matrices of 8x8 u16, dense. out: per lane x4, x4.trans, x2, x2.trans (12 words).
__global__ void ldmatrix_kernel(const uint16_t* src, uint32_t* out) {
  uint16_t* s = fuselm::dynamic_smem<uint16_t>();
  const int lane = int(threadIdx.x);
  for (int i = lane; i < 256; i += 32) s[(i / 8) * kPitch + i % 8] = src[i];
  __syncthreads();
  const uint16_t* row = s + lane * kPitch;  // matrix lane/8, row lane%8
  uint32_t r4[4], t4[4], r2[2], t2[2];
  fuselm::ldmatrix_x4(r4, row);
  fuselm::ldmatrix_x4_trans(t4, row);
  fuselm::ldmatrix_x2(r2, row);
  fuselm::ldmatrix_x2_trans(t2, row);
  uint32_t* o = out + lane * 12;
  for (int i = 0; i < 4; i++) { o[i] = r4[i]; o[4 + i] = t4[i]; }
  for (int i = 0; i < 2; i++) { o[8 + i] = r2[i]; o[10 + i] = t2[i]; }
}

// A 16x16 row-major, Bc 16x8 col-major (Bc[n*16+k]), Br the same B row-major (Br[k*8+n]).
// D1 = A*B through (x4, x2 on Bc), D2 through (x4, x2.trans on Br).
__global__ void ldmatrix_mma_kernel(const uint16_t* A, const uint16_t* Bc, const uint16_t* Br, float* D1, float* D2) {
  uint16_t* sA = fuselm::dynamic_smem<uint16_t>();  // 16 rows x 24
  uint16_t* sBc = sA + 16 * kPitch;                 // 8 rows (n) x 24
  uint16_t* sBr = sBc + 8 * kPitch;                 // 16 rows (k) x 24
  const int lane = int(threadIdx.x), g = lane >> 2, t = lane & 3;
  for (int i = lane; i < 256; i += 32) sA[(i / 16) * kPitch + i % 16] = A[i];
  for (int i = lane; i < 128; i += 32) sBc[(i / 16) * kPitch + i % 16] = Bc[i];
  for (int i = lane; i < 128; i += 32) sBr[(i / 8) * kPitch + i % 8] = Br[i];
  __syncthreads();
  uint32_t a[4], b1[2], b2[2];
  // matrices: rows 0-7/cols 0-7, rows 8-15/cols 0-7, rows 0-7/cols 8-15, rows 8-15/cols 8-15
  fuselm::ldmatrix_x4(a, sA + (lane % 16) * kPitch + (lane / 16) * 8);
  // lanes 0-7: n rows at k 0-7, lanes 8-15: n rows at k 8-15 (lanes 16-31 ignored)
  fuselm::ldmatrix_x2(b1, sBc + (lane % 8) * kPitch + ((lane / 8) % 2) * 8);
  // lanes 0-15: k rows 0-15 of the row-major B
  fuselm::ldmatrix_x2_trans(b2, sBr + (lane % 16) * kPitch);
  const float zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  float d1[4], d2[4];
  fuselm::mma_m16n8k16_f16f32(d1, a, b1, zero);
  fuselm::mma_m16n8k16_f16f32(d2, a, b2, zero);
  const int idx[4] = {g * 8 + 2 * t, g * 8 + 2 * t + 1, (g + 8) * 8 + 2 * t, (g + 8) * 8 + 2 * t + 1};
  for (int i = 0; i < 4; i++) { D1[idx[i]] = d1[i]; D2[idx[i]] = d2[i]; }
}

EMU_TEST(ldmatrix_fragments) {
  std::vector<uint16_t> src(256);
  for (int i = 0; i < 256; i++) src[size_t(i)] = uint16_t(1000 + i);  // matrix m, row r, col c = 1000 + 64m + 8r + c
  DeviceBuffer<uint16_t> dsrc(src);
  DeviceBuffer<uint32_t> out(32 * 12);
  fuselm::launch_kernel("ldmatrix_kernel", ldmatrix_kernel, dim3(1), dim3(32), 32 * kPitch * sizeof(uint16_t), nullptr,
                        dsrc.p, out.p);
  std::vector<uint32_t> o = out.download();
  auto v = [](int m, int r, int c) { return uint32_t(1000 + 64 * m + 8 * r + c); };
  for (int l = 0; l < 32; l++) {
    const uint32_t* e = &o[size_t(l * 12)];
    for (int m = 0; m < 4; m++) {
      const uint32_t plain = v(m, l / 4, 2 * (l % 4)) | v(m, l / 4, 2 * (l % 4) + 1) << 16;
      const uint32_t trans = v(m, 2 * (l % 4), l / 4) | v(m, 2 * (l % 4) + 1, l / 4) << 16;
      CHECK_MSG(e[m] == plain, "x4 lane " + std::to_string(l) + " reg " + std::to_string(m));
      CHECK_MSG(e[4 + m] == trans, "x4.trans lane " + std::to_string(l) + " reg " + std::to_string(m));
      if (m < 2) {
        CHECK_MSG(e[8 + m] == plain, "x2 lane " + std::to_string(l) + " reg " + std::to_string(m));
        CHECK_MSG(e[10 + m] == trans, "x2.trans lane " + std::to_string(l) + " reg " + std::to_string(m));
      }
    }
  }
}

EMU_TEST(ldmatrix_feeds_mma) {
  Rng rng(5);
  std::vector<uint16_t> A(256), Bc(128), Br(128);
  for (auto& x : A) x = fuselm::f32_to_f16(rng.uniform(-1.0f, 1.0f));
  for (int k = 0; k < 16; k++)
    for (int n = 0; n < 8; n++) {
      const uint16_t h = fuselm::f32_to_f16(rng.uniform(-1.0f, 1.0f));
      Bc[size_t(n * 16 + k)] = h;
      Br[size_t(k * 8 + n)] = h;
    }
  DeviceBuffer<uint16_t> dA(A), dBc(Bc), dBr(Br);
  DeviceBuffer<float> D1(128), D2(128);
  fuselm::launch_kernel("ldmatrix_mma_kernel", ldmatrix_mma_kernel, dim3(1), dim3(32), 40 * kPitch * sizeof(uint16_t),
                        nullptr, dA.p, dBc.p, dBr.p, D1.p, D2.p);
  std::vector<float> d1 = D1.download(), d2 = D2.download();
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 8; j++) {
      double ref = 0, mag = 0;
      for (int k = 0; k < 16; k++) {
        const double p = double(fuselm::f16_to_f32(A[size_t(i * 16 + k)])) * fuselm::f16_to_f32(Br[size_t(k * 8 + j)]);
        ref += p;
        mag += std::fabs(p);
      }
      const std::string at = "D[" + std::to_string(i) + "][" + std::to_string(j) + "]";
      CHECK_MSG(std::fabs(d1[size_t(i * 8 + j)] - ref) <= 1e-6 * mag + 1e-30, "x2 path " + at);
      CHECK_MSG(std::fabs(d2[size_t(i * 8 + j)] - ref) <= 1e-6 * mag + 1e-30, "x2.trans path " + at);
    }
}

}  // namespace emu_tests
