#include "graph.h"

#include <algorithm>
#include <cmath>

namespace fuselm {

namespace {
const struct { const char* name; OpKind kind; } kOps[] = {
    {"add", OpKind::Add},           {"matmul", OpKind::Matmul},       {"rms_norm", OpKind::RmsNorm},
    {"rope", OpKind::Rope},         {"kv_store", OpKind::KvStore},    {"attention", OpKind::Attention},
    {"swiglu", OpKind::Swiglu},     {"embedding", OpKind::Embedding}, {"add_bias", OpKind::AddBias},
    {"layer_norm", OpKind::LayerNorm}, {"gelu", OpKind::Gelu},         {"transpose", OpKind::Transpose},
    {"argmax", OpKind::Argmax},
};

std::string where(const Node& n, size_t i) { return std::string("op #") + std::to_string(i) + " (" + op_name(n.kind) + ")"; }

[[noreturn]] void bad(const Node& n, size_t i, const std::string& what) {
  throw Error("E_INVALID_ARG", where(n, i) + ": " + what);
}

void need(const Node& n, size_t i, const TensorPtr& t, const char* role) {
  if (!t) bad(n, i, std::string("missing tensor '") + role + "'");
}
void need_f32(const Node& n, size_t i, const TensorPtr& t, const char* role) {
  need(n, i, t, role);
  if (t->dtype != DType::F32) bad(n, i, std::string(role) + " must be f32, got " + t->describe());
}
// A KV cache: f32, or with half_kv also f16/bf16.
void need_kv(const Node& n, size_t i, const TensorPtr& t, const char* role, bool half_kv) {
  need(n, i, t, role);
  const bool ok = t->dtype == DType::F32 || (half_kv && (t->dtype == DType::F16 || t->dtype == DType::BF16));
  if (!ok) bad(n, i, std::string(role) + (half_kv ? " must be f32, f16 or bf16, got " : " must be f32, got ") + t->describe());
}
void need_cols(const Node& n, size_t i, const TensorPtr& t, const char* role, int64_t cols) {
  if (t->cols() != cols)
    bad(n, i, std::string(role) + " must have " + std::to_string(cols) + " columns, got " + t->describe());
}
void need_rows(const Node& n, size_t i, const TensorPtr& t, const char* role, int64_t rows) {
  if (t->rows() < rows)
    bad(n, i, std::string(role) + " must hold at least " + std::to_string(rows) + " rows, got " + t->describe());
}
}  // namespace

const char* op_name(OpKind k) {
  for (const auto& o : kOps)
    if (o.kind == k) return o.name;
  return "?";
}

bool op_from_name(const std::string& name, OpKind* out) {
  for (const auto& o : kOps)
    if (name == o.name) { *out = o.kind; return true; }
  return false;
}

void Graph::fail(const Node& n, size_t i, const std::string& what) { bad(n, i, what); }

Graph::Graph(std::vector<Node> nodes, int64_t max_rows, TensorPtr positions, bool half_kv)
    : nodes_(std::move(nodes)), positions_(std::move(positions)), max_rows_(max_rows), half_kv_(half_kv) {
  if (positions_ && positions_->dtype != DType::I32) throw Error("E_INVALID_ARG", "graph positions must be i32, got " + positions_->describe());
  if (positions_ && !positions_->on_host()) throw Error("E_INVALID_ARG", "graph positions must be in host memory");
  if (max_rows_ < 1) throw Error("E_INVALID_ARG", "graph maxRows must be >= 1");
  for (size_t i = 0; i < nodes_.size(); i++) validate(nodes_[i], i);
}

CpuGraph::CpuGraph(std::vector<Node> nodes, std::shared_ptr<Pool> pool, Impl impl, int64_t max_rows, TensorPtr positions)
    : Graph(std::move(nodes), max_rows, std::move(positions), true), pool_(std::move(pool)), impl_(impl) {
  if (!impl_supported(impl_)) throw Error("E_UNSUPPORTED", std::string("this CPU cannot run the ") + impl_name(impl_) + " kernels");
  for (size_t i = 0; i < nodes_.size(); i++)
    each_tensor(nodes_[i], [&](const TensorPtr& t, const char* role) {
      if (!t->on_host())
        fail(nodes_[i], i, std::string(role) + " is in " + device_name(t->device()) + " memory; a CPU graph needs host tensors");
    });
}

Graph::Span Graph::span(const Node& node, int64_t n, int64_t pos) const {
  if (node.pos_slot < 0) return {n, pos, 0};
  const int64_t rows = node.row0 >= n ? 0 : std::min(node.seq_rows, n - node.row0);
  return {rows, positions_->data<int32_t>()[node.pos_slot], node.row0};
}

void Graph::validate(const Node& n, size_t i) const {
  const int64_t R = max_rows_;
  if (n.pos_slot >= 0) {
    if (n.kind != OpKind::Rope && n.kind != OpKind::KvStore && n.kind != OpKind::Attention)
      bad(n, i, "only rope, kv_store and attention take a sequence position (posSlot)");
    if (!positions_ || n.pos_slot >= positions_->numel()) bad(n, i, "posSlot needs a graph positions tensor holding that slot");
    if (n.row0 < 0 || n.seq_rows < 1 || n.row0 + n.seq_rows > R) bad(n, i, "row0 and seqRows must lie within maxRows");
  }
  switch (n.kind) {
    case OpKind::Add:
    case OpKind::Swiglu: {
      need_f32(n, i, n.out, "out"); need_f32(n, i, n.a, "a"); need_f32(n, i, n.b, "b");
      const int64_t D = n.out->cols();
      need_cols(n, i, n.a, "a", D); need_cols(n, i, n.b, "b", D);
      need_rows(n, i, n.out, "out", R); need_rows(n, i, n.a, "a", R); need_rows(n, i, n.b, "b", R);
      break;
    }
    case OpKind::Matmul: {
      need_f32(n, i, n.out, "out"); need_f32(n, i, n.a, "x"); need(n, i, n.b, "w");
      if (n.b->dtype == DType::I32) bad(n, i, "w must be f32, f16, bf16 or q8_0, got " + n.b->describe());
      need_cols(n, i, n.a, "x", n.b->cols());
      need_cols(n, i, n.out, "out", n.b->rows());
      need_rows(n, i, n.a, "x", R);
      need_rows(n, i, n.out, "out", n.last_row ? 1 : R);
      break;
    }
    case OpKind::RmsNorm: {
      need_f32(n, i, n.out, "out"); need_f32(n, i, n.a, "x"); need_f32(n, i, n.b, "w");
      const int64_t D = n.a->cols();
      need_cols(n, i, n.out, "out", D);
      if (n.b->numel() != D) bad(n, i, "w must hold " + std::to_string(D) + " values, got " + n.b->describe());
      need_rows(n, i, n.out, "out", R); need_rows(n, i, n.a, "x", R);
      if (!(n.eps >= 0)) bad(n, i, "eps must be >= 0");
      break;
    }
    case OpKind::Rope: {
      need_f32(n, i, n.out, "x");
      if (n.n_heads < 1 || n.head_dim < 1) bad(n, i, "nHeads and headDim must be >= 1");
      need_cols(n, i, n.out, "x", n.n_heads * n.head_dim);
      need_rows(n, i, n.out, "x", R);
      if (n.n_rot < 2 || n.n_rot % 2 || n.n_rot > n.head_dim || n.n_rot > 1024)
        bad(n, i, "nRot must be even, 2..min(headDim, 1024), got " + std::to_string(n.n_rot));
      if (!(n.theta_base > 0) || !(n.freq_scale > 0)) bad(n, i, "thetaBase and freqScale must be > 0");
      break;
    }
    case OpKind::KvStore: {
      need_kv(n, i, n.out, "cache", half_kv_); need_f32(n, i, n.a, "src");
      need_cols(n, i, n.a, "src", n.out->cols());
      need_rows(n, i, n.a, "src", R);
      break;
    }
    case OpKind::Attention: {
      need_f32(n, i, n.out, "out"); need_f32(n, i, n.a, "q"); need_kv(n, i, n.b, "kCache", half_kv_); need_kv(n, i, n.c, "vCache", half_kv_);
      if (n.b->dtype != n.c->dtype) bad(n, i, "kCache and vCache must have the same dtype");
      if (n.n_heads < 1 || n.n_kv_heads < 1 || n.n_heads % n.n_kv_heads)
        bad(n, i, "nHeads must be a positive multiple of nKvHeads");
      if (n.head_dim < 1 || n.head_dim > 1024) bad(n, i, "headDim must be 1..1024");
      need_cols(n, i, n.a, "q", n.n_heads * n.head_dim);
      need_cols(n, i, n.out, "out", n.n_heads * n.head_dim);
      need_cols(n, i, n.b, "kCache", n.n_kv_heads * n.head_dim);
      need_cols(n, i, n.c, "vCache", n.n_kv_heads * n.head_dim);
      if (n.b->rows() != n.c->rows()) bad(n, i, "kCache and vCache must have the same number of rows");
      need_rows(n, i, n.a, "q", R); need_rows(n, i, n.out, "out", R);
      if (!std::isfinite(n.scale)) bad(n, i, "scale must be finite");
      if (n.window < 0) bad(n, i, "window must be >= 0");
      if (n.window > 0 && !n.causal) bad(n, i, "a sliding window needs causal attention");
      if (n.prefix_len < 0) bad(n, i, "prefixLen must be >= 0");
      if (n.prefix_len > 0 || n.k_prefix || n.v_prefix) {
        need_kv(n, i, n.k_prefix, "kPrefix", half_kv_); need_kv(n, i, n.v_prefix, "vPrefix", half_kv_);
        if (n.k_prefix->dtype != n.b->dtype || n.v_prefix->dtype != n.b->dtype)
          bad(n, i, "kPrefix and vPrefix must have the caches' dtype (" + std::string(dtype_name(n.b->dtype)) + ")");
        need_cols(n, i, n.k_prefix, "kPrefix", n.n_kv_heads * n.head_dim);
        need_cols(n, i, n.v_prefix, "vPrefix", n.n_kv_heads * n.head_dim);
        if (n.k_prefix->rows() < n.prefix_len || n.v_prefix->rows() < n.prefix_len)
          bad(n, i, "kPrefix and vPrefix must hold prefixLen (" + std::to_string(n.prefix_len) + ") rows");
      }
      break;
    }
    case OpKind::AddBias: {
      need_f32(n, i, n.out, "out"); need_f32(n, i, n.a, "x"); need_f32(n, i, n.b, "bias");
      const int64_t D = n.a->cols();
      need_cols(n, i, n.out, "out", D);
      if (n.b->numel() != D) bad(n, i, "bias must hold " + std::to_string(D) + " values, got " + n.b->describe());
      need_rows(n, i, n.out, "out", R); need_rows(n, i, n.a, "x", R);
      break;
    }
    case OpKind::LayerNorm: {
      need_f32(n, i, n.out, "out"); need_f32(n, i, n.a, "x"); need_f32(n, i, n.b, "w"); need_f32(n, i, n.c, "bias");
      const int64_t D = n.a->cols();
      need_cols(n, i, n.out, "out", D);
      if (n.b->numel() != D) bad(n, i, "w must hold " + std::to_string(D) + " values, got " + n.b->describe());
      if (n.c->numel() != D) bad(n, i, "bias must hold " + std::to_string(D) + " values, got " + n.c->describe());
      need_rows(n, i, n.out, "out", R); need_rows(n, i, n.a, "x", R);
      if (!(n.eps >= 0)) bad(n, i, "eps must be >= 0");
      break;
    }
    case OpKind::Gelu: {
      need_f32(n, i, n.out, "out"); need_f32(n, i, n.a, "x");
      need_cols(n, i, n.out, "out", n.a->cols());
      need_rows(n, i, n.out, "out", R); need_rows(n, i, n.a, "x", R);
      break;
    }
    case OpKind::Transpose: {
      need(n, i, n.out, "out"); need(n, i, n.a, "x");
      if (n.a->dtype != DType::F32 && n.a->dtype != DType::F16 && n.a->dtype != DType::BF16)
        bad(n, i, "x must be f32, f16 or bf16, got " + n.a->describe());
      if (n.out->dtype != n.a->dtype) bad(n, i, "out must have x's dtype, got " + n.out->describe());
      if (n.a->shape.size() != 2 || n.out->shape.size() != 2 || n.out->shape[1] != n.a->shape[0] || n.col0 < 0 ||
          n.col0 + n.out->shape[0] > n.a->shape[1])
        bad(n, i, "out must be the transpose of x's columns col0 .. col0 + out rows: x " + n.a->describe() + ", out " +
                      n.out->describe() + ", col0 " + std::to_string(n.col0));
      if (n.out.get() == n.a.get()) bad(n, i, "out must not alias x");
      break;
    }
    case OpKind::Argmax: {
      need(n, i, n.out, "ids"); need_f32(n, i, n.a, "x");
      if (n.out->dtype != DType::I32) bad(n, i, "ids must be i32, got " + n.out->describe());
      if (n.out->numel() < std::min(R, n.a->rows()))
        bad(n, i, "ids must hold a value per row of x that a run covers (" + std::to_string(std::min(R, n.a->rows())) + ")");
      break;
    }
    case OpKind::Embedding: {
      need_f32(n, i, n.out, "out"); need(n, i, n.a, "table"); need(n, i, n.b, "ids");
      if (n.a->dtype == DType::I32) bad(n, i, "table must be f32, f16, bf16 or q8_0, got " + n.a->describe());
      if (n.b->dtype != DType::I32) bad(n, i, "ids must be i32, got " + n.b->describe());
      need_cols(n, i, n.out, "out", n.a->cols());
      need_rows(n, i, n.out, "out", R);
      if (n.b->numel() < R) bad(n, i, "ids must hold at least " + std::to_string(R) + " values");
      break;
    }
  }
}

void Graph::check_run(int64_t n, int64_t pos) const {
  if (n < 1 || n > max_rows_)
    throw Error("E_INVALID_ARG", "graph run: n must be 1.." + std::to_string(max_rows_) + ", got " + std::to_string(n));
  if (pos < 0) throw Error("E_INVALID_ARG", "graph run: pos must be >= 0");
  for (size_t i = 0; i < nodes_.size(); i++) {
    const Node& node = nodes_[i];
    if (node.kind == OpKind::KvStore || node.kind == OpKind::Attention) {
      const int64_t ctx = node.kind == OpKind::KvStore ? node.out->rows() : node.b->rows();
      const Span s = span(node, n, pos);
      if (s.rows == 0) continue;
      if (s.pos < 0) throw Error("E_INVALID_ARG", "graph run: sequence position must be >= 0, got " + std::to_string(s.pos));
      if (s.pos + s.rows > ctx)
        throw Error("E_CONTEXT_FULL", "context full: positions " + std::to_string(s.pos) + ".." +
                                          std::to_string(s.pos + s.rows - 1) + " do not fit a KV cache of " +
                                          std::to_string(ctx) + " positions");
    } else if (node.kind == OpKind::Embedding) {
      const int32_t* ids = node.b->data<int32_t>();
      const int64_t V = node.a->rows();
      for (int64_t t = 0; t < n; t++)
        if (ids[t] < 0 || ids[t] >= V)
          throw Error("E_INVALID_ARG", "token id " + std::to_string(ids[t]) + " at position " + std::to_string(t) +
                                           " is outside the vocabulary (0.." + std::to_string(V - 1) + ")");
    }
  }
}

void CpuGraph::run(int64_t n, int64_t pos) {
  std::lock_guard<std::mutex> lock(pool_->run_mu);
  check_run(n, pos);
  const Exec e{&pool_->pool, impl_};
  for (const Node& node : nodes_) {
    switch (node.kind) {
      case OpKind::Add:
        add_cpu({node.out->data<float>(), node.a->data<float>(), node.b->data<float>(), n, node.out->cols()}, e);
        break;
      case OpKind::Swiglu:
        swiglu_cpu({node.out->data<float>(), node.a->data<float>(), node.b->data<float>(), n, node.out->cols()}, e);
        break;
      case OpKind::Matmul: {
        const int64_t K = node.a->cols();
        const float* x = node.a->data<float>() + (node.last_row ? (n - 1) * K : 0);
        matmul_cpu({node.out->data<float>(), x, node.b->buf->data, node.b->dtype, node.last_row ? 1 : n, K,
                    node.b->rows()},
                   e);
        break;
      }
      case OpKind::RmsNorm:
        rms_norm_cpu({node.out->data<float>(), node.a->data<float>(), node.b->data<float>(), n, node.a->cols(), node.eps}, e);
        break;
      case OpKind::Rope: {
        const Span s = span(node, n, pos);
        if (s.rows == 0) break;
        rope_cpu({node.out->data<float>() + s.row0 * node.out->cols(), s.rows, node.n_heads, node.head_dim, node.n_rot, s.pos,
                  node.theta_base, node.freq_scale, node.neox},
                 e);
        break;
      }
      case OpKind::KvStore: {
        const Span s = span(node, n, pos);
        if (s.rows == 0) break;
        kv_store_cpu({node.out->buf->data, node.out->dtype, node.a->data<float>() + s.row0 * node.a->cols(), s.rows,
                      node.out->cols(), s.pos},
                     e);
        break;
      }
      case OpKind::Attention: {
        const Span s = span(node, n, pos);
        if (s.rows == 0) break;
        attention_cpu({node.out->data<float>() + s.row0 * node.out->cols(), node.a->data<float>() + s.row0 * node.a->cols(),
                       node.b->buf->data, node.c->buf->data, node.b->dtype, s.rows, node.n_heads, node.n_kv_heads,
                       node.head_dim, s.pos, node.scale, node.window, node.causal, nullptr, 0,
                       node.k_prefix ? node.k_prefix->buf->data : nullptr, node.v_prefix ? node.v_prefix->buf->data : nullptr,
                       node.prefix_len},
                      e);
        break;
      }
      case OpKind::AddBias:
        add_bias_cpu({node.out->data<float>(), node.a->data<float>(), node.b->data<float>(), n, node.a->cols()}, e);
        break;
      case OpKind::LayerNorm:
        layer_norm_cpu({node.out->data<float>(), node.a->data<float>(), node.b->data<float>(), node.c->data<float>(), n,
                        node.a->cols(), node.eps},
                       e);
        break;
      case OpKind::Gelu:
        gelu_cpu({node.out->data<float>(), node.a->data<float>(), n * node.a->cols(), node.tanh_approx}, e);
        break;
      case OpKind::Transpose:
        transpose_cpu({node.out->buf->data, node.a->buf->data, node.a->shape[0], node.a->shape[1], node.col0, node.out->shape[0],
                       node.a->dtype == DType::F32 ? 4 : 2},
                      e);
        break;
      case OpKind::Argmax:
        argmax_cpu({node.out->data<int32_t>(), node.a->data<float>(), std::min(n, node.a->rows()), node.a->cols()}, e);
        break;
      case OpKind::Embedding:
        embedding_cpu({node.out->data<float>(), node.a->buf->data, node.a->dtype, node.b->data<int32_t>(), n,
                       node.a->rows(), node.a->cols()},
                      e);
        break;
    }
  }
}

}  // namespace fuselm
