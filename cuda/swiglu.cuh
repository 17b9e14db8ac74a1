// SwiGLU's elementwise function, shared by the swiglu op (cuda/swiglu.cu) and the decode GEMV
// that fuses it into gate and up (cuda/gemv_quant.cu), so both round the same: silu(g) * u,
// silu(g) = g / (1 + exp(-g)). For g -> -inf, exp(-g) = inf and g / inf = -0; for g -> +inf,
// exp(-g) = 0: no NaN from large |g| (a true division, not __fdividef, which returns 0 or NaN
// for huge divisors). __expf's error (a few ulp for |g| < 16) is within the parity tolerance.
#pragma once
#include "common.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

struct SwigluF32 {
  __device__ __forceinline__ float operator()(float g, float u) const { return g / (1.0f + __expf(-g)) * u; }
};

FUSELM_CUDA_NAMESPACE_END
