// Shared CUDA helpers. Every runtime call and kernel launch is checked and turned into a
// fuselm::Error (a JS FuselmError), never an exit or abort.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "tensor.h"

namespace fuselm {

inline void cuda_check(cudaError_t err, const char* what, const char* file, int line) {
  if (err != cudaSuccess)
    throw Error("E_NATIVE", std::string("CUDA error in ") + what + " (" + file + ":" + std::to_string(line) +
                                "): " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

#define CUDA_CHECK(call) ::fuselm::cuda_check((call), #call, __FILE__, __LINE__)
// After a <<<...>>> launch: catches bad launch configurations at once.
#define CUDA_CHECK_LAUNCH(name) ::fuselm::cuda_check(cudaGetLastError(), name, __FILE__, __LINE__)

}  // namespace fuselm
