// The CUDA backend's graph: the op list of a forward step (native/graph.h, validated there
// against the op table) run as kernel launches on one stream, with one synchronization per
// step. Each node runs by its op's CUDA implementation, registered by cuda/<op>.cu
// (FUSELM_CUDA_OP); an op without one (OpDef::no_cuda says why) is refused when the graph is
// built.
// - Weights, activations and KV caches are device tensors; the token ids (and positions for
//   learned position tables) stay in host memory and are copied in at the start of a run, and
//   the logits (or, greedy, only the argmax ids) are computed into a device mirror of their
//   host tensor and copied out at its end (the roles the op table marks `host`). Both copies go
//   through page-locked staging buffers of the graph's own (cudaMallocHost), so they are DMA
//   on the stream rather than the driver's staged copies from pageable memory.
// - Fusions of adjacent ops, as pattern rewrites over the op list: a residual add followed by the norm of its sum (x = x + r;
//   y = norm(x)) runs as one add_norm kernel (in decode also writing y quantized to int8 for
//   the matmul right after it, which then skips quantizing y); the keys' rope followed by their store in the KV
//   cache as one rope_kv_store (when nothing reads the rotated keys later); two or three matmuls
//   on the same x (q, k, v; gate, up) as one launch of the dp4a GEMV when the step has few rows
//   and the weights are in a block format (matmul_group_cuda; else one by one); gate and up
//   followed by SwiGLU of the two as one launch writing only the SwiGLU (matmul_swiglu_cuda),
//   when nothing reads gate's or up's own output later.
// - Matmuls and attention share one workspace (quantized activations, split-KV partials), sized
//   for the graph's largest op at max_rows. Split-KV attention's arrival counters are a buffer of
//   their own, zeroed once: each launch leaves them zero.
// - KV caches may be f16 or bf16: kv_store rounds the new keys and values as it writes them.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "cuda_backend.h"
#include "ops.h"
#include "ops/add.h"
#include "ops/layer_norm.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"

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

