// The CUDA backend's graph: the op list of a forward step (native/graph.h, validated there)
// run as kernel launches on one stream, with one synchronization per step.
// - Weights, activations and KV caches are device tensors; the token ids (and positions for
//   learned position tables) stay in host memory and are copied in at the start of a run, and
//   the logits (or, greedy, only the argmax ids) are computed into a device mirror of their
//   host tensor and copied out at its end.
// - Fusions of adjacent ops: a residual add followed by the norm of its sum (x = x + r;
//   y = norm(x)) runs as one add_norm kernel; the keys' rope followed by their store in the KV
//   cache as one rope_kv_store (when nothing reads the rotated keys later).
// - Matmuls and attention share one workspace (quantized activations, split-KV partials), sized
//   for the graph's largest op at max_rows.
// - KV caches may be f16 or bf16: kv_store rounds the new keys and values as it writes them.
#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "cuda_backend.h"
#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

namespace {

#if defined(__CUDACC__)
constexpr Device kDevice = Device::Cuda;
#else
constexpr Device kDevice = Device::CudaEmulated;
#endif

// Device bytes allocated through kMemory and not yet released (tests check dispose frees all).
std::mutex g_mem_mu;
std::unordered_map<void*, size_t> g_mem_sizes;
int64_t g_mem_in_use = 0;

void count_alloc(void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mem_mu);
  g_mem_sizes[p] = bytes;
  g_mem_in_use += int64_t(bytes);
}

int64_t mem_in_use() {
  std::lock_guard<std::mutex> lock(g_mem_mu);
  return g_mem_in_use;
}

void* mem_alloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw Error("E_OUT_OF_MEMORY", std::string("out of CUDA memory allocating ") + std::to_string(bytes) +
                                       " bytes (" + cudaGetErrorName(err) + ")");
  }
  const cudaError_t set = cudaMemset(p, 0, bytes);
  if (set != cudaSuccess) {
    cudaFree(p);
    cuda_check(set, "cudaMemset", __FILE__, __LINE__);
  }
  count_alloc(p, bytes);
  return p;
}
void mem_release(void* p) {
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    auto it = g_mem_sizes.find(p);
    if (it != g_mem_sizes.end()) {
      g_mem_in_use -= int64_t(it->second);
      g_mem_sizes.erase(it);
    }
  }
  cudaFree(p);  // from destructors: nothing to report to
}
void mem_to_host(void* dst, const void* src, size_t n) { CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost)); }
void mem_from_host(void* dst, const void* src, size_t n) { CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice)); }

const DeviceMemory kMemory{kDevice, &mem_alloc, &mem_release, &mem_to_host, &mem_from_host};

// The bytes of the first n entries along a tensor's outermost dimension (ids [B]: n ids;
// logits [B, V]: n rows).
size_t leading_bytes(const Tensor& t, int64_t n) {
  return t.nbytes() / size_t(t.shape[0]) * size_t(std::min<int64_t>(n, t.shape[0]));
}

bool is_norm(const Node& n) { return n.kind == OpKind::RmsNorm || n.kind == OpKind::LayerNorm; }

class CudaGraph : public Graph {
 public:
  CudaGraph(std::vector<Node> nodes, int64_t max_rows, TensorPtr positions)
      : Graph(std::move(nodes), max_rows, std::move(positions), true) {
    place_tensors();
    size_workspace();
    fuse_.assign(nodes_.size(), Fused::None);
    for (size_t i = 0; i + 1 < nodes_.size(); i++) {
      const Node &n0 = nodes_[i], &n1 = nodes_[i + 1];
      // x = x + r then y = norm(x), y not x: one add_norm launch
      if (n0.kind == OpKind::Add && n0.out == n0.a && n0.out != n0.b && is_norm(n1) && n1.a == n0.out && n1.out != n0.out)
        fuse_[i] = Fused::AddNorm;
      // rope(k) then kv_store(cache, k) of the same rows, the rotated k read by nothing later:
      // one rope_kv_store launch that rotates as it stores
      else if (n0.kind == OpKind::Rope && n1.kind == OpKind::KvStore && n1.a == n0.out && n0.row0 == n1.row0 &&
               n0.seq_rows == n1.seq_rows && n0.pos_slot == n1.pos_slot && !read_after(i + 1, n0.out))
        fuse_[i] = Fused::RopeStore;
    }
    CUDA_CHECK(cudaStreamCreate(&stream_));
  }
  ~CudaGraph() override { cudaStreamDestroy(stream_); }

