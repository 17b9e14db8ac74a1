// Proves: cp_async_16 copies 16-byte chunks global -> shared in commit groups that
// cp_async_wait<N> retires oldest first (two stages, as in a double-buffered tile loop),
// cp_async_16_zfill writes zeros for masked chunks, and (emulator only) copies land at the
// wait, so a kernel that reads before waiting sees the poisoned arena.
#include <vector>

#include "common.cuh"
#include "device_buffer.h"
#include "harness.h"

namespace emu_tests {

// 64 threads; stage s = 64 chunks of 16 bytes (4 floats). Chunk c of stage 1 is masked when
// c >= valid1. out: stage 0 then stage 1 as read from shared memory after the waits.
__global__ void cp_async_kernel(const float* src, float* out, int valid1) {
  float* s = fuselm::dynamic_smem<float>();
  const int t = int(threadIdx.x);
  fuselm::cp_async_16(s + 4 * t, src + 4 * t);
  fuselm::cp_async_commit();
  fuselm::cp_async_16_zfill(s + 256 + 4 * t, src + 256 + 4 * t, t < valid1);
  fuselm::cp_async_commit();
  fuselm::cp_async_wait<1>();  // stage 0 has landed; stage 1 may still be in flight
  __syncthreads();
  for (int i = t; i < 256; i += 64) out[i] = s[i];
  fuselm::cp_async_wait<0>();
  __syncthreads();
  for (int i = t; i < 256; i += 64) out[256 + i] = s[256 + i];
}

__global__ void cp_async_read_early_kernel(const float* src, uint32_t* out) {
  float* s = fuselm::dynamic_smem<float>();
  fuselm::cp_async_16(s + 4 * threadIdx.x, src + 4 * threadIdx.x);
  fuselm::cp_async_commit();
  out[threadIdx.x] = __float_as_uint(s[4 * threadIdx.x]);  // bug: before the wait
  fuselm::cp_async_wait<0>();
  out[32 + threadIdx.x] = __float_as_uint(s[4 * threadIdx.x]);
}

EMU_TEST(cp_async_two_stages_and_zfill) {
  std::vector<float> src(512);
  for (int i = 0; i < 512; i++) src[size_t(i)] = float(i) + 0.25f;
  DeviceBuffer<float> dsrc(src), out(512);
  const int valid1 = 40;
  fuselm::launch_kernel("cp_async_kernel", cp_async_kernel, dim3(3), dim3(64), 512 * sizeof(float), nullptr, dsrc.p,
                        out.p, valid1);
  std::vector<float> o = out.download();
  for (int i = 0; i < 256; i++) CHECK_MSG(o[size_t(i)] == src[size_t(i)], "stage 0 float " + std::to_string(i));
  for (int i = 256; i < 512; i++) {
    const float want = (i - 256) / 4 < valid1 ? src[size_t(i)] : 0.0f;
    CHECK_MSG(o[size_t(i)] == want, "stage 1 float " + std::to_string(i));
  }
}

#if !defined(__CUDACC__)
EMU_TEST(cp_async_lands_at_the_wait) {
  std::vector<float> src(128, 3.0f);
  DeviceBuffer<float> dsrc(src);
  DeviceBuffer<uint32_t> out(64);
  fuselm::launch_kernel("cp_async_read_early_kernel", cp_async_read_early_kernel, dim3(1), dim3(32),
                        128 * sizeof(float), nullptr, dsrc.p, out.p);
  std::vector<uint32_t> o = out.download();
  for (int t = 0; t < 32; t++) {
    CHECK(o[size_t(t)] == 0xffffffffu);            // the poison: nothing landed yet
    CHECK(o[size_t(32 + t)] == __float_as_uint(3.0f));
  }
}
#endif

}  // namespace emu_tests
