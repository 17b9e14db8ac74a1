// The CUDA backend as the addon's host code sees it, with no CUDA types: its memory and its
// graphs. Two flavors compile from the same sources (cuda/cuda_graph.cu): the GPU's (nvcc,
// when the addon is built with CUDA) and the SIMT emulator's (g++, always), which
// FUSELM_CUDA_EMULATE=1 selects so that device: 'cuda' runs on a machine without a GPU.
#pragma once
#include <memory>
#include <vector>

#include "graph.h"

namespace fuselm {

struct CudaBackend {
  const DeviceMemory* memory;
  // A graph over device tensors (weights, activations, KV caches in f32/f16/bf16). Host
  // tensors are allowed in two roles: embedding ids (copied in at each run) and outputs of
  // matmul or argmax that no op reads (logits or chosen ids, copied out after it). Transpose
  // is a load-time op and is not offered.
  std::shared_ptr<Graph> (*graph)(std::vector<Node> nodes, int64_t max_rows, TensorPtr positions);
  // Bytes of device memory allocated by this backend and not yet freed.
  int64_t (*bytes_in_use)();
  // The device's free and total memory (cudaMemGetInfo; the emulator's is FUSELM_EMU_DEVICE_MEMORY).
  void (*mem_info)(size_t* free, size_t* total);
};

const CudaBackend& cuda_backend_emulated();
#ifdef FUSELM_HAVE_CUDA
const CudaBackend& cuda_backend_gpu();
#endif

}  // namespace fuselm
