// What the addon can do on this machine: CPU features and kernel levels, CUDA devices.
#include "napi/info.h"

#include "cpu/cpu_features.h"
#include "thread_pool.h"

namespace fuselm {

Napi::Value cpu_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuFeatures& c = cpu_features();
  Napi::Object features = Napi::Object::New(env);
  features.Set("avx2", c.avx2);
  features.Set("fma", c.fma);
  features.Set("f16c", c.f16c);
  features.Set("avx512f", c.avx512f);
  features.Set("avx512bw", c.avx512bw);
  features.Set("avx512vl", c.avx512vl);
  features.Set("avx512vnni", c.avx512vnni);
  features.Set("avx512bf16", c.avx512bf16);
  Napi::Array impls = Napi::Array::New(env);
  uint32_t k = 0;
  for (Impl i : {Impl::kReference, Impl::kPortable, Impl::kAvx2, Impl::kAvx512})
    if (impl_supported(i)) impls.Set(k++, impl_name(i));
  Napi::Object o = Napi::Object::New(env);
  o.Set("features", features);
  o.Set("impls", impls);
  o.Set("bestImpl", impl_name(best_impl()));
  o.Set("physicalCores", physical_cores());
  return o;
}

}  // namespace fuselm
