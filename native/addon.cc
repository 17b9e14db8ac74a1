// Module registration only: the classes and functions the addon exports (typed in bindings.d.ts).
#include <napi.h>

#include "napi/info.h"
#include "napi/wraps.h"

namespace fuselm {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  Napi::Function tensor = TensorWrap::define(env);
  Napi::Function pool = PoolWrap::define(env);
  data->tensor_ctor = Napi::Persistent(tensor);
  data->pool_ctor = Napi::Persistent(pool);
  data->mapped_file_ctor = Napi::Persistent(MappedFileWrap::define(env));
  Napi::Function graph_nodes = GraphNodesWrap::define(env);
  data->graph_nodes_ctor = Napi::Persistent(graph_nodes);
  env.SetInstanceData<AddonData>(data);
  exports.Set("Tensor", tensor);
  exports.Set("Pool", pool);
  exports.Set("GraphNodes", graph_nodes);
  exports.Set("Graph", GraphWrap::define(env));
  exports.Set("growRows", Napi::Function::New(env, grow_rows, "growRows"));
  exports.Set("tensorFromFile", Napi::Function::New(env, tensor_from_file, "tensorFromFile"));
  exports.Set("mapFile", Napi::Function::New(env, map_file, "mapFile"));
  exports.Set("mappedFileBytes", Napi::Function::New(env, mapped_file_bytes_info, "mappedFileBytes"));
  exports.Set("quantizeRows", Napi::Function::New(env, quantize_rows, "quantizeRows"));
  exports.Set("opTable", Napi::Function::New(env, op_table_info, "opTable"));
  exports.Set("cpuInfo", Napi::Function::New(env, cpu_info, "cpuInfo"));
  exports.Set("cudaInfo", Napi::Function::New(env, cuda_info, "cudaInfo"));
  exports.Set("deviceMemoryInUse", Napi::Function::New(env, device_memory_in_use, "deviceMemoryInUse"));
  exports.Set("deviceMemoryInfo", Napi::Function::New(env, device_memory_info, "deviceMemoryInfo"));
  return exports;
}

}  // namespace fuselm

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return fuselm::init(env, exports); }

NODE_API_MODULE(fuselm, InitModule)
