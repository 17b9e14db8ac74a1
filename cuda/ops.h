// The CUDA backend's op launchers: one per op, `<op>_cuda(args, stream)`, each in cuda/<op>.cu
// beside its kernels, with the same Args structs as the CPU ops (native/backend.h) but every
// pointer a DEVICE pointer. Launches are asynchronous on `stream` (the emulator runs them to
// completion); bad launches throw fuselm::Error. Shapes as in backend.h.
#pragma once
#include "backend.h"
#include "common.cuh"

namespace fuselm {

void add_cuda(const AddArgs& a, cudaStream_t stream);            // cuda/add.cu
void rms_norm_cuda(const RmsNormArgs& a, cudaStream_t stream);   // cuda/rms_norm.cu
void swiglu_cuda(const SwigluArgs& a, cudaStream_t stream);      // cuda/swiglu.cu
void rope_cuda(const RopeArgs& a, cudaStream_t stream);          // cuda/rope.cu
void embedding_cuda(const EmbeddingArgs& a, cudaStream_t stream);  // cuda/embedding.cu
// Decode-shaped matmul (a GEMV per token): w f16/bf16/q8_0/f32 [N, K] in device memory.
void matmul_gemv_cuda(const MatmulArgs& a, cudaStream_t stream);  // cuda/gemv.cu

// Grid-stride launch width for elementwise kernels: enough blocks to fill any current GPU,
// few enough that each thread does several vectors.
inline unsigned elementwise_blocks(int64_t work_items, unsigned threads) {
  const int64_t b = (work_items + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : b > 8192 ? 8192 : b);
}

}  // namespace fuselm
