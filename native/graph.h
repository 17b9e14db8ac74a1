// A graph is the op list of one forward step, built once from the model code's description
// (lib/model/*.ts) and then run many times with one native call per step. Activation tensors
// are allocated for `max_rows` tokens; a run processes the first n rows, at positions
// pos .. pos + n - 1 of the KV cache. Nodes are checked against the op table (op.h) when the
// graph is built. The CPU graph is here; the CUDA one is cuda/cuda_graph.cu.
#pragma once
#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "op.h"

namespace fuselm {

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
  Graph(std::vector<Node> nodes, int64_t max_rows, TensorPtr positions);
  void check_run(int64_t n, int64_t pos) const;
  // Node i in a run of n rows at pos; its data pointers are those bind() recorded.
  Step step(size_t i, int64_t n, int64_t pos) const;
  // Records where each node's tensors' data lives for this backend (null for absent roles).
  template <class F> void bind(F data_of) {
    ptrs_.assign(nodes_.size(), {});
    for (size_t i = 0; i < nodes_.size(); i++)
      for (int r = 0; r < kMaxRoles; r++) ptrs_[i][size_t(r)] = nodes_[i].t[r] ? data_of(nodes_[i].t[r]) : nullptr;
  }
  // Calls f(tensor, role index) for each tensor of a node.
  template <class F> static void each_tensor(const Node& n, F f) {
    for (int r = 0; r < kMaxRoles; r++)
      if (n.t[r]) f(n.t[r], r);
  }
  [[noreturn]] static void fail(const Node& n, size_t i, const std::string& what);

  std::vector<Node> nodes_;
  TensorPtr positions_;
  int64_t max_rows_;

 private:
  void validate(const Node& node, size_t index) const;
  std::vector<std::array<void*, kMaxRoles>> ptrs_;
};

// The CPU backend's graph: every tensor in host memory, ops run on the model's thread pool.
class CpuGraph : public Graph {
 public:
  CpuGraph(std::vector<Node> nodes, std::shared_ptr<Pool> pool, Impl impl, int64_t max_rows, TensorPtr positions = nullptr);
  void run(int64_t n, int64_t pos) override;

 private:
  std::shared_ptr<Pool> pool_;
  Impl impl_;
  std::vector<CpuEval> eval_;  // per node
};

}  // namespace fuselm
