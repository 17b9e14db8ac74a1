// Proves: __dp4a (the emulator's, cuda/emu/emu.h, and the GPU's instruction in
// fuselm_cuda_tests) equals a scalar model of PTX dp4a: the four byte lanes multiplied
// pairwise, as signed (int overload) or unsigned (unsigned overload) bytes, summed into c modulo
// 2^32. Inputs: random words plus the extremes (every byte -128 or 127 or 255, c at INT_MAX /
// INT_MIN so the sum wraps).
#include <cstdint>
#include <string>
#include <vector>

#include "common.cuh"
#include "device_buffer.h"
#include "harness.h"

namespace emu_tests {

__global__ void dp4a_kernel(int* s_out, unsigned* u_out, const unsigned* a, const unsigned* b, const unsigned* c, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  s_out[i] = __dp4a(int(a[i]), int(b[i]), int(c[i]));
  u_out[i] = __dp4a(a[i], b[i], c[i]);
}

EMU_TEST(dp4a_signed_unsigned) {
  Rng rng(0xd4a);
  std::vector<unsigned> a, b, c;
  const unsigned edge[] = {0x80808080u, 0x7f7f7f7fu, 0xffffffffu, 0u, 0x807f01ffu, 0x7fffffffu, 0x80000000u};
  for (unsigned x : edge)
    for (unsigned y : edge)
      for (unsigned z : {0u, 0x7fffffffu, 0x80000000u, 0xffffffffu}) a.push_back(x), b.push_back(y), c.push_back(z);
  for (int i = 0; i < 1000; i++) a.push_back(uint32_t(rng.next())), b.push_back(uint32_t(rng.next())), c.push_back(uint32_t(rng.next()));
  const int n = int(a.size());
  DeviceBuffer<unsigned> da(a), db(b), dc(c), du{size_t(n)};
  DeviceBuffer<int> ds{size_t(n)};
  fuselm::launch_kernel("dp4a_kernel", dp4a_kernel, dim3(unsigned((n + 127) / 128)), dim3(128), 0, nullptr, ds.p, du.p,
                        static_cast<const unsigned*>(da.p), static_cast<const unsigned*>(db.p),
                        static_cast<const unsigned*>(dc.p), n);
  const std::vector<int> s = ds.download();
  const std::vector<unsigned> u = du.download();
  for (int i = 0; i < n; i++) {
    int64_t ss = int64_t(int32_t(c[i])), us = int64_t(c[i]);
    for (int k = 0; k < 4; k++) {
      ss += int64_t(int8_t(a[i] >> 8 * k)) * int64_t(int8_t(b[i] >> 8 * k));
      us += int64_t((a[i] >> 8 * k) & 0xff) * int64_t((b[i] >> 8 * k) & 0xff);
    }
    CHECK_MSG(uint32_t(s[i]) == uint32_t(uint64_t(ss)), "signed dp4a, case " + std::to_string(i));
    CHECK_MSG(u[i] == uint32_t(uint64_t(us)), "unsigned dp4a, case " + std::to_string(i));
  }
}

}  // namespace emu_tests
