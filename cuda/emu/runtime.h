// The slice of the CUDA runtime API that host launchers use, for the emulator: device memory
// is host memory, copies are memcpy, streams and events are no-ops (every emulated launch runs
// to completion before it returns). Kept small on purpose; add calls as launchers need them.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
using cudaStream_t = struct CUstream_st*;

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : e == cudaErrorMemoryAllocation ? "out of memory" : "invalid argument";
}
// Emulated launches report errors by throwing, so there is never a pending error.
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { *s = nullptr; return cudaSuccess; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }

template <class T> inline cudaError_t cudaMalloc(T** p, size_t bytes) {
  // 256-byte aligned like cudaMalloc, so 16-byte vector loads and cp.async sources line up.
  void* m = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
  *p = static_cast<T*>(m);
  return m ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
// Page-locked host memory: plain host memory here (every copy is a memmove).
inline cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = std::malloc(bytes ? bytes : 1);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFreeHost(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind k, cudaStream_t = nullptr) {
  return cudaMemcpy(dst, src, bytes, k);
}
// The emulated device's size: FUSELM_EMU_DEVICE_MEMORY bytes (read at each call, so a test can
// give it a small device), by default 80 GiB (an H100's). All of it is reported free: the
// backend subtracts what it holds itself (cuda/cuda_graph.cu).
inline cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  const char* e = std::getenv("FUSELM_EMU_DEVICE_MEMORY");
  const unsigned long long n = e ? std::strtoull(e, nullptr, 10) : 0;
  *total = *free = n > 0 ? size_t(n) : size_t(80) << 30;
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* p, int v, size_t bytes) { if (bytes) std::memset(p, v, bytes); return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t = nullptr) { return cudaMemset(p, v, bytes); }
template <class F> inline cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int) { return cudaSuccess; }
