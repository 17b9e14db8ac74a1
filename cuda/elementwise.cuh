// Elementwise kernels over n f32 values, shared by the ops that are one function per value
// (add, mul, swiglu, gelu, scale, softcap): grid-stride over float4 vectors when every pointer
// is 16-byte aligned (the n % 4 tail by the first threads), else over single floats. F is a
// functor with a __device__ operator(): (x) for unary ops, (a, b) for binary ones. out may
// alias an input: each element is read and written by the same thread.
#pragma once
#include <cstdint>

#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

template <int VEC, class F>
static __global__ void unary_f32_kernel(float* out, const float* x, int64_t n, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (VEC == 4) {
    const int64_t nv = n / 4;
    const float4* xv = reinterpret_cast<const float4*>(x);
    float4* ov = reinterpret_cast<float4*>(out);
    for (int64_t i = first; i < nv; i += stride) {
      const float4 v = xv[i];
      ov[i] = make_float4(f(v.x), f(v.y), f(v.z), f(v.w));
    }
    const int64_t tail = nv * 4 + first;
    if (tail < n) out[tail] = f(x[tail]);
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = f(x[i]);
  }
}

template <int VEC, class F>
static __global__ void binary_f32_kernel(float* out, const float* a, const float* b, int64_t n, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (VEC == 4) {
    const int64_t nv = n / 4;
    const float4* av = reinterpret_cast<const float4*>(a);
    const float4* bv = reinterpret_cast<const float4*>(b);
    float4* ov = reinterpret_cast<float4*>(out);
    for (int64_t i = first; i < nv; i += stride) {
      const float4 x = av[i], y = bv[i];
      ov[i] = make_float4(f(x.x, y.x), f(x.y, y.y), f(x.z, y.z), f(x.w, y.w));
    }
    const int64_t tail = nv * 4 + first;
    if (tail < n) out[tail] = f(a[tail], b[tail]);
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = f(a[i], b[i]);
  }
}

// out[i] = f(x[i]) for i < n; `name` names the launch in errors.
template <class F>
void launch_unary_f32(const char* name, float* out, const float* x, int64_t n, F f, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned threads = 256;
  if (aligned16(out) && aligned16(x))
    launch_kernel(name, unary_f32_kernel<4, F>, dim3(elementwise_blocks((n + 3) / 4, threads)), dim3(threads), 0, stream, out, x, n, f);
  else
    launch_kernel(name, unary_f32_kernel<1, F>, dim3(elementwise_blocks(n, threads)), dim3(threads), 0, stream, out, x, n, f);
}

// out[i] = f(a[i], b[i]) for i < n.
template <class F>
void launch_binary_f32(const char* name, float* out, const float* a, const float* b, int64_t n, F f, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned threads = 256;
  if (aligned16(out) && aligned16(a) && aligned16(b))
    launch_kernel(name, binary_f32_kernel<4, F>, dim3(elementwise_blocks((n + 3) / 4, threads)), dim3(threads), 0, stream, out, a, b,
                  n, f);
  else
    launch_kernel(name, binary_f32_kernel<1, F>, dim3(elementwise_blocks(n, threads)), dim3(threads), 0, stream, out, a, b, n, f);
}

FUSELM_CUDA_NAMESPACE_END
