#include "napi/info.h"
#include "napi/util.h"
#include "napi/wraps.h"

namespace fuselm {

// ---- Pool -------------------------------------------------------------------------------

Napi::Function PoolWrap::define(Napi::Env env) {
  return DefineClass(env, "Pool", {InstanceAccessor<&PoolWrap::threads>("threads"), InstanceMethod<&PoolWrap::free>("free")});
}

PoolWrap::PoolWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PoolWrap>(info) {
  int64_t n = get_int(info[0], "threads");
  if (n < 1 || n > 1024) throw_js(info.Env(), "E_INVALID_ARG", "threads must be 1..1024, got " + std::to_string(n));
  pool = std::make_shared<Pool>(int(n));
}

Napi::Value PoolWrap::threads(const Napi::CallbackInfo& info) {
  if (!pool) throw_js(info.Env(), "E_DISPOSED", "pool used after free()");
  return Napi::Number::New(info.Env(), pool->pool.size());
}

Napi::Value PoolWrap::free(const Napi::CallbackInfo& info) {
  pool.reset();  // the threads stop once no graph holds the pool either
  return info.Env().Undefined();
}

// ---- Graph ------------------------------------------------------------------------------

Napi::Function GraphWrap::define(Napi::Env env) {
  return DefineClass(env, "Graph", {InstanceMethod<&GraphWrap::run>("run"), InstanceMethod<&GraphWrap::free>("free")});
}

namespace {
TensorPtr opt_tensor(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  return TensorWrap::unwrap(v, (where + "." + key).c_str());
}
double opt_number(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? fallback : get_number(v, key);
}
}  // namespace

// new Graph(nodes, {device = "cpu", pool (cpu), impl (cpu), maxRows, positions}); each node: {op, out, a, b, c, ...params}.
GraphWrap::GraphWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GraphWrap>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || !info[1].IsObject()) throw_js(env, "E_INVALID_ARG", "new Graph(nodes[], options)");
  Napi::Array arr = info[0].As<Napi::Array>();
  Napi::Object opts = info[1].As<Napi::Object>();
  std::vector<Node> nodes;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    std::string where = "node #" + std::to_string(i);
    if (!arr.Get(i).IsObject()) throw_js(env, "E_INVALID_ARG", where + " must be an object");
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    Node n;
    Napi::Value op = o.Get("op");
    if (!op.IsString() || !op_from_name(op.As<Napi::String>().Utf8Value(), &n.kind))
      throw_js(env, "E_INVALID_ARG", where + ": unknown op");
    n.out = opt_tensor(o, "out", where);
    n.a = opt_tensor(o, "a", where);
    n.b = opt_tensor(o, "b", where);
    n.c = opt_tensor(o, "c", where);
    n.eps = float(opt_number(o, "eps", 0));
    n.scale = float(opt_number(o, "scale", 0));
    n.theta_base = float(opt_number(o, "thetaBase", 10000));
    n.freq_scale = float(opt_number(o, "freqScale", 1));
    n.n_heads = int64_t(opt_number(o, "nHeads", 0));
    n.n_kv_heads = int64_t(opt_number(o, "nKvHeads", 0));
    n.head_dim = int64_t(opt_number(o, "headDim", 0));
    n.n_rot = int64_t(opt_number(o, "nRot", 0));
    n.neox = o.Get("neox").ToBoolean();
    n.last_row = o.Get("lastRow").ToBoolean();
    n.window = int64_t(opt_number(o, "window", 0));
    n.causal = o.Get("causal").IsUndefined() ? true : o.Get("causal").ToBoolean().Value();
    n.tanh_approx = o.Get("tanhApprox").ToBoolean();
    n.col0 = int64_t(opt_number(o, "col0", 0));
    n.row0 = int64_t(opt_number(o, "row0", 0));
    n.seq_rows = int64_t(opt_number(o, "seqRows", 1));
    n.pos_slot = int64_t(opt_number(o, "posSlot", -1));
    n.k_prefix = opt_tensor(o, "kPrefix", where);
    n.v_prefix = opt_tensor(o, "vPrefix", where);
    n.prefix_len = int64_t(opt_number(o, "prefixLen", 0));
    nodes.push_back(std::move(n));
  }
  int64_t max_rows = get_int(opts.Get("maxRows"), "options.maxRows");
  Napi::Value posv = opts.Get("positions");
  TensorPtr positions = posv.IsUndefined() || posv.IsNull() ? nullptr : TensorWrap::unwrap(posv, "options.positions");
  const Device device = opts.Get("device").IsUndefined() ? Device::Cpu : get_device(opts.Get("device"), "options.device");
  if (device != Device::Cpu) {
    const CudaBackend& be = cuda_backend_for(env, device);
    try {
      g_ = be.graph(std::move(nodes), max_rows, std::move(positions));
    } catch (const Error& e) {
      throw_js(env, e.code, e.what());
    }
    return;
  }
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Value pv = opts.Get("pool");
  if (!pv.IsObject() || !pv.As<Napi::Object>().InstanceOf(data->pool_ctor.Value()))
    throw_js(env, "E_INVALID_ARG", "options.pool must be a Pool");
  std::shared_ptr<Pool> pool = PoolWrap::Unwrap(pv.As<Napi::Object>())->pool;
  if (!pool) throw_js(env, "E_DISPOSED", "pool used after free()");
  Impl impl = best_impl();
  Napi::Value iv = opts.Get("impl");
  if (!iv.IsUndefined() && (!iv.IsString() || !impl_from_name(iv.As<Napi::String>().Utf8Value(), &impl)))
    throw_js(env, "E_INVALID_ARG", "options.impl must be auto, reference, portable, avx2 or avx512");
  try {
    g_ = std::make_shared<CpuGraph>(std::move(nodes), std::move(pool), impl, max_rows, std::move(positions));
  } catch (const Error& e) {
    throw_js(env, e.code, e.what());
  }
}

// run(n, pos): Promise<void>, computed on a libuv thread.
Napi::Value GraphWrap::run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!g_) throw_js(env, "E_DISPOSED", "graph used after free()");
  int64_t n = get_int(info[0], "n"), pos = get_int(info[1], "pos");
  std::shared_ptr<Graph> g = g_;
  return PromiseWorker::start(env, [g, n, pos] { g->run(n, pos); }, nullptr);
}

Napi::Value GraphWrap::free(const Napi::CallbackInfo& info) {
  g_.reset();  // a run in flight holds its own reference and finishes safely
  return info.Env().Undefined();
}

}  // namespace fuselm