// The device's free and total bytes, for the memory plan made before a model is loaded. Free is
// at most what this backend does not hold (the emulator reports its whole device as free).
void mem_info(size_t* free, size_t* total) {
  CUDA_CHECK(cudaMemGetInfo(free, total));
  const size_t held = size_t(mem_in_use());
  *free = std::min(*free, *total > held ? *total - held : 0);
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
// logits [B, V]: n rows). A host input not indexed by the run's rows (a block table, lora's
// segments) is marked RoleDef::whole and copied whole instead.
size_t leading_bytes(const Tensor& t, int64_t n) {
  return t.nbytes() / size_t(t.shape[0]) * size_t(std::min<int64_t>(n, t.shape[0]));
}

std::vector<CudaOp>& registry() {
  static std::vector<CudaOp> ops;
  return ops;
}

// (a grouped rms_norm, the per-head q/k norm, is not: add_norm normalizes whole rows)
bool is_norm(const Node& n) {
  return (n.op == &rms_norm_op::def && n.i(rms_norm_op::group_size) == 0) || n.op == &layer_norm_op::def;
}
// A norm's input and output (the same role indices in rms_norm and layer_norm).
static_assert(int(rms_norm_op::x) == int(layer_norm_op::x) && int(rms_norm_op::out) == int(layer_norm_op::out) &&
                  int(rms_norm_op::weight) == int(layer_norm_op::weight) && int(rms_norm_op::eps) == int(layer_norm_op::eps),
              "add_norm reads both norms by the same role and parameter indices");

// Whether matmul b can join the launch of matmul a: the same x and weight type, whole-batch
// rows, and no output that is x or the other's.
bool same_x_matmuls(const Node& a, const Node& b) {
  using namespace matmul_op;
  return a.op == &def && b.op == &def && a.t[x] == b.t[x] && !a.i(last_rows) && !b.i(last_rows) &&
         a.t[w]->dtype == b.t[w]->dtype && gemv_quant_supports(a.t[w]->dtype) && a.t[out] != a.t[x] &&
         b.t[out] != b.t[x] && a.t[out] != b.t[out] && a.pos_slot == b.pos_slot && a.row0 == b.row0 &&
         a.seq_rows == b.seq_rows;
}

bool reads(const Node& n, const TensorPtr& t) {
  for (size_t r = 0; r < n.op->roles.size(); r++)
    if (n.t[r] == t && (n.op->roles[r].access == Access::In || n.op->roles[r].access == Access::InOut)) return true;
  return false;
}

class CudaGraph : public Graph {
 public:
  CudaGraph(std::vector<Node> nodes, int64_t max_rows, TensorPtr positions) : Graph(std::move(nodes), max_rows, std::move(positions)) {
    for (size_t i = 0; i < nodes_.size(); i++) {
      const CudaOp* op = find_cuda_op(*nodes_[i].op);
      if (!op)
        throw Error("E_UNSUPPORTED", "op #" + std::to_string(i) + " (" + nodes_[i].op->name + ") has no CUDA implementation" +
                                         (nodes_[i].op->no_cuda ? std::string(": ") + nodes_[i].op->no_cuda : std::string()));
      ops_.push_back(op);
    }
    place_tensors();
    size_workspace();
    // Data checks (OpDef::check_run) run on the host before each step; a node whose checked
    // input lives in device memory (token ids already there) is checked by its kernel instead,
    // through the error word: only such graphs pay for clearing and reading it each step.
    for (const Node& n : nodes_) {
      if (!n.op->check_run) continue;
      for (size_t r = 0; r < n.op->roles.size(); r++)
        if (n.op->roles[r].host && n.op->roles[r].access == Access::In && n.t[r] && !n.t[r]->on_host())
          if (!error_) error_ = Tensor::make_on(kMemory, DType::I32, {2});
    }
    bind([this](const TensorPtr& t) { return dev<void>(t); });
    fuse_.assign(nodes_.size(), Fused::None);
    for (size_t i = 0; i + 1 < nodes_.size(); i++) {
      const Node &n0 = nodes_[i], &n1 = nodes_[i + 1];
      // gate, up and swiglu(gate, up): one launch in decode
      if (i + 2 < nodes_.size() && same_x_matmuls(n0, n1) && matmul_swiglu(n0, n1, nodes_[i + 2], i + 2)) {
        fuse_[i] = Fused::MatmulSwiglu;
        i += 2;
      }
      // matmuls on the same x: one launch in decode (the third must differ from both outputs)
      else if (same_x_matmuls(n0, n1)) {
        const bool third = i + 2 < nodes_.size() && same_x_matmuls(n0, nodes_[i + 2]) &&
                           nodes_[i + 2].t[matmul_op::out] != n1.t[matmul_op::out];
        fuse_[i] = third ? Fused::Matmul3 : Fused::Matmul2;
        i += third ? 2 : 1;
      }
      // x = x + r then y = norm(x), y not x: one add_norm launch
      else if (n0.op == &add_op::def && n0.t[add_op::out] == n0.t[add_op::a] && n0.t[add_op::out] != n0.t[add_op::b] &&
          is_norm(n1) && n1.t[rms_norm_op::x] == n0.t[add_op::out] && n1.t[rms_norm_op::out] != n0.t[add_op::out]) {
        // ... quantizing y for the matmul right after it, where that one reads y whole
        const Node* m = i + 2 < nodes_.size() ? &nodes_[i + 2] : nullptr;
        const bool quant = m && m->op == &matmul_op::def && m->t[matmul_op::x] == n1.t[rms_norm_op::out] &&
                           !m->i(matmul_op::last_rows) && gemv_quant_supports(m->t[matmul_op::w]->dtype) &&
                           n1.t[rms_norm_op::x]->cols() % kQ8Block == 0;
        fuse_[i] = quant ? Fused::AddNormQuant : Fused::AddNorm;
      }
      // rope(k) then kv_store(cache, k) of the same rows, the rotated k read by nothing later:
      // one rope_kv_store launch that rotates as it stores (into a contiguous cache)
      else if (n0.op == &rope_op::def && n1.op == &kv_store_op::def && n1.t[kv_store_op::src] == n0.t[rope_op::x] &&
               !n1.t[kv_store_op::block_table] &&
               n0.row0 == n1.row0 && n0.seq_rows == n1.seq_rows && n0.pos_slot == n1.pos_slot &&
               !read_after(i + 1, n0.t[rope_op::x]))
        fuse_[i] = Fused::RopeStore;
    }
    CUDA_CHECK(cudaStreamCreate(&stream_));
  }
  ~CudaGraph() override { cudaStreamDestroy(stream_); }

  void run(int64_t n, int64_t pos) override {
    std::lock_guard<std::mutex> lock(mu_);
    check_run(n, pos);
    for (const auto& in : inputs_) {
      const size_t bytes = whole_.count(in.first) ? in.first->nbytes() : leading_bytes(*in.first, n);
      void* pinned = staging_.at(in.first).p;
      std::memcpy(pinned, in.first->buf->data, bytes);
      CUDA_CHECK(cudaMemcpyAsync(in.second->buf->data, pinned, bytes, cudaMemcpyHostToDevice, stream_));
    }
    int32_t* err = error_ ? error_->data<int32_t>() : nullptr;
    if (err) CUDA_CHECK(cudaMemsetAsync(err, 0, 2 * sizeof(int32_t), stream_));
    QuantizedX qx;  // what the workspace holds, from the matmul just before (cuda_op.h)
    const CudaExec x{stream_, workspace_ ? workspace_->buf->data : nullptr, workspace_ ? workspace_->nbytes() : 0, err, &qx,
                     counters_ ? counters_->data<uint32_t>() : nullptr, counters_ ? counters_->numel() : 0};
    for (size_t i = 0; i < nodes_.size(); i++) {
      const bool matmuls = nodes_[i].op == &matmul_op::def;
      if (!matmuls) qx = QuantizedX{};
      switch (fuse_[i]) {
        case Fused::Matmul2: run_matmuls(i, 2, n, pos, x); i += 1; break;
        case Fused::Matmul3: run_matmuls(i, 3, n, pos, x); i += 2; break;
        case Fused::MatmulSwiglu: run_matmul_swiglu(i, n, pos, x); i += 2; break;
        case Fused::AddNorm: launch_add_norm(nodes_[i], nodes_[i + 1], n, nullptr); i++; break;
        case Fused::AddNormQuant: {
          // in decode, y quantized as the next matmul would (QuantizedX: it skips that launch)
          const Node& norm = nodes_[i + 1];
          const bool quant = matmul_gemv_takes_quantized_x(nodes_[i + 2].t[matmul_op::w]->dtype, n);
          launch_add_norm(nodes_[i], norm, n, quant ? x.workspace : nullptr);
          if (quant) qx = QuantizedX{dev(norm.t[rms_norm_op::out]), n, norm.t[rms_norm_op::x]->cols()};
          i++;
          break;
        }
        case Fused::RopeStore: launch_rope_store(step(i, n, pos), nodes_[i + 1]); i++; break;
        case Fused::None: {
          const Step s = step(i, n, pos);
          if (s.rows > 0) ops_[i]->eval(s, x);
          break;
        }
      }
    }
    std::vector<std::pair<const Tensor*, size_t>> copied;  // outputs and their bytes, in staging until the sync
    for (const auto& out : outputs_) {
      const Tensor& host = *out.first;
      int64_t rows = 0;  // the most rows any op writes into it
      for (size_t i : writers_.at(&host))
        rows = std::max(rows, nodes_[i].op->rows_written ? nodes_[i].op->rows_written(nodes_[i], n) : n);
      copied.emplace_back(&host, leading_bytes(host, rows));
      CUDA_CHECK(cudaMemcpyAsync(staging_.at(&host).p, out.second->buf->data, copied.back().second, cudaMemcpyDeviceToHost, stream_));
    }
    int32_t bad[2] = {0, 0};
    if (err) CUDA_CHECK(cudaMemcpyAsync(bad, err, sizeof bad, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (const auto& c : copied) std::memcpy(c.first->buf->data, staging_.at(c.first).p, c.second);
    if (bad[0])
      throw Error("E_INVALID_ARG", "token id " + std::to_string(bad[1]) + " at row " + std::to_string(bad[0] - 1) +
                                       " is outside the embedding table (found on the device; the step's outputs are void)");
  }

 private:
  // Device tensors must be this flavor's; host tensors get device mirrors in the roles the op
  // table allows in host memory.
  void place_tensors() {
    std::unordered_set<const Tensor*> read;  // every tensor some node reads
    for (const Node& n : nodes_)
      each_tensor(n, [&](const TensorPtr& t, int r) {
        if (n.op->roles[size_t(r)].access == Access::In || n.op->roles[size_t(r)].access == Access::InOut) read.insert(t.get());
      });
    for (size_t i = 0; i < nodes_.size(); i++) {
      const Node& n = nodes_[i];
      each_tensor(n, [&](const TensorPtr& t, int r) {
        const RoleDef& role = n.op->roles[size_t(r)];
        if (!t->on_host()) {
          if (t->device() != kDevice)
            fail(n, i, std::string(role.name) + " is in " + device_name(t->device()) + " memory, not " + device_name(kDevice));
          return;
        }
        const bool input = role.host && role.access == Access::In;
        const bool output = role.host && role.access == Access::Out && !read.count(t.get());
        if (!input && !output)
          fail(n, i, std::string(role.name) + " " + t->describe() +
                         " is in host memory; a CUDA graph takes host tensors only as token ids and as outputs no op reads");
        auto& mirrors = input ? inputs_ : outputs_;
        if (!mirrors.count(t.get())) {
          mirrors.emplace(t.get(), Tensor::make_on(kMemory, t->dtype, t->shape));
          staging_[t.get()].allocate(t->nbytes());
        }
        if (role.whole) whole_.insert(t.get());
        if (output) writers_[t.get()].push_back(i);
      });
    }
  }

  void size_workspace() {
    size_t bytes = 0;
    for (size_t i = 0; i < nodes_.size(); i++)
      if (ops_[i]->workspace) bytes = std::max(bytes, ops_[i]->workspace(nodes_[i], max_rows_));
    if (bytes) workspace_ = Tensor::make_on(kMemory, DType::F32, {int64_t((bytes + 3) / 4)});
    int64_t counters = 0;
    for (size_t i = 0; i < nodes_.size(); i++)
      if (ops_[i]->counters) counters = std::max(counters, ops_[i]->counters(nodes_[i], max_rows_));
    if (counters) {
      counters_ = Tensor::make_on(kMemory, DType::I32, {counters});
      CUDA_CHECK(cudaMemset(counters_->buf->data, 0, counters_->nbytes()));
    }
  }

  template <class T = float> T* dev(const TensorPtr& t) const {
    if (t->on_host()) {
      auto in = inputs_.find(t.get());
      return static_cast<T*>((in != inputs_.end() ? in->second : outputs_.at(t.get()))->buf->data);
    }
    return static_cast<T*>(t->buf->data);
  }

  // Whether a node after `i` reads t before one overwrites all of its rows.
  bool read_after(size_t i, const TensorPtr& t) const {
    for (size_t j = i + 1; j < nodes_.size(); j++) {
      const Node& n = nodes_[j];
      if (reads(n, t)) return true;
      // (an op with rows_written overwrites all only if it writes every row of a full run: a matmul without lastRows)
      const bool all_rows = !n.op->rows_written || n.op->rows_written(n, max_rows_) >= max_rows_;
      for (size_t r = 0; r < n.op->roles.size(); r++)
        if (n.t[r] == t && n.op->roles[r].access == Access::Out && all_rows) return false;
    }
    return false;
  }

  void launch_rope_store(const Step& rope, const Node& store) {
    if (rope.rows == 0) return;
    const Node& r = rope.node;
    using namespace rope_op;
    rope_kv_store_cuda({dev<void>(store.t[kv_store_op::cache]), store.t[kv_store_op::cache]->dtype, dev(r.t[x]) + rope.row0 * r.t[x]->cols(),
                        rope.rows, r.i(n_heads), r.i(head_dim), r.i(n_rot), rope.pos, r.f(theta_base), r.f(freq_scale), r.b(neox),
                        r.t[freq_factors] ? dev(r.t[freq_factors]) : nullptr, r.f(mscale)},
                       stream_);
  }

  // Matmuls i .. i + count - 1 (same x): one launch where matmul_group_cuda takes them, else each by itself.
  void run_matmuls(size_t i, int count, int64_t n, int64_t pos, const CudaExec& x) {
    MatmulArgs m[3];
    for (int j = 0; j < count; j++) m[j] = matmul_op::args(step(i + size_t(j), n, pos));
    if (matmul_group_cuda(m, count, x.workspace, stream_, x.quantized_x)) return;
    for (int j = 0; j < count; j++) ops_[i + size_t(j)]->eval(step(i + size_t(j), n, pos), x);
  }

  // Gate (i), up (i + 1) and their swiglu (i + 2): one launch where matmul_swiglu_cuda takes them, else each by itself.
  void run_matmul_swiglu(size_t i, int64_t n, int64_t pos, const CudaExec& x) {
    const Step glu = step(i + 2, n, pos);
    if (matmul_swiglu_cuda(matmul_op::args(step(i, n, pos)), matmul_op::args(step(i + 1, n, pos)), swiglu_op::args(glu).out,
                           x.workspace, stream_, x.quantized_x))
      return;
    run_matmuls(i, 2, n, pos, x);
    ops_[i + 2]->eval(glu, x);
  }

  // Whether swiglu node s (index si) takes gate a's and up b's outputs whole, writes elsewhere
  // than their x, and leaves no reader of an output it does not overwrite.
  bool matmul_swiglu(const Node& a, const Node& b, const Node& s, size_t si) const {
    using namespace swiglu_op;
    if (s.op != &def || s.t[gate] != a.t[matmul_op::out] || s.t[up] != b.t[matmul_op::out] || s.t[out] == a.t[matmul_op::x] ||
        a.t[matmul_op::w]->rows() != b.t[matmul_op::w]->rows() || s.pos_slot >= 0)
      return false;
    for (const TensorPtr& t : {s.t[gate], s.t[up]})
      if (t != s.t[out] && read_after(si, t)) return false;
    return true;
  }

  void launch_add_norm(const Node& add, const Node& norm, int64_t n, void* quantize_to) {
    using namespace layer_norm_op;
    const bool layer = norm.op == &layer_norm_op::def;
    add_norm_cuda({dev(norm.t[out]), dev(add.t[add_op::out]), dev(add.t[add_op::b]), dev(norm.t[weight]), layer ? dev(norm.t[bias]) : nullptr,
                   n, norm.t[x]->cols(), norm.f(eps), quantize_to},
                  stream_);
  }

  std::mutex mu_;
  cudaStream_t stream_ = nullptr;
  std::vector<const CudaOp*> ops_;  // per node
  enum class Fused : uint8_t { None, AddNorm, AddNormQuant, RopeStore, Matmul2, Matmul3, MatmulSwiglu };
  std::vector<Fused> fuse_;  // node i and the next 1 (Matmul3, MatmulSwiglu: 2) run as one launch
                             // (AddNormQuant: AddNorm whose y the matmul after it reads as int8 in decode)
  std::unordered_map<const Tensor*, TensorPtr> inputs_, outputs_;  // host tensor -> device mirror
  std::unordered_set<const Tensor*> whole_;                          // inputs copied whole (RoleDef::whole)
  std::unordered_map<const Tensor*, std::vector<size_t>> writers_;  // host output -> nodes writing it
  // Page-locked host memory for one host tensor's copies in or out.
  struct Pinned {
    void* p = nullptr;
    void allocate(size_t bytes) { CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1)); }
    Pinned() = default;
    Pinned(const Pinned&) = delete;
    Pinned& operator=(const Pinned&) = delete;
    ~Pinned() {
      if (p) cudaFreeHost(p);
    }
  };
  std::unordered_map<const Tensor*, Pinned> staging_;  // host input or output -> its staging buffer
  TensorPtr workspace_;
  TensorPtr counters_;  // CudaExec::counters, zero between launches
  TensorPtr error_;  // the step's error word (CudaExec::error), when a node checks on the device
};

std::shared_ptr<Graph> make_graph(std::vector<Node> nodes, int64_t max_rows, TensorPtr positions) {
  return std::make_shared<CudaGraph>(std::move(nodes), max_rows, std::move(positions));
}

const CudaBackend kBackend{&kMemory, &make_graph, &mem_in_use, &mem_info};

}  // namespace

bool register_cuda_op(const OpDef& def, CudaEval eval, CudaWorkspace workspace, CudaCounters counters) {
  registry().push_back(CudaOp{&def, eval, workspace, counters});
  return true;
}

const CudaOp* find_cuda_op(const OpDef& def) {
  for (const CudaOp& op : registry())
    if (op.def == &def) return &op;
  return nullptr;
}

FUSELM_CUDA_NAMESPACE_END

namespace fuselm {
#if defined(__CUDACC__)
const CudaBackend& cuda_backend_gpu() { return gpu::kBackend; }
#else
const CudaBackend& cuda_backend_emulated() { return emulated::kBackend; }
#endif
}  // namespace fuselm
