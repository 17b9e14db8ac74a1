#include "device.h"

#include <dlfcn.h>

#include "common.cuh"

namespace fuselm {

namespace {
// The static CUDA runtime answers cudaErrorInsufficientDriver both when the driver is too old
// and when there is no driver library at all: look for the library to tell the two apart.
bool driver_library_missing() {
  void* lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!lib) return true;
  dlclose(lib);
  return false;
}
}  // namespace

std::vector<CudaDevice> cuda_devices(std::string* why) {
  std::vector<CudaDevice> out;
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why)
      *why = err == cudaErrorInsufficientDriver && driver_library_missing()
                 ? std::string("no NVIDIA driver (libcuda not found)")
                 : std::string("no usable CUDA device: ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err);
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

}  // namespace fuselm
