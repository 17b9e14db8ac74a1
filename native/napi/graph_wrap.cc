#include <cmath>

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
const char* param_type_name(ParamType t) { return t == ParamType::Float ? "number" : t == ParamType::Int ? "integer" : "boolean"; }

// One node from its JS object, by the op table: every role and parameter the op declares, and
// nothing else. A missing required field is an error naming the op and the field.
Node parse_node(Napi::Env env, const Napi::Value& value, uint32_t index) {
  std::string where = "node #" + std::to_string(index);
  if (!value.IsObject()) throw_js(env, "E_INVALID_ARG", where + " must be an object");
  Napi::Object o = value.As<Napi::Object>();
  Napi::Value opv = o.Get("op");
  const OpEntry* entry = opv.IsString() ? find_op(opv.As<Napi::String>().Utf8Value()) : nullptr;
  if (!entry) throw_js(env, "E_INVALID_ARG", where + ": unknown op" + (opv.IsString() ? " '" + opv.As<Napi::String>().Utf8Value() + "'" : ""));
  const OpDef& def = *entry->def;
  where += " (" + std::string(def.name) + ")";
  Node n;
  n.op = &def;
  size_t known = 1;  // "op"
  for (size_t r = 0; r < def.roles.size(); r++) {
    Napi::Value v = o.Get(def.roles[r].name);
    if (v.IsUndefined()) {
      if (def.roles[r].required) throw_js(env, "E_INVALID_ARG", where + ": missing tensor '" + def.roles[r].name + "'");
      continue;
    }
    known++;
    n.t[r] = TensorWrap::unwrap(v, (where + "." + def.roles[r].name).c_str());
  }
  for (size_t i = 0; i < def.params.size(); i++) {
    const ParamDef& p = def.params[i];
    Napi::Value v = o.Get(p.name);
    if (v.IsUndefined()) {
      if (p.required) throw_js(env, "E_INVALID_ARG", where + ": missing parameter '" + p.name + "' (" + param_type_name(p.type) + ")");
      n.p[i] = p.fallback;
      continue;
    }
    known++;
    const bool ok = p.type == ParamType::Bool ? v.IsBoolean()
                    : v.IsNumber() && std::isfinite(v.As<Napi::Number>().DoubleValue()) &&
                          (p.type == ParamType::Float || std::trunc(v.As<Napi::Number>().DoubleValue()) == v.As<Napi::Number>().DoubleValue());
    if (!ok)
      throw_js(env, "E_INVALID_ARG", where + ": parameter '" + p.name + "' must be " +
                                         (p.type == ParamType::Bool ? "a boolean" : p.type == ParamType::Int ? "an integer" : "a finite number"));
    n.p[i] = p.type == ParamType::Bool ? (v.As<Napi::Boolean>().Value() ? 1 : 0) : v.As<Napi::Number>().DoubleValue();
  }
  if (def.positional) {
    for (const char* key : {"row0", "seqRows", "posSlot"})
      if (!o.Get(key).IsUndefined()) known++;
    if (!o.Get("posSlot").IsUndefined()) {
      n.pos_slot = get_int(o.Get("posSlot"), (where + ".posSlot").c_str());
      n.row0 = get_int(o.Get("row0"), (where + ".row0").c_str());
      n.seq_rows = get_int(o.Get("seqRows"), (where + ".seqRows").c_str());
      if (n.pos_slot < 0) throw_js(env, "E_INVALID_ARG", where + ": posSlot must be >= 0");
    } else if (!o.Get("row0").IsUndefined() || !o.Get("seqRows").IsUndefined()) {
      throw_js(env, "E_INVALID_ARG", where + ": row0 and seqRows need a posSlot");
    }
  }
  // a field the op does not declare is a mistake (a typo would otherwise be a silent default)
  Napi::Array keys = o.GetPropertyNames();
  if (keys.Length() != known) {
    for (uint32_t k = 0; k < keys.Length(); k++) {
      const std::string key = keys.Get(k).ToString().Utf8Value();
      bool declared = key == "op" || (def.positional && (key == "row0" || key == "seqRows" || key == "posSlot"));
      for (const RoleDef& r : def.roles) declared = declared || key == r.name;
      for (const ParamDef& p : def.params) declared = declared || key == p.name;
      if (!declared) throw_js(env, "E_INVALID_ARG", where + ": unknown field '" + key + "'");
    }
  }
  return n;
}
}  // namespace

Napi::Function GraphNodesWrap::define(Napi::Env env) {
  return DefineClass(env, "GraphNodes", {InstanceMethod<&GraphNodesWrap::add>("add"), InstanceMethod<&GraphNodesWrap::add_packed>("addPacked")});
}

GraphNodesWrap::GraphNodesWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GraphNodesWrap>(info) {}

