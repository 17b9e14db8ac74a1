// rope: rotary position embedding of x in place, llama (adjacent pairs) or NeoX layout.
#pragma once
#include "op.h"

namespace fuselm {

// In-place rotary position embedding on x [T, n_heads * head_dim]; token t is at position
// pos0 + t. The first n_rot dims of each head rotate by angle pos * freq_scale *
// theta_base^(-2i/n_rot) / freq_factors[i] for pair i (freq_factors [n_rot/2], null: all 1:
// Llama-3.1's rope_freqs, llama.cpp's freq_factors). Llama layout pairs (2i, 2i+1); NeoX pairs
// (i, i + n_rot/2). mscale multiplies cos and sin (the rotated dims only): YaRN's and LongRoPE's
// attention factor.
struct RopeArgs {
  float* x; int64_t T, n_heads, head_dim, n_rot, pos0; float theta_base, freq_scale; bool neox;
  const float* freq_factors = nullptr;
  float mscale = 1;
};
void rope_cpu(const RopeArgs& a, const Exec& e);

namespace rope_op {
enum Role { x, freq_factors };
enum Param { n_heads, head_dim, n_rot, theta_base, freq_scale, neox, mscale };
inline RopeArgs args(const Step& s) {
  const Node& n = s.node;
  return {s.rows_of(x), s.rows, n.i(n_heads), n.i(head_dim), n.i(n_rot), s.pos, n.f(theta_base), n.f(freq_scale), n.b(neox),
          s.data(freq_factors), n.f(mscale)};
}
inline const OpDef def = [] {
  OpDef d{
      "rope",
      {{"x", Access::InOut}, {"freqFactors", Access::In, false}},
      {{"nHeads", ParamType::Int, true, 0},
       {"headDim", ParamType::Int, true, 0},
       {"nRot", ParamType::Int, true, 0},
       {"thetaBase", ParamType::Float, true, 0},
       {"freqScale", ParamType::Float, false, 1},
       {"neox", ParamType::Bool, true, 0},
       {"mscale", ParamType::Float, false, 1}},
      [](const Check& c) {
        const Node& n = c.node;
        if (n.i(n_heads) < 1 || n.i(head_dim) < 1) c.fail("nHeads and headDim must be >= 1");
        c.activations({x}, n.i(n_heads) * n.i(head_dim));
        if (n.i(n_rot) < 2 || n.i(n_rot) % 2 || n.i(n_rot) > n.i(head_dim) || n.i(n_rot) > 1024)
          c.fail("nRot must be even, 2..min(headDim, 1024), got " + std::to_string(n.i(n_rot)));
        if (!(n.p[theta_base] > 0) || !(n.p[freq_scale] > 0) || !(n.p[mscale] > 0)) c.fail("thetaBase, freqScale and mscale must be > 0");
        if (c.has(freq_factors)) {
          c.f32(freq_factors);
          c.numel(freq_factors, n.i(n_rot) / 2);
        }
      },
  };
  d.positional = true;
  return d;
}();
}  // namespace rope_op

}  // namespace fuselm

// The CUDA launcher, declared where CUDA code includes this header (after cuda/common.cuh).
#ifdef FUSELM_CUDA_NAMESPACE_BEGIN
FUSELM_CUDA_NAMESPACE_BEGIN
void rope_cuda(const RopeArgs& a, cudaStream_t stream);  // cuda/rope.cu
FUSELM_CUDA_NAMESPACE_END
#endif
