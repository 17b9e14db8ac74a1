// x86 intrinsics and the function attributes of the SIMD kernel levels, in one place. Only
// functions carrying these attributes may use AVX; the rest of the addon stays x86-64 baseline
// (test/package.test.ts checks the binary for it).
#pragma once

#if defined(__x86_64__)
// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_ps(), which trips
// -Wuninitialized once inlined (GCC bug 105593, fixed in 13). The diagnostic state is taken
// at the header's own lines, so it is switched off around the include only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#define FUSELM_AVX2 __attribute__((target("avx2,fma,f16c")))
#define FUSELM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,avx2")))
#define FUSELM_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c,avx2")))
#endif
