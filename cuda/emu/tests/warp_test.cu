// Proves: every shuffle kind (idx/up/down/xor, widths 32..4, int, float and 64-bit values,
// a partial mask) and the votes (ballot/any/all, partial masks) give what the
// CUDA programming guide specifies, computed here by a scalar model of the lane arithmetic.
#include <vector>

#include "common.cuh"
#include "device_buffer.h"
#include "harness.h"

namespace emu_tests {

constexpr int kShflCases = 12;

__global__ void shuffles_kernel(int* out, long long* out64) {
  const unsigned full = 0xffffffffu;
  const int tid = int(threadIdx.x), lane = tid & 31;
  const int v = tid * 10 + 1;
  int* o = out + tid * kShflCases;
  o[0] = __shfl_sync(full, v, (lane * 5 + 3) % 32);
  o[1] = __shfl_sync(full, v, 3, 8);
  o[2] = __shfl_up_sync(full, v, 1);
  o[3] = __shfl_up_sync(full, v, 3, 16);
  o[4] = __shfl_down_sync(full, v, 2);
  o[5] = __shfl_down_sync(full, v, 5, 8);
  o[6] = __shfl_xor_sync(full, v, 1);
  o[7] = __shfl_xor_sync(full, v, 16);
  o[8] = __shfl_xor_sync(full, v, 4, 8);
  float f = float(tid);  // butterfly sum: every lane ends with the warp's total
  for (int m = 16; m > 0; m >>= 1) f += __shfl_xor_sync(full, f, m);
  o[9] = int(f);
  o[10] = __shfl_sync(full, v, 31 - lane, 4);
  o[11] = -1;
  if (lane < 16) o[11] = __shfl_xor_sync(0x0000ffffu, v, 2);
  const long long w = (static_cast<long long>(tid) << 33) | tid;
  out64[tid] = __shfl_sync(full, w, 31 - lane);
}

__global__ void votes_kernel(unsigned* out) {
  const int tid = int(threadIdx.x), lane = tid & 31;
  unsigned* o = out + tid * 5;
  o[0] = __ballot_sync(0xffffffffu, lane % 3 == 0);
  o[1] = unsigned(__any_sync(0xffffffffu, tid == 37));
  o[2] = unsigned(__all_sync(0xffffffffu, lane != 5));
  o[3] = unsigned(__all_sync(0xffffffffu, tid >= 0));
  o[4] = lane >= 16 ? __ballot_sync(0xffff0000u, lane & 1) : 0u;
}

static int lane_of(int tid) { return tid & 31; }

EMU_TEST(warp_shuffles) {
  const int n = 64;
  DeviceBuffer<int> out(size_t(n * kShflCases));
  DeviceBuffer<long long> out64(n);
  fuselm::launch_kernel("shuffles_kernel", shuffles_kernel, dim3(1), dim3(n), 0, nullptr, out.p, out64.p);
  std::vector<int> o = out.download();
  std::vector<long long> o64 = out64.download();
  auto val = [](int tid) { return tid * 10 + 1; };
  for (int tid = 0; tid < n; tid++) {
    const int lane = lane_of(tid), warp0 = tid - lane;
    // scalar model: source lane within segments of width w, own value when out of range
    auto idx = [&](int src, int w) { return val(warp0 + (lane & ~(w - 1)) + (src & (w - 1))); };
    auto up = [&](int d, int w) { return (lane & (w - 1)) < d ? val(tid) : val(tid - d); };
    auto down = [&](int d, int w) { return (lane & (w - 1)) + d >= w ? val(tid) : val(tid + d); };
    auto bfly = [&](int m, int w) {
      int j = lane ^ m;
      return j >= (lane & ~(w - 1)) + w ? val(tid) : val(warp0 + j);
    };
    const int want[kShflCases] = {idx((lane * 5 + 3) % 32, 32), idx(3, 8), up(1, 32), up(3, 16), down(2, 32),
                                  down(5, 8), bfly(1, 32), bfly(16, 32), bfly(4, 8),
                                  (warp0 * 32 + 31 * 32 / 2), idx(31 - lane, 4), lane < 16 ? bfly(2, 32) : -1};
    for (int c = 0; c < kShflCases; c++)
      CHECK_MSG(o[size_t(tid * kShflCases + c)] == want[c],
                "thread " + std::to_string(tid) + " case " + std::to_string(c) + ": got " +
                    std::to_string(o[size_t(tid * kShflCases + c)]) + ", want " + std::to_string(want[c]));
    const int src = warp0 + 31 - lane;
    CHECK(o64[size_t(tid)] == ((static_cast<long long>(src) << 33) | src));
  }
}

EMU_TEST(warp_votes) {
  const int n = 64;
  DeviceBuffer<unsigned> out(size_t(n * 5));
  fuselm::launch_kernel("votes_kernel", votes_kernel, dim3(1), dim3(n), 0, nullptr, out.p);
  std::vector<unsigned> o = out.download();
  unsigned every3 = 0;
  for (int l = 0; l < 32; l += 3) every3 |= 1u << l;
  for (int tid = 0; tid < n; tid++) {
    const unsigned* e = &o[size_t(tid * 5)];
    const int lane = tid & 31;
    CHECK(e[0] == every3);
    CHECK(e[1] == (tid >= 32 ? 1u : 0u));
    CHECK(e[2] == 0u);
    CHECK(e[3] == 1u);
    CHECK(e[4] == (lane >= 16 ? 0xaaaa0000u : 0u));
  }
}

}  // namespace emu_tests
