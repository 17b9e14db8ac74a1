#include "cpu/cpu_features.h"

namespace fuselm {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__)
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.f16c = __builtin_cpu_supports("f16c");
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
    c.avx512vnni = __builtin_cpu_supports("avx512vnni");
    c.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
    return c;
  }();
  return f;
}

bool impl_supported(Impl impl) {
  const CpuFeatures& c = cpu_features();
  switch (impl) {
    case Impl::kReference: case Impl::kPortable: return true;
    case Impl::kAvx2: return c.avx2 && c.fma && c.f16c;
    case Impl::kAvx512: return c.avx2 && c.fma && c.f16c && c.avx512f && c.avx512bw && c.avx512vl;
  }
  return false;
}

Impl best_impl() {
  if (impl_supported(Impl::kAvx512)) return Impl::kAvx512;
  if (impl_supported(Impl::kAvx2)) return Impl::kAvx2;
  return Impl::kPortable;
}

const char* impl_name(Impl impl) {
  switch (impl) {
    case Impl::kReference: return "reference";
    case Impl::kPortable: return "portable";
    case Impl::kAvx2: return "avx2";
    case Impl::kAvx512: return "avx512";
  }
  return "?";
}

bool impl_from_name(const std::string& n, Impl* out) {
  if (n == "auto") { *out = best_impl(); return true; }
  for (Impl i : {Impl::kReference, Impl::kPortable, Impl::kAvx2, Impl::kAvx512})
    if (n == impl_name(i)) { *out = i; return true; }
  return false;
}

}  // namespace fuselm