// add(nodes): parses nodes and appends them (numbered after those already added); returns how
// many there are now. A bad node throws and leaves the list as it was.
Napi::Value GraphNodesWrap::add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (taken_) throw_js(env, "E_DISPOSED", "GraphNodes used after a Graph took them");
  if (!info[0].IsArray()) throw_js(env, "E_INVALID_ARG", "GraphNodes.add(nodes[])");
  Napi::Array arr = info[0].As<Napi::Array>();
  const size_t first = nodes_.size();
  try {
    for (uint32_t i = 0; i < arr.Length(); i++) nodes_.push_back(parse_node(env, arr.Get(i), uint32_t(first + i)));
  } catch (...) {
    nodes_.erase(nodes_.begin() + std::ptrdiff_t(first), nodes_.end());
    throw;
  }
  return Napi::Number::New(env, double(nodes_.size()));
}

namespace {
// Reads packed nodes (lib/ops/pack.ts's layout) from ints[*at..] and params[*p_at..], advancing
// both; tensor indices name `tensors`. The packer has checked each field's type and refused
// unknown ones; here the structure is checked again, so a bad buffer is an error, never a
// wrong node.
Node unpack_node(Napi::Env env, const int32_t* ints, size_t n_ints, size_t* at, const double* params, size_t n_params, size_t* p_at,
                 const std::vector<TensorPtr>& tensors, size_t index) {
  std::string where = "node #" + std::to_string(index);
  const auto& table = op_table();
  if (*at >= n_ints || ints[*at] < 0 || size_t(ints[*at]) >= table.size()) throw_js(env, "E_INVALID_ARG", where + ": unknown op index");
  const OpDef& def = *table[size_t(ints[(*at)++])].def;
  const size_t need = def.roles.size() + (def.positional ? 3 : 0);
  if (n_ints - *at < need || n_params - *p_at < def.params.size()) throw_js(env, "E_INVALID_ARG", where + " (" + def.name + "): packed buffers end early");
  Node n;
  n.op = &def;
  for (size_t r = 0; r < def.roles.size(); r++) {
    const int32_t t = ints[(*at)++];
    if (t < 0) {
      if (def.roles[r].required) throw_js(env, "E_INVALID_ARG", where + " (" + def.name + "): missing tensor '" + def.roles[r].name + "'");
      continue;
    }
    if (size_t(t) >= tensors.size()) throw_js(env, "E_INVALID_ARG", where + " (" + def.name + "): tensor index " + std::to_string(t) + " out of range");
    n.t[r] = tensors[size_t(t)];
  }
  for (size_t i = 0; i < def.params.size(); i++) {
    const ParamDef& p = def.params[i];
    const double v = params[(*p_at)++];
    if (std::isnan(v)) {
      if (p.required) throw_js(env, "E_INVALID_ARG", where + " (" + def.name + "): missing parameter '" + p.name + "' (" + param_type_name(p.type) + ")");
      n.p[i] = p.fallback;
      continue;
    }
    const bool ok = std::isfinite(v) && (p.type == ParamType::Float || std::trunc(v) == v) && (p.type != ParamType::Bool || v == 0 || v == 1);
    if (!ok) throw_js(env, "E_INVALID_ARG", where + " (" + def.name + "): parameter '" + p.name + "' must be " + param_type_name(p.type));
    n.p[i] = v;
  }
  if (def.positional) {
    const int32_t slot = ints[*at], row0 = ints[*at + 1], rows = ints[*at + 2];
    *at += 3;
    if (slot >= 0) {
      if (row0 < 0 || rows < 0) throw_js(env, "E_INVALID_ARG", where + " (" + def.name + "): posSlot needs row0 and seqRows >= 0");
      n.pos_slot = slot, n.row0 = row0, n.seq_rows = rows;
    } else if (slot != -1 || row0 != -1 || rows != -1) {
      throw_js(env, "E_INVALID_ARG", where + " (" + def.name + "): row0 and seqRows need a posSlot >= 0");
    }
  }
  return n;
}

template <typename T>
std::pair<const T*, size_t> typed_array(const Napi::Value& v, napi_typedarray_type type, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) throw_js(v.Env(), "E_INVALID_ARG", std::string(what) + " has the wrong type");
  auto a = v.As<Napi::TypedArrayOf<T>>();
  return {a.Data(), a.ElementLength()};
}
}  // namespace

