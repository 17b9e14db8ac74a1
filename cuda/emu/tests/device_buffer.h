// Device memory for the tests: real cudaMalloc under nvcc, host memory under the emulator.
#pragma once
#include <vector>

#include "common.cuh"
#include "q8_0_planes.h"

namespace emu_tests {

template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) {
    CUDA_CHECK(cudaMalloc(&p, count * sizeof(T)));
    CUDA_CHECK(cudaMemset(p, 0, count * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void upload(const std::vector<T>& host) {
    CUDA_CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
};

// Weight bytes as the device holds them, from the stored layout at stored + off (the first off
// bytes kept: the weights' offset into the buffer): q8_0 as its two planes
// (native/q8_0_planes.h), the other formats as stored.
inline std::vector<uint8_t> device_weights(fuselm::DType dt, const std::vector<uint8_t>& stored, size_t off = 0) {
  if (dt != fuselm::DType::Q8_0) return stored;
  std::vector<uint8_t> out(stored);
  const size_t blocks = (stored.size() - off) / sizeof(fuselm::BlockQ8_0);
  fuselm::q8_0_split(stored.data() + off, blocks, out.data() + off, out.data() + off + 32 * blocks);
  return out;
}

}  // namespace emu_tests
