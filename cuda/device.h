// Host-side view of the CUDA devices; compiled only when the CUDA backend is built.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace fuselm {

struct CudaDevice {
  int index = 0;
  std::string name;
  size_t total_memory = 0;
  int major = 0, minor = 0;
};

// The devices the driver reports; empty with *why set when there is no driver or no device.
std::vector<CudaDevice> cuda_devices(std::string* why);

}  // namespace fuselm
