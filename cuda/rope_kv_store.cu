// rope_kv_store: the keys' rotary embedding fused into their store in the KV cache (cuda/ops.h),
// cache[pos0 + t, :] = rope(src[t, :]) rounded to f32/f16/bf16, src left as it is. Same layout
// and angles as cuda/rope.cu (a block per token and group of heads, a thread per pair, the angle
// reduced in double): a thread rotates its pair in each of the block's heads and writes the two
// results straight to the cache; the dims past n_rot are copied by the block's threads in turn.
// Against rope then kv_store this reads the keys once and writes them once instead of twice each.
#include <cmath>
#include <cstdint>

#include "ops.h"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int kRopeStoreHeadsPerBlock = 4;

template <class C> __device__ __forceinline__ C to_cache(float v);
template <> __device__ __forceinline__ float to_cache<float>(float v) { return v; }
template <> __device__ __forceinline__ __half to_cache<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 to_cache<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <bool NEOX, class C>
static __global__ void rope_kv_store_kernel(C* cache, const float* src, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                                            int64_t pos0, double log2_base, double freq_scale, const float* ff, float mscale) {
  const int64_t t = blockIdx.x;
  const int64_t h0 = int64_t(blockIdx.y) * kRopeStoreHeadsPerBlock;
  const int64_t h1 = h0 + kRopeStoreHeadsPerBlock < n_heads ? h0 + kRopeStoreHeadsPerBlock : n_heads;
  const int64_t half = n_rot / 2, W = n_heads * head_dim;
  const double pos = double(pos0 + t);
  const float* st = src + t * W;
  C* ct = cache + (pos0 + t) * W;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    double theta = pos * freq_scale * exp2(-2.0 * double(i) / double(n_rot) * log2_base);
    if (ff) theta /= double(ff[i]);
    const double two_pi = 6.283185307179586476925287;
    const float r = float(theta - rint(theta * (1.0 / two_pi)) * two_pi);
    const float c = cosf(r) * mscale, s = sinf(r) * mscale;
    const int64_t i0 = NEOX ? i : 2 * i, i1 = NEOX ? i + half : 2 * i + 1;
    for (int64_t h = h0; h < h1; h++) {
      const float x0 = st[h * head_dim + i0], x1 = st[h * head_dim + i1];
      ct[h * head_dim + i0] = to_cache<C>(x0 * c - x1 * s);
      ct[h * head_dim + i1] = to_cache<C>(x0 * s + x1 * c);
    }
  }
  const int64_t rest = head_dim - n_rot;
  for (int64_t k = threadIdx.x; k < (h1 - h0) * rest; k += blockDim.x) {
    const int64_t h = h0 + k / rest, d = n_rot + k % rest;
    ct[h * head_dim + d] = to_cache<C>(st[h * head_dim + d]);
  }
}

template <bool NEOX, class C>
static void launch_rope_kv_store(const RopeKvStoreArgs& a, cudaStream_t stream, const char* name) {
  const int64_t half = a.n_rot / 2;
  int64_t threads = (half + 31) / 32 * 32;
  threads = threads > 256 ? 256 : threads;
  const dim3 grid(unsigned(a.T), unsigned((a.n_heads + kRopeStoreHeadsPerBlock - 1) / kRopeStoreHeadsPerBlock));
  launch_kernel(name, rope_kv_store_kernel<NEOX, C>, grid, dim3(unsigned(threads)), 0, stream, static_cast<C*>(a.cache),
                a.src, a.n_heads, a.head_dim, a.n_rot, a.pos0, std::log2(double(a.theta_base)), double(a.freq_scale), a.freq_factors, a.mscale);
}

void rope_kv_store_cuda(const RopeKvStoreArgs& a, cudaStream_t stream) {
  if (a.T <= 0 || a.n_heads <= 0) return;
  if (a.n_rot < 2 || a.n_rot % 2 || a.n_rot > a.head_dim)
    throw Error("E_INVALID_ARG", "rope_kv_store_cuda: n_rot must be even, 2..head_dim");
  switch (a.cache_dtype) {
    case DType::F32:
      return a.neox ? launch_rope_kv_store<true, float>(a, stream, "rope_kv_store_kernel<neox, f32>")
                    : launch_rope_kv_store<false, float>(a, stream, "rope_kv_store_kernel<llama, f32>");
    case DType::F16:
      return a.neox ? launch_rope_kv_store<true, __half>(a, stream, "rope_kv_store_kernel<neox, f16>")
                    : launch_rope_kv_store<false, __half>(a, stream, "rope_kv_store_kernel<llama, f16>");
    case DType::BF16:
      return a.neox ? launch_rope_kv_store<true, __nv_bfloat16>(a, stream, "rope_kv_store_kernel<neox, bf16>")
                    : launch_rope_kv_store<false, __nv_bfloat16>(a, stream, "rope_kv_store_kernel<llama, bf16>");
    default:
      throw Error("E_INVALID_ARG", std::string("rope_kv_store_cuda: the cache must be f32, f16 or bf16, got ") +
                                       dtype_name(a.cache_dtype));
  }
}

FUSELM_CUDA_NAMESPACE_END
