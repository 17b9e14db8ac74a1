// rope: rotary position embedding in place on x [T, n_heads * head_dim], llama (pairs 2i, 2i+1)
// or NeoX (pairs i, i + n_rot/2) layout, the first n_rot dims of each head; the CPU twin is
// native/cpu/rope.cc. A block takes one token and up to kHeadsPerBlock heads; thread i of the
// block takes pair i (strided when n_rot/2 > blockDim.x), computes its angle once and rotates
// that pair in each of the block's heads.
//
// Accuracy: the angle pos * freq_scale * base^(-2i/n_rot) (divided by freq_factors[i] when
// given: Llama-3.1's rope scaling) reaches thousands of radians, where
// an f32 angle is off by ~1e-4, so the angle and its reduction to [-pi, pi] are computed in
// double (a handful of double operations per pair and block) and only the reduced angle is
// rounded to f32 for sincosf: ~2e-7 absolute, the same order as the f32 rotation itself.
// cos and sin are then scaled by mscale (YaRN's and LongRoPE's attention factor; 1 otherwise).
#include <cmath>
#include <cstdint>

#include "ops.h"
#include "ops/rope.h"

FUSELM_CUDA_NAMESPACE_BEGIN

constexpr int kRopeHeadsPerBlock = 4;

template <bool NEOX>
static __global__ void rope_f32_kernel(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos0,
                                       double log2_base, double freq_scale, const float* ff, float mscale) {
  const int64_t t = blockIdx.x;
  const int64_t h0 = int64_t(blockIdx.y) * kRopeHeadsPerBlock;
  const int64_t h1 = h0 + kRopeHeadsPerBlock < n_heads ? h0 + kRopeHeadsPerBlock : n_heads;
  const int64_t half = n_rot / 2;
  const double pos = double(pos0 + t);
  float* xt = x + t * n_heads * head_dim;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    // base^(-2i/n_rot) as exp2(-2i/n_rot * log2(base)): within 1e-15 of the reference's pow
    double theta = pos * freq_scale * exp2(-2.0 * double(i) / double(n_rot) * log2_base);
    if (ff) theta /= double(ff[i]);
    const double two_pi = 6.283185307179586476925287;
    const float r = float(theta - rint(theta * (1.0 / two_pi)) * two_pi);
    const float c = cosf(r) * mscale, s = sinf(r) * mscale;
    const int64_t i0 = NEOX ? i : 2 * i, i1 = NEOX ? i + half : 2 * i + 1;
    for (int64_t h = h0; h < h1; h++) {
      float* p = xt + h * head_dim;
      const float x0 = p[i0], x1 = p[i1];
      p[i0] = x0 * c - x1 * s;
      p[i1] = x0 * s + x1 * c;
    }
  }
}

void rope_cuda(const RopeArgs& a, cudaStream_t stream) {
  if (a.T <= 0 || a.n_heads <= 0 || a.n_rot < 2) return;
  if (a.n_rot % 2 || a.n_rot > a.head_dim)
    throw Error("E_INVALID_ARG", "rope_cuda: n_rot must be even and at most head_dim");
  const int64_t half = a.n_rot / 2;
  int64_t threads = (half + 31) / 32 * 32;
  threads = threads > 256 ? 256 : threads;
  const dim3 grid(unsigned(a.T), unsigned((a.n_heads + kRopeHeadsPerBlock - 1) / kRopeHeadsPerBlock));
  const double log2_base = std::log2(double(a.theta_base));
  if (a.neox)
    launch_kernel("rope_f32_kernel<neox>", rope_f32_kernel<true>, grid, dim3(unsigned(threads)), 0, stream, a.x,
                  a.n_heads, a.head_dim, a.n_rot, a.pos0, log2_base, double(a.freq_scale), a.freq_factors, a.mscale);
  else
    launch_kernel("rope_f32_kernel<llama>", rope_f32_kernel<false>, grid, dim3(unsigned(threads)), 0, stream, a.x,
                  a.n_heads, a.head_dim, a.n_rot, a.pos0, log2_base, double(a.freq_scale), a.freq_factors, a.mscale);
}

FUSELM_CUDA_OP(rope_op::def, [](const Step& s, const CudaExec& x) { rope_cuda(rope_op::args(s), x.stream); });

FUSELM_CUDA_NAMESPACE_END
