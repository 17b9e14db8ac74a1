#pragma once
#include <napi.h>

#include "cuda_backend.h"

namespace fuselm {
Napi::Value cpu_info(const Napi::CallbackInfo& info);
Napi::Value cuda_info(const Napi::CallbackInfo& info);  // native/napi/cuda_info.cc
Napi::Value op_table_info(const Napi::CallbackInfo& info);  // native/napi/graph_wrap.cc
Napi::Value tensor_from_file(const Napi::CallbackInfo& info);  // native/napi/file.cc
Napi::Value map_file(const Napi::CallbackInfo& info);  // native/napi/file.cc
Napi::Value mapped_file_bytes_info(const Napi::CallbackInfo& info);  // native/napi/file.cc
Napi::Value grow_rows(const Napi::CallbackInfo& info);  // native/napi/tensor_wrap.cc
Napi::Value quantize_rows(const Napi::CallbackInfo& info);  // native/napi/quantize.cc

// native/napi/cuda_info.cc: a device from its JS name ('cpu', 'cuda', 'cuda-emulated'), and the
// CUDA backend serving it — the GPU's when built with CUDA and a device works, else a JS
// FuselmError NO_CUDA_DEVICE saying why; the emulator's for 'cuda-emulated'.
Device get_device(const Napi::Value& v, const char* what);
const CudaBackend& cuda_backend_for(Napi::Env env, Device d);
const DeviceMemory* memory_for(Napi::Env env, Device d);  // null for the CPU
Napi::Value device_memory_in_use(const Napi::CallbackInfo& info);
Napi::Value device_memory_info(const Napi::CallbackInfo& info);
}  // namespace fuselm
