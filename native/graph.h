// A graph is the op list of one forward step, built once from the model code's description
// (lib/model/*.ts) and then run many times with one native call per step. Activation tensors
// are allocated for `max_rows` tokens; a run processes the first n rows, at positions
// pos .. pos + n - 1 of the KV cache. The CPU graph is here; the CUDA one is cuda/cuda_graph.cu.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend.h"

namespace fuselm {

enum class OpKind { Add, Matmul, RmsNorm, Rope, KvStore, Attention, Swiglu, Embedding, AddBias, LayerNorm, Gelu, Transpose, Argmax };
const char* op_name(OpKind k);
bool op_from_name(const std::string& name, OpKind* out);

// Tensor roles and parameters; which ones an op uses is documented in lib/backend.ts.
struct Node {
  OpKind kind{};
  TensorPtr out, a, b, c;
  float eps = 0, scale = 0, theta_base = 10000, freq_scale = 1;
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0, n_rot = 0;
  bool neox = false;
  bool last_row = false;  // matmul: only the last of the n input rows, written to output row 0
  int64_t window = 0;     // attention: sliding window (0: none)
  bool causal = true;     // attention: false for encoders (every key visible)
  bool tanh_approx = false;  // gelu: the tanh approximation instead of erf
  int64_t col0 = 0;          // transpose: first column of x taken
  // Position-dependent ops (rope, kv_store, attention) of one sequence in a batch of several:
  // the node covers rows row0 .. row0 + seq_rows - 1 of the step (those below n), at the
  // position held in the graph's positions tensor at pos_slot. pos_slot < 0: all n rows at the
  // run's pos.
  int64_t row0 = 0, seq_rows = 0, pos_slot = -1;
  // attention: a shared prefix of prefix_len keys in front of the cache's (AttentionArgs)
  TensorPtr k_prefix, v_prefix;
  int64_t prefix_len = 0;
};

// A thread pool shared by all graphs of one model; its mutex keeps runs one at a time.
struct Pool {
  explicit Pool(int threads) : pool(threads) {}
  ThreadPool pool;
  std::mutex run_mu;
};

// The checked op list of a graph, common to the backends: validates every node's tensors and
// parameters when built, and each run's n and pos before any op runs (so a failed run leaves
// the KV cache untouched). Backends derive from it and say where tensors must live.
class Graph {
 public:
  virtual ~Graph() = default;
  // Runs every node for n tokens at positions pos .. pos + n - 1. Throws Error on bad n/pos.
  virtual void run(int64_t n, int64_t pos) = 0;
  int64_t max_rows() const { return max_rows_; }

 protected:
  // `positions` (i32, optional) holds each sequence's position for nodes with a pos_slot.
  // half_kv: KV caches may be f16 or bf16 (else f32 only).
  Graph(std::vector<Node> nodes, int64_t max_rows, TensorPtr positions, bool half_kv);
  void check_run(int64_t n, int64_t pos) const;
  // The rows, position and first row a node works on in a run of n rows at pos.
  struct Span { int64_t rows, pos, row0; };
  Span span(const Node& node, int64_t n, int64_t pos) const;
  // Calls f(tensor, role) for each tensor of node i.
  template <class F> static void each_tensor(const Node& n, F f) {
    if (n.out) f(n.out, "out");
    if (n.a) f(n.a, "a");
    if (n.b) f(n.b, "b");
    if (n.c) f(n.c, "c");
    if (n.k_prefix) f(n.k_prefix, "kPrefix");
    if (n.v_prefix) f(n.v_prefix, "vPrefix");
  }
  [[noreturn]] static void fail(const Node& n, size_t i, const std::string& what);

  std::vector<Node> nodes_;
  TensorPtr positions_;
  int64_t max_rows_;

 private:
  void validate(const Node& node, size_t index) const;
  bool half_kv_;
};

// The CPU backend's graph: every tensor in host memory, ops run on the model's thread pool.
class CpuGraph : public Graph {
 public:
  CpuGraph(std::vector<Node> nodes, std::shared_ptr<Pool> pool, Impl impl, int64_t max_rows, TensorPtr positions = nullptr);
  void run(int64_t n, int64_t pos) override;

 private:
  std::shared_ptr<Pool> pool_;
  Impl impl_;
};

}  // namespace fuselm
