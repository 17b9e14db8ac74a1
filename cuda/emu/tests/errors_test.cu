// Proves (emulator only: on a GPU these kernels hang or corrupt memory): kernel bugs come
// back as fuselm::Error("E_NATIVE") naming the problem instead of hanging: a __syncthreads
// that exited threads never reach, divergent __syncthreads, a shuffle naming an exited lane,
// lanes meeting in different warp operations, a warp waiting on a block barrier (deadlock),
// a write past the shared-memory arena, ldmatrix or smem_bounds_check outside it, __trap(), intrinsics called outside a launch; and that the emulator works
// normally after each of them.
#include <vector>

#include "common.cuh"
#include "device_buffer.h"
#include "harness.h"

namespace emu_tests {

__global__ void exit_before_sync_kernel(float* out) {
  if (threadIdx.x >= 64) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void divergent_sync_kernel(float* out) {
  if (threadIdx.x < 64) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

__global__ void shfl_exited_lane_kernel(float* out) {
  if ((threadIdx.x & 31) >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, float(threadIdx.x), 1);
}

__global__ void mixed_warp_ops_kernel(float* out) {
  if (threadIdx.x & 1) out[threadIdx.x] = float(__ballot_sync(0xffffffffu, 1));
  else out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void warp_vs_block_kernel(float* out) {
  if (threadIdx.x < 16) __syncwarp();
  else __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void smem_overflow_kernel(float* out) {
  float* s = fuselm::dynamic_smem<float>();
  s[threadIdx.x] = 1.0f;  // launched with 32 floats of shared memory and 33 threads
  __syncthreads();
  out[threadIdx.x] = s[0];
}

__global__ void ldmatrix_outside_kernel(unsigned* out) {
  unsigned short* s = fuselm::dynamic_smem<unsigned short>();
  uint32_t r[4];
  fuselm::ldmatrix_x4(r, s + 8 * threadIdx.x);  // 32 rows of 16 bytes, arena of 256 bytes
  out[threadIdx.x] = r[0];
}

__global__ void smem_bounds_kernel(float* out) {
  float* s = fuselm::dynamic_smem<float>();
  fuselm::smem_bounds_check(s + threadIdx.x, sizeof(float));  // 32 floats of arena, 33 threads
  out[threadIdx.x] = 0.0f;
}

__global__ void trap_kernel(float* out) {
  if (threadIdx.x == 5) __trap();
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void small_sum_kernel(const float* x, float* out) {
  float v = x[threadIdx.x];
  for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
  float* s = fuselm::dynamic_smem<float>();
  if ((threadIdx.x & 31) == 0) s[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = s[0] + s[1];
}

#if !defined(__CUDACC__)

static float* g_out = nullptr;
static unsigned* g_uout = nullptr;

static void works_after_an_error() {
  std::vector<float> x(64);
  for (int i = 0; i < 64; i++) x[size_t(i)] = float(i);
  DeviceBuffer<float> dx(x), out(1);
  fuselm::launch_kernel("small_sum_kernel", small_sum_kernel, dim3(2), dim3(64), 2 * sizeof(float), nullptr, dx.p,
                        out.p);
  CHECK(out.download()[0] == 63.0f * 64.0f / 2.0f);
}

template <void (*K)(float*)>
static void run_bad(unsigned threads, size_t smem, const char* needle) {
  DeviceBuffer<float> out(threads);
  g_out = out.p;
  static unsigned s_threads;
  static size_t s_smem;
  s_threads = threads;
  s_smem = smem;
  expect_error([] { fuselm::launch_kernel("bad_kernel", K, dim3(2), dim3(s_threads), s_smem, nullptr, g_out); },
               needle);
  works_after_an_error();
}

EMU_TEST(error_exited_threads_skip_syncthreads) { run_bad<exit_before_sync_kernel>(128, 0, "exited"); }
EMU_TEST(error_divergent_syncthreads) { run_bad<divergent_sync_kernel>(128, 0, "divergent __syncthreads"); }
EMU_TEST(error_shuffle_names_exited_lane) { run_bad<shfl_exited_lane_kernel>(64, 0, "exited"); }
EMU_TEST(error_lanes_in_different_warp_ops) { run_bad<mixed_warp_ops_kernel>(32, 0, "different warp operations"); }
EMU_TEST(error_deadlock_warp_vs_block_barrier) { run_bad<warp_vs_block_kernel>(32, 0, "deadlock"); }
EMU_TEST(error_shared_memory_overflow) { run_bad<smem_overflow_kernel>(33, 32 * sizeof(float), "outside its 128 bytes"); }

EMU_TEST(error_smem_bounds_check) { run_bad<smem_bounds_kernel>(33, 32 * sizeof(float), "[128, 132) outside"); }

EMU_TEST(error_ldmatrix_outside_shared_memory) {
  DeviceBuffer<unsigned> out(32);
  g_uout = out.p;
  expect_error([] {
    fuselm::launch_kernel("ldmatrix_outside_kernel", ldmatrix_outside_kernel, dim3(1), dim3(32), 256, nullptr, g_uout);
  }, "outside the 256-byte arena");
  works_after_an_error();
}

EMU_TEST(error_trap) { run_bad<trap_kernel>(64, 0, "__trap()"); }

EMU_TEST(error_intrinsic_outside_a_kernel) {
  expect_error([] { __syncthreads(); }, "outside a kernel launch");
  expect_error([] { (void)__shfl_sync(0xffffffffu, 1, 0); }, "outside a kernel launch");
}

EMU_TEST(error_bad_launch_configuration) {
  DeviceBuffer<float> out(1);
  g_out = out.p;
  expect_error([] { fuselm::launch_kernel("k", small_sum_kernel, dim3(1), dim3(2048), 0, nullptr, g_out, g_out); },
               "invalid launch configuration");
  expect_error([] { fuselm::launch_kernel("k", small_sum_kernel, dim3(1), dim3(64), 300000, nullptr, g_out, g_out); },
               "bytes of shared memory");
}

#endif

}  // namespace emu_tests
