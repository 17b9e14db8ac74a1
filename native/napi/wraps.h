// JS classes around native objects: Tensor, MappedFile, Pool and Graph. Each holds a shared_ptr, so a
// graph keeps its tensors alive even when JS drops them; free() releases the JS side's share.
#pragma once
#include <napi.h>

#include "graph.h"
#include "mapped_file.h"
#include "tensor.h"

namespace fuselm {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  static Napi::Object wrap(Napi::Env env, TensorPtr t);
  static TensorPtr unwrap(const Napi::Value& v, const char* role);  // throws on freed/non-tensor
  explicit TensorWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value nbytes(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value mapped(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value write(const Napi::CallbackInfo& info);
  Napi::Value read(const Napi::CallbackInfo& info);
  Napi::Value free(const Napi::CallbackInfo& info);
  TensorPtr get(Napi::Env env) const;
  TensorPtr t_;
};

// A file mapped by mapFile(); tensor() makes views into it, off the JS thread. free() drops the
// JS side's share: the views keep the mapping until they are freed too.
class MappedFileWrap : public Napi::ObjectWrap<MappedFileWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  static Napi::Object wrap(Napi::Env env, std::shared_ptr<MappedFile> f);
  explicit MappedFileWrap(const Napi::CallbackInfo& info);  // only through wrap()

 private:
  Napi::Value path(const Napi::CallbackInfo& info);
  Napi::Value size(const Napi::CallbackInfo& info);
  Napi::Value tensor(const Napi::CallbackInfo& info);
  Napi::Value free(const Napi::CallbackInfo& info);
  std::shared_ptr<MappedFile> get(Napi::Env env) const;
  std::shared_ptr<MappedFile> f_;
};

class PoolWrap : public Napi::ObjectWrap<PoolWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit PoolWrap(const Napi::CallbackInfo& info);  // new Pool(threads)
  std::shared_ptr<Pool> pool;

 private:
  Napi::Value threads(const Napi::CallbackInfo& info);
  Napi::Value free(const Napi::CallbackInfo& info);
};

// Nodes read from JS a slice at a time (add(nodes)): a graph of thousands of nodes takes long
// enough to read that lib/backend.ts hands them over in slices and lets the event loop run in
// between. new Graph(graphNodes, options) then takes them all.
class GraphNodesWrap : public Napi::ObjectWrap<GraphNodesWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit GraphNodesWrap(const Napi::CallbackInfo& info);  // new GraphNodes()
  std::vector<Node> take(Napi::Env env);                    // the nodes, once

 private:
  Napi::Value add(const Napi::CallbackInfo& info);
  Napi::Value add_packed(const Napi::CallbackInfo& info);
  std::vector<Node> nodes_;
  std::vector<TensorPtr> tensors_;  // addPacked's tensor table
  bool taken_ = false;
};

class GraphWrap : public Napi::ObjectWrap<GraphWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit GraphWrap(const Napi::CallbackInfo& info);  // new Graph(nodes | GraphNodes, {device, pool, impl, maxRows, positions})

 private:
  Napi::Value run(const Napi::CallbackInfo& info);
  Napi::Value free(const Napi::CallbackInfo& info);
  std::shared_ptr<Graph> g_;
};

struct AddonData {
  Napi::FunctionReference tensor_ctor, pool_ctor, mapped_file_ctor, graph_nodes_ctor;
};

}  // namespace fuselm
