// How a CUDA implementation joins the op table (native/op.h): cuda/<op>.cu registers an eval
// for its op's definition, and the CUDA graph (cuda_graph.cu) runs each node by it. The two
// flavors (GPU and emulator) have registries of their own.
#pragma once
#include "common.cuh"
#include "op.h"

FUSELM_CUDA_NAMESPACE_BEGIN

// What a launch gets besides its node: the graph's stream, its shared workspace, the ops'
// zeroed counters (CudaOp::counters; an op leaves them zero when its launch ends), and the
// step's error word (device i32 [2], zeroed before each step): a kernel that finds bad data
// it cannot refuse up front (token ids in device memory) records {1 + row, value} there, and
// the graph throws E_INVALID_ARG after the step. Kernels never trap: a trap
// poisons the whole CUDA context.
// What the workspace holds from the last matmul that quantized its x there (cuda/quantize_x.cuh):
// a matmul on the same x right after it (the q, k and v projections; gate and up) skips
// quantizing it again. The graph clears it before every other op, any of which may write x or
// use the workspace.
struct QuantizedX {
  const float* x = nullptr;
  int64_t T = 0, K = 0;
};

struct CudaExec {
  cudaStream_t stream;
  void* workspace;
  size_t workspace_bytes;
  int32_t* error;
  QuantizedX* quantized_x = nullptr;  // null: no reuse
  uint32_t* counters = nullptr;
  int64_t n_counters = 0;
};

using CudaEval = void (*)(const Step&, const CudaExec&);
// Workspace bytes a node needs for runs of up to max_rows rows (null: none).
using CudaWorkspace = size_t (*)(const Node&, int64_t max_rows);
// Zeroed u32 counters a node needs for runs of up to max_rows rows (null: none).
using CudaCounters = int64_t (*)(const Node&, int64_t max_rows);

struct CudaOp {
  const OpDef* def;
  CudaEval eval;
  CudaWorkspace workspace;
  CudaCounters counters;
};

bool register_cuda_op(const OpDef& def, CudaEval eval, CudaWorkspace workspace = nullptr, CudaCounters counters = nullptr);
// This flavor's implementation of an op, or null.
const CudaOp* find_cuda_op(const OpDef& def);

FUSELM_CUDA_NAMESPACE_END

// In cuda/<op>.cu, inside FUSELM_CUDA_NAMESPACE: the CUDA implementation of an op.
#define FUSELM_CUDA_OP(def, ...) \
  static const bool FUSELM_OP_CAT(fuselm_cuda_op_, __LINE__) [[maybe_unused]] = register_cuda_op(def, __VA_ARGS__)
