#include "device.h"
#include "ops.h"

namespace fuselm {

std::vector<CudaDevice> cuda_devices(std::string* why) {
  std::vector<CudaDevice> out;
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why) *why = std::string("no usable CUDA device: ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return out;
  }
  if (n == 0 && why) *why = "the CUDA driver reports no devices";
  for (int i = 0; i < n; i++) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({i, p.name, p.totalGlobalMem, p.major, p.minor});
  }
  return out;
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
    add_cuda(AddArgs{dout, da, db, 1, int64_t(n)}, nullptr);
    CUDA_CHECK(cudaMemcpy(out, dout, bytes, cudaMemcpyDeviceToHost));
  } catch (...) {
    cudaFree(da); cudaFree(db); cudaFree(dout);
    throw;
  }
  cudaFree(da); cudaFree(db); cudaFree(dout);
}

}  // namespace fuselm