// addPacked(ints: Int32Array, params: Float64Array, tensors: Tensor[]): appends the nodes packed
// by lib/ops/pack.ts, one pass over two typed arrays (reading a node as an object costs 10-40
// us in named property reads). `tensors` extend the list's tensor table, which the packed
// nodes index. Returns how many nodes there are now; a bad node throws and leaves the list as
// it was.
Napi::Value GraphNodesWrap::add_packed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (taken_) throw_js(env, "E_DISPOSED", "GraphNodes used after a Graph took them");
  if (!info[2].IsArray()) throw_js(env, "E_INVALID_ARG", "GraphNodes.addPacked(ints: Int32Array, params: Float64Array, tensors[])");
  auto [ints, n_ints] = typed_array<int32_t>(info[0], napi_int32_array, "GraphNodes.addPacked: ints");
  auto [params, n_params] = typed_array<double>(info[1], napi_float64_array, "GraphNodes.addPacked: params");
  Napi::Array arr = info[2].As<Napi::Array>();
  const size_t first = nodes_.size(), first_tensor = tensors_.size();
  try {
    for (uint32_t i = 0; i < arr.Length(); i++) tensors_.push_back(TensorWrap::unwrap(arr.Get(i), ("tensors[" + std::to_string(first_tensor + i) + "]").c_str()));
    size_t at = 0, p_at = 0;
    while (at < n_ints) nodes_.push_back(unpack_node(env, ints, n_ints, &at, params, n_params, &p_at, tensors_, nodes_.size()));
    if (p_at != n_params) throw_js(env, "E_INVALID_ARG", "GraphNodes.addPacked: " + std::to_string(n_params - p_at) + " parameters left over");
  } catch (...) {
    nodes_.erase(nodes_.begin() + std::ptrdiff_t(first), nodes_.end());
    tensors_.erase(tensors_.begin() + std::ptrdiff_t(first_tensor), tensors_.end());
    throw;
  }
  return Napi::Number::New(env, double(nodes_.size()));
}

std::vector<Node> GraphNodesWrap::take(Napi::Env env) {
  if (taken_) throw_js(env, "E_DISPOSED", "GraphNodes used after a Graph took them");
  taken_ = true;
  tensors_.clear();
  return std::move(nodes_);
}

// new Graph(nodes, {device = "cpu", pool (cpu), impl (cpu), maxRows, positions}); nodes: an array,
// each {op, ...its roles and parameters} as the op table declares them, or a GraphNodes.
GraphWrap::GraphWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GraphWrap>(info) {
  Napi::Env env = info.Env();
  auto* data = env.GetInstanceData<AddonData>();
  const bool listed = info[0].IsObject() && info[0].As<Napi::Object>().InstanceOf(data->graph_nodes_ctor.Value());
  if ((!info[0].IsArray() && !listed) || !info[1].IsObject()) throw_js(env, "E_INVALID_ARG", "new Graph(nodes[] | GraphNodes, options)");
  Napi::Object opts = info[1].As<Napi::Object>();
  std::vector<Node> nodes;
  if (listed) {
    nodes = GraphNodesWrap::Unwrap(info[0].As<Napi::Object>())->take(env);
  } else {
    Napi::Array arr = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) nodes.push_back(parse_node(env, arr.Get(i), i));
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

// ---- The op table ---------------------------------------------------------------------------

// opTable(): every op with its roles and parameters, as lib/ops/table.ts declares them.
Napi::Value op_table_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& ops = op_table();
  Napi::Array out = Napi::Array::New(env, ops.size());
  for (size_t i = 0; i < ops.size(); i++) {
    const OpDef& d = *ops[i].def;
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", d.name);
    Napi::Array roles = Napi::Array::New(env, d.roles.size());
    for (size_t r = 0; r < d.roles.size(); r++) {
      static const char* const kAccess[] = {"in", "out", "inout", "update"};
      Napi::Object ro = Napi::Object::New(env);
      ro.Set("name", d.roles[r].name);
      ro.Set("access", kAccess[int(d.roles[r].access)]);
      ro.Set("required", d.roles[r].required);
      ro.Set("host", d.roles[r].host);
      roles.Set(uint32_t(r), ro);
    }
    o.Set("roles", roles);
    Napi::Array params = Napi::Array::New(env, d.params.size());
    for (size_t p = 0; p < d.params.size(); p++) {
      const ParamDef& pd = d.params[p];
      Napi::Object po = Napi::Object::New(env);
      po.Set("name", pd.name);
      po.Set("type", pd.type == ParamType::Float ? "float" : pd.type == ParamType::Int ? "int" : "bool");
      po.Set("required", pd.required);
      if (!pd.required) {
        if (pd.type == ParamType::Bool) po.Set("default", pd.fallback != 0);
        else po.Set("default", pd.fallback);
      }
      params.Set(uint32_t(p), po);
    }
    o.Set("params", params);
    o.Set("positional", d.positional);
    if (d.no_cuda) o.Set("noCuda", d.no_cuda);
    out.Set(uint32_t(i), o);
  }
  return out;
}

}  // namespace fuselm
