// Which SIMD level the CPU kernels use. Every op has a plain reference (kReference) and a fast
// path; the fast path picks AVX-512, AVX2 (+FMA, F16C) or portable C++ at run time.
#pragma once
#include <string>

namespace fuselm {

enum class Impl { kReference = 0, kPortable = 1, kAvx2 = 2, kAvx512 = 3 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
};

const CpuFeatures& cpu_features();
Impl best_impl();                     // the fastest level this CPU supports
bool impl_supported(Impl impl);       // can this CPU run `impl`?
const char* impl_name(Impl impl);
bool impl_from_name(const std::string& name, Impl* out);  // "auto" maps to best_impl()

}  // namespace fuselm
