// Proves: a 256-block x 128-thread reduction through dynamic shared memory, __syncthreads and
// shuffles gives the scalar reference's sums (exactly: the inputs are small integers); the
// index built-ins of 3-D grids and blocks; __syncthreads_count/and/or; float and int atomics.
#include <chrono>
#include <cstdio>
#include <vector>

#include "common.cuh"
#include "device_buffer.h"
#include "harness.h"

namespace emu_tests {

__global__ void block_sum_kernel(const float* x, float* out, int per_block) {
  float* s = fuselm::dynamic_smem<float>();
  const int t = int(threadIdx.x);
  const float* xb = x + size_t(blockIdx.x) * size_t(per_block);
  float acc = 0.0f;
  for (int i = t; i < per_block; i += int(blockDim.x)) acc += xb[i];
  s[t] = acc;
  __syncthreads();
  for (int stride = int(blockDim.x) / 2; stride >= 32; stride >>= 1) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t < 32) {
    float v = s[t];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (t == 0) out[blockIdx.x] = v;
  }
}

// Each thread writes its indices; __syncthreads_count/and/or over a predicate of them.
__global__ void indices_kernel(int* out, int* votes) {
  const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned nthreads = blockDim.x * blockDim.y * blockDim.z;
  int* o = out + 6 * (bid * nthreads + tid);
  o[0] = int(threadIdx.x); o[1] = int(threadIdx.y); o[2] = int(threadIdx.z);
  o[3] = int(blockIdx.x); o[4] = int(blockIdx.y); o[5] = int(blockIdx.z);
  const int count = __syncthreads_count(threadIdx.x % 3 == 0);
  const int all = __syncthreads_and(threadIdx.z < blockDim.z);
  const int any = __syncthreads_or(tid == nthreads - 1 && bid == 0);
  if (tid == 0) {
    votes[3 * bid] = count;
    votes[3 * bid + 1] = all;
    votes[3 * bid + 2] = any;
  }
}

__global__ void atomics_kernel(float* fsum, int* isum, unsigned* imax) {
  const int g = int(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(fsum, 0.5f);
  atomicAdd(isum, g);
  atomicMax(imax, unsigned(g * 7 % 1000));
}

EMU_TEST(block_reduce_256x128) {
  const int blocks = 256, threads = 128, per_block = 1024;
  std::vector<float> x(size_t(blocks) * per_block);
  for (size_t i = 0; i < x.size(); i++) x[i] = float(int(i * 7 % 13) - 6);
  DeviceBuffer<float> dx(x), dout(blocks);
  const auto t0 = std::chrono::steady_clock::now();
  fuselm::launch_kernel("block_sum_kernel", block_sum_kernel, dim3(blocks), dim3(threads),
                        threads * sizeof(float), nullptr, dx.p, dout.p, per_block);
  std::vector<float> out = dout.download();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  for (int b = 0; b < blocks; b++) {
    float ref = 0.0f;
    for (int i = 0; i < per_block; i++) ref += x[size_t(b) * per_block + size_t(i)];
    CHECK_MSG(out[size_t(b)] == ref, "block " + std::to_string(b) + ": " + std::to_string(out[size_t(b)]) +
                                         " != " + std::to_string(ref));
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "256x128 reduction launch %.1f ms", ms);
  note(buf);
}

EMU_TEST(block_indices_3d_and_syncthreads_count) {
  const dim3 grid(3, 2, 2), block(8, 4, 2);
  const int nb = 12, nt = 64;
  DeviceBuffer<int> out(size_t(6 * nb * nt)), votes(size_t(3 * nb));
  fuselm::launch_kernel("indices_kernel", indices_kernel, grid, block, 0, nullptr, out.p, votes.p);
  std::vector<int> o = out.download(), v = votes.download();
  for (int bz = 0; bz < 2; bz++)
    for (int by = 0; by < 2; by++)
      for (int bx = 0; bx < 3; bx++)
        for (int tz = 0; tz < 2; tz++)
          for (int ty = 0; ty < 4; ty++)
            for (int tx = 0; tx < 8; tx++) {
              const int bid = bx + 3 * (by + 2 * bz), tid = tx + 8 * (ty + 4 * tz);
              const int* e = &o[size_t(6 * (bid * nt + tid))];
              CHECK(e[0] == tx && e[1] == ty && e[2] == tz && e[3] == bx && e[4] == by && e[5] == bz);
            }
  for (int b = 0; b < nb; b++) {
    CHECK_MSG(v[size_t(3 * b)] == 3 * 4 * 2, "count " + std::to_string(v[size_t(3 * b)]));  // x in {0,3,6}
    CHECK(v[size_t(3 * b + 1)] == 1);
    CHECK(v[size_t(3 * b + 2)] == (b == 0 ? 1 : 0));
  }
}

EMU_TEST(atomics) {
  DeviceBuffer<float> f(1);
  DeviceBuffer<int> i(1);
  DeviceBuffer<unsigned> m(1);
  fuselm::launch_kernel("atomics_kernel", atomics_kernel, dim3(8), dim3(64), 0, nullptr, f.p, i.p, m.p);
  unsigned ref_max = 0;
  for (int g = 0; g < 512; g++) ref_max = std::max(ref_max, unsigned(g * 7 % 1000));
  CHECK(f.download()[0] == 256.0f);
  CHECK(i.download()[0] == 511 * 512 / 2);
  CHECK(m.download()[0] == ref_max);
}

}  // namespace emu_tests
