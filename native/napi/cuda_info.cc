// cudaInfo(): whether the CUDA backend was compiled in, and the devices it sees (or why none).
#include "napi/info.h"
#include "napi/util.h"

#ifdef FUSELM_HAVE_CUDA
#include "device.h"
#endif

namespace fuselm {

namespace {
#ifdef FUSELM_HAVE_CUDA
// The driver's answer, asked once: device queries are slow and the answer does not change.
const std::vector<CudaDevice>& gpu_devices(std::string* why) {
  static std::string reason;
  static const std::vector<CudaDevice> list = cuda_devices(&reason);
  if (why) *why = reason;
  return list;
}
#endif
}  // namespace

Device get_device(const Napi::Value& v, const char* what) {
  const std::string name = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  for (Device d : {Device::Cpu, Device::Cuda, Device::CudaEmulated})
    if (name == device_name(d)) return d;
  throw_js(v.Env(), "E_INVALID_ARG", std::string(what) + " must be 'cpu', 'cuda' or 'cuda-emulated'");
}

const CudaBackend& cuda_backend_for(Napi::Env env, Device d) {
  if (d == Device::CudaEmulated) return cuda_backend_emulated();
#ifdef FUSELM_HAVE_CUDA
  std::string why;
  if (d == Device::Cuda && !gpu_devices(&why).empty()) return cuda_backend_gpu();
  throw_js(env, "NO_CUDA_DEVICE", "no CUDA device: " + why);
#else
  throw_js(env, "NO_CUDA_DEVICE", "no CUDA device: this build of fuselm has no CUDA backend (nvcc was not found or FUSELM_CUDA=OFF)");
#endif
}

const DeviceMemory* memory_for(Napi::Env env, Device d) {
  return d == Device::Cpu ? nullptr : cuda_backend_for(env, d).memory;
}

// deviceMemoryInUse(device): bytes of a CUDA device's memory fuselm holds (0 for the CPU).
Napi::Value device_memory_in_use(const Napi::CallbackInfo& info) {
  const Device d = get_device(info[0], "device");
  return Napi::Number::New(info.Env(), d == Device::Cpu ? 0.0 : double(cuda_backend_for(info.Env(), d).bytes_in_use()));
}

// deviceMemoryInfo(device): {free, total} bytes of a CUDA device's memory.
Napi::Value device_memory_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Device d = get_device(info[0], "device");
  if (d == Device::Cpu) throw_js(env, "E_INVALID_ARG", "deviceMemoryInfo: 'cpu' is not a CUDA device");
  size_t free = 0, total = 0;
  try {
    cuda_backend_for(env, d).mem_info(&free, &total);
  } catch (const Error& e) {
    throw_js(env, e.code, e.what());
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("free", double(free));
  o.Set("total", double(total));
  return o;
}

Napi::Value cuda_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array devices = Napi::Array::New(env);
#ifdef FUSELM_HAVE_CUDA
  o.Set("compiled", true);
  std::string why;
  const std::vector<CudaDevice>& list = gpu_devices(&why);
  for (size_t i = 0; i < list.size(); i++) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", list[i].index);
    d.Set("name", list[i].name);
    d.Set("totalMemory", double(list[i].total_memory));
    d.Set("computeCapability", std::to_string(list[i].major) + "." + std::to_string(list[i].minor));
    devices.Set(uint32_t(i), d);
  }
  if (list.empty()) o.Set("reason", why);
#else
  o.Set("compiled", false);
  o.Set("reason", "built without CUDA (nvcc was not found or FUSELM_CUDA=OFF)");
#endif
  o.Set("devices", devices);
  return o;
}

}  // namespace fuselm
