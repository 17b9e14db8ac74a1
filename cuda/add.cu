// add: out = a + b elementwise (f32). The CUDA backend's first kernel; the CPU twin is
// native/cpu/add.cc.
#include "common.cuh"
#include "device.h"

namespace fuselm {

static __global__ void add_f32_kernel(float* out, const float* a, const float* b, size_t n) {
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

void add_cuda_host(float* out, const float* a, const float* b, size_t n, int device) {
  if (n == 0) return;
  CUDA_CHECK(cudaSetDevice(device));
  float *da = nullptr, *db = nullptr, *dout = nullptr;
  const size_t bytes = n * sizeof(float);
  try {
    CUDA_CHECK(cudaMalloc(&da, bytes));
    CUDA_CHECK(cudaMalloc(&db, bytes));
    CUDA_CHECK(cudaMalloc(&dout, bytes));
    CUDA_CHECK(cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice));
    const unsigned threads = 256;
    add_f32_kernel<<<unsigned((n + threads - 1) / threads), threads>>>(dout, da, db, n);
    CUDA_CHECK_LAUNCH("add_f32_kernel");
    CUDA_CHECK(cudaMemcpy(out, dout, bytes, cudaMemcpyDeviceToHost));
  } catch (...) {
    cudaFree(da); cudaFree(db); cudaFree(dout);
    throw;
  }
  cudaFree(da); cudaFree(db); cudaFree(dout);
}

}  // namespace fuselm
