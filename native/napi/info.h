#pragma once
#include <napi.h>

namespace fuselm {
Napi::Value cpu_info(const Napi::CallbackInfo& info);
Napi::Value cuda_info(const Napi::CallbackInfo& info);  // native/napi/cuda_info.cc
Napi::Value cuda_add(const Napi::CallbackInfo& info);   // native/napi/cuda_info.cc
Napi::Value tensor_from_file(const Napi::CallbackInfo& info);  // native/napi/file.cc
}  // namespace fuselm