  void run(int64_t n, int64_t pos) override {
    std::lock_guard<std::mutex> lock(mu_);
    check_run(n, pos);
    for (const auto& in : inputs_)
      CUDA_CHECK(cudaMemcpyAsync(in.second->buf->data, in.first->buf->data, leading_bytes(*in.first, n), cudaMemcpyHostToDevice, stream_));
    for (size_t i = 0; i < nodes_.size(); i++) {
      switch (fuse_[i]) {
        case Fused::AddNorm: launch_add_norm(nodes_[i], nodes_[i + 1], n); i++; break;
        case Fused::RopeStore: launch_rope_store(nodes_[i], nodes_[i + 1], n, pos); i++; break;
        case Fused::None: launch(nodes_[i], n, pos); break;
      }
    }
    for (const auto& out : outputs_) {
      const Tensor& host = *out.first;
      CUDA_CHECK(cudaMemcpyAsync(host.buf->data, out.second->buf->data, leading_bytes(host, out_rows_.at(&host) == 1 ? 1 : n),
                                 cudaMemcpyDeviceToHost, stream_));
    }
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  // Device tensors must be this flavor's; host tensors get device mirrors in their two roles.
  void place_tensors() {
    std::unordered_set<const Tensor*> read;  // every tensor some node reads
    for (const Node& n : nodes_) {
      for (const TensorPtr& t : {n.a, n.b, n.c})
        if (t) read.insert(t.get());
      if (n.kind == OpKind::Rope) read.insert(n.out.get());  // in place
    }
    for (size_t i = 0; i < nodes_.size(); i++) {
      const Node& n = nodes_[i];
      if (n.kind == OpKind::Transpose) fail(n, i, "transpose is a load-time op of the CPU backend");
      each_tensor(n, [&](const TensorPtr& t, const char* role) {
        if (!t->on_host()) {
          if (t->device() != kDevice)
            fail(n, i, std::string(role) + " is in " + device_name(t->device()) + " memory, not " + device_name(kDevice));
          return;
        }
        const bool ids = n.kind == OpKind::Embedding && t == n.b;
        const bool logits = (n.kind == OpKind::Matmul || n.kind == OpKind::Argmax) && t == n.out && !read.count(t.get());
        if (!ids && !logits)
          fail(n, i, std::string(role) + " " + t->describe() +
                         " is in host memory; a CUDA graph takes host tensors only as embedding ids and as matmul or argmax outputs no op reads");
        auto& mirrors = ids ? inputs_ : outputs_;
        if (!mirrors.count(t.get())) mirrors.emplace(t.get(), Tensor::make_on(kMemory, t->dtype, t->shape));
        if (logits) {
          const bool one_row = n.kind == OpKind::Matmul ? n.last_row : n.a->rows() == 1;
          auto it = out_rows_.find(t.get());
          // several ops into one host tensor: copy out the most rows any of them writes
          out_rows_[t.get()] = it == out_rows_.end() ? (one_row ? 1 : 0) : (one_row ? it->second : 0);
        }
      });
    }
  }

  void size_workspace() {
    size_t bytes = 0;
    for (const Node& n : nodes_) {
      if (n.kind == OpKind::Matmul)
        bytes = std::max(bytes, matmul_cuda_workspace(n.b->dtype, max_rows_, n.a->cols()));
      else if (n.kind == OpKind::Attention)
        bytes = std::max(bytes, attention_cuda_workspace(max_rows_, n.b->rows() + n.prefix_len, n.n_heads, n.head_dim));
    }
    if (bytes) workspace_ = Tensor::make_on(kMemory, DType::F32, {int64_t((bytes + 3) / 4)});
  }

  template <class T = float> T* dev(const TensorPtr& t) const {
    if (t->on_host()) {
      auto in = inputs_.find(t.get());
      return static_cast<T*>((in != inputs_.end() ? in->second : outputs_.at(t.get()))->buf->data);
    }
    return static_cast<T*>(t->buf->data);
  }

  // Whether a node after `i` reads t before one overwrites it whole (a matmul's or norm's output).
  bool read_after(size_t i, const TensorPtr& t) const {
    for (size_t j = i + 1; j < nodes_.size(); j++) {
      const Node& n = nodes_[j];
      if (n.a == t || n.b == t || n.c == t || (n.kind == OpKind::Rope && n.out == t)) return true;
      if (n.out == t && (n.kind == OpKind::Matmul || is_norm(n))) return false;
    }
    return false;
  }

  void launch_rope_store(const Node& rope, const Node& store, int64_t n, int64_t pos) {
    const Span s = span(rope, n, pos);
    if (s.rows == 0) return;
    rope_kv_store_cuda({dev<void>(store.out), store.out->dtype, dev(rope.out) + s.row0 * rope.out->cols(), s.rows, rope.n_heads,
                        rope.head_dim, rope.n_rot, s.pos, rope.theta_base, rope.freq_scale, rope.neox},
                       stream_);
  }

  void launch_add_norm(const Node& add, const Node& norm, int64_t n) {
    const bool layer = norm.kind == OpKind::LayerNorm;
    add_norm_cuda({dev(norm.out), dev(add.out), dev(add.b), dev(norm.b), layer ? dev(norm.c) : nullptr, n, norm.a->cols(), norm.eps},
                  stream_);
  }

  void launch(const Node& node, int64_t n, int64_t pos) {
    const int64_t cols = node.out ? node.out->cols() : 0;
    void* ws = workspace_ ? workspace_->buf->data : nullptr;
    switch (node.kind) {
      case OpKind::Add: add_cuda({dev(node.out), dev(node.a), dev(node.b), n, cols}, stream_); break;
      case OpKind::Swiglu: swiglu_cuda({dev(node.out), dev(node.a), dev(node.b), n, cols}, stream_); break;
      case OpKind::Matmul: {
        const int64_t K = node.a->cols();
        const float* x = dev(node.a) + (node.last_row ? (n - 1) * K : 0);
        matmul_cuda({dev(node.out), x, dev<void>(node.b), node.b->dtype, node.last_row ? 1 : n, K, node.b->rows()}, ws, stream_);
        break;
      }
      case OpKind::RmsNorm: rms_norm_cuda({dev(node.out), dev(node.a), dev(node.b), n, node.a->cols(), node.eps}, stream_); break;
      case OpKind::Rope: {
        const Span s = span(node, n, pos);
        if (s.rows == 0) break;
        rope_cuda({dev(node.out) + s.row0 * cols, s.rows, node.n_heads, node.head_dim, node.n_rot, s.pos, node.theta_base,
                   node.freq_scale, node.neox},
                  stream_);
        break;
      }
      case OpKind::KvStore: {
        const Span s = span(node, n, pos);
        if (s.rows == 0) break;
        kv_store_cuda({dev<void>(node.out), node.out->dtype, dev(node.a) + s.row0 * node.a->cols(), s.rows, cols, s.pos}, stream_);
        break;
      }
      case OpKind::Attention: {
        const Span s = span(node, n, pos);
        if (s.rows == 0) break;
        AttentionArgs a{dev(node.out) + s.row0 * cols, dev(node.a) + s.row0 * node.a->cols(), dev<void>(node.b),
                            dev<void>(node.c), node.b->dtype, s.rows, node.n_heads, node.n_kv_heads, node.head_dim, s.pos,
                            node.scale, node.window, node.causal, ws, workspace_ ? workspace_->nbytes() : 0,
                            node.k_prefix ? dev<void>(node.k_prefix) : nullptr,
                            node.v_prefix ? dev<void>(node.v_prefix) : nullptr, node.prefix_len};
        attention_cuda(a, stream_);
        break;
      }
      case OpKind::AddBias: add_bias_cuda({dev(node.out), dev(node.a), dev(node.b), n, node.a->cols()}, stream_); break;
      case OpKind::LayerNorm:
        layer_norm_cuda({dev(node.out), dev(node.a), dev(node.b), dev(node.c), n, node.a->cols(), node.eps}, stream_);
        break;
      case OpKind::Gelu: gelu_cuda({dev(node.out), dev(node.a), n * node.a->cols(), node.tanh_approx}, stream_); break;
      case OpKind::Embedding:
        embedding_cuda({dev(node.out), dev<void>(node.a), node.a->dtype, dev<int32_t>(node.b), n, node.a->rows(), node.a->cols()},
                       stream_);
        break;
      case OpKind::Argmax:
        argmax_cuda({dev<int32_t>(node.out), dev(node.a), std::min(n, node.a->rows()), node.a->cols()}, stream_);
        break;
      case OpKind::Transpose: break;  // rejected when the graph is built
    }
  }

  std::mutex mu_;
  cudaStream_t stream_ = nullptr;
  enum class Fused : uint8_t { None, AddNorm, RopeStore };
  std::vector<Fused> fuse_;  // node i and i + 1 run as one launch
  std::unordered_map<const Tensor*, TensorPtr> inputs_, outputs_;  // host tensor -> device mirror
  std::unordered_map<const Tensor*, int64_t> out_rows_;             // 1: only row 0 written; 0: n rows
  TensorPtr workspace_;
};

std::shared_ptr<Graph> make_graph(std::vector<Node> nodes, int64_t max_rows, TensorPtr positions) {
  return std::make_shared<CudaGraph>(std::move(nodes), max_rows, std::move(positions));
}

const CudaBackend kBackend{&kMemory, &make_graph, &mem_in_use};

}  // namespace

FUSELM_CUDA_NAMESPACE_END

namespace fuselm {
#if defined(__CUDACC__)
const CudaBackend& cuda_backend_gpu() { return gpu::kBackend; }
#else
const CudaBackend& cuda_backend_emulated() { return emulated::kBackend; }
#endif
}  // namespace fuselm
