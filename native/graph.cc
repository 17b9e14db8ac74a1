#include "graph.h"

#include <algorithm>

namespace fuselm {

void Graph::fail(const Node& n, size_t i, const std::string& what) { Check(n, i, 0).fail(what); }

Graph::Graph(std::vector<Node> nodes, int64_t max_rows, TensorPtr positions)
    : nodes_(std::move(nodes)), positions_(std::move(positions)), max_rows_(max_rows) {
  if (positions_ && positions_->dtype != DType::I32) throw Error("E_INVALID_ARG", "graph positions must be i32, got " + positions_->describe());
  if (positions_ && !positions_->on_host()) throw Error("E_INVALID_ARG", "graph positions must be in host memory");
  if (max_rows_ < 1) throw Error("E_INVALID_ARG", "graph maxRows must be >= 1");
  for (size_t i = 0; i < nodes_.size(); i++) validate(nodes_[i], i);
}

void Graph::validate(const Node& n, size_t i) const {
  if (!n.op) throw Error("E_INVALID_ARG", "op #" + std::to_string(i) + ": no op");
  const Check c(n, i, max_rows_);
  for (size_t r = 0; r < n.op->roles.size(); r++) {
    if (n.op->roles[r].required) c.tensor(int(r));
    // weights mapped from a file are PROT_READ: an op writing one would fault
    if (c.has(int(r)) && n.op->roles[r].access != Access::In && n.t[r]->buf && n.t[r]->buf->read_only())
      c.fail(std::string(c.name(int(r))) + " is written by this op but is a read-only view of a mapped file");
  }
  if (n.pos_slot >= 0) {
    if (!n.op->positional) c.fail("this op takes no sequence position (posSlot)");
    if (!positions_ || n.pos_slot >= positions_->numel()) c.fail("posSlot needs a graph positions tensor holding that slot");
    if (n.row0 < 0 || n.seq_rows < 1 || n.row0 + n.seq_rows > max_rows_) c.fail("row0 and seqRows must lie within maxRows");
  }
  n.op->validate(c);
}

Step Graph::step(size_t i, int64_t n, int64_t pos) const {
  const Node& node = nodes_[i];
  if (node.pos_slot < 0) return Step{node, ptrs_[i].data(), n, n, 0, pos};
  const int64_t rows = node.row0 >= n ? 0 : std::min(node.seq_rows, n - node.row0);
  return Step{node, ptrs_[i].data(), n, rows, node.row0, positions_->data<int32_t>()[node.pos_slot]};
}

void Graph::check_run(int64_t n, int64_t pos) const {
  if (n < 1 || n > max_rows_)
    throw Error("E_INVALID_ARG", "graph run: n must be 1.." + std::to_string(max_rows_) + ", got " + std::to_string(n));
  if (pos < 0) throw Error("E_INVALID_ARG", "graph run: pos must be >= 0");
  for (size_t i = 0; i < nodes_.size(); i++) {
    const Node& node = nodes_[i];
    if (!node.op->check_run) continue;
    const Step s = step(i, n, pos);
    if (s.rows > 0) node.op->check_run(node, s.rows, s.pos);
  }
}

CpuGraph::CpuGraph(std::vector<Node> nodes, std::shared_ptr<Pool> pool, Impl impl, int64_t max_rows, TensorPtr positions)
    : Graph(std::move(nodes), max_rows, std::move(positions)), pool_(std::move(pool)), impl_(impl) {
  if (!impl_supported(impl_)) throw Error("E_UNSUPPORTED", std::string("this CPU cannot run the ") + impl_name(impl_) + " kernels");
  for (size_t i = 0; i < nodes_.size(); i++) {
    const Node& n = nodes_[i];
    each_tensor(n, [&](const TensorPtr& t, int r) {
      if (!t->on_host())
        fail(n, i, std::string(n.op->roles[size_t(r)].name) + " is in " + device_name(t->device()) +
                       " memory; a CPU graph needs host tensors");
    });
    eval_.push_back(op_entry(*n.op).cpu);
  }
  bind([](const TensorPtr& t) { return t->buf->data; });
}

void CpuGraph::run(int64_t n, int64_t pos) {
  std::lock_guard<std::mutex> lock(pool_->run_mu);
  check_run(n, pos);
  const Exec e{&pool_->pool, impl_};
  for (size_t i = 0; i < nodes_.size(); i++) {
    const Step s = step(i, n, pos);
    if (s.rows > 0) eval_[i](s, e);
  }
}

}  // namespace fuselm
