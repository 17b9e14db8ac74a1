// Shuffles and votes as warp collectives, with the lane arithmetic of the CUDA programming
// guide: a width-w shuffle works within segments of w lanes; up/down that would leave the
// segment return the caller's own value, and so does xor reaching into a later segment.
#include <string>

#include "emu/internal.h"

namespace emu {

namespace {

int checked_width(const ShflIn& in) {
  const int w = in.width;
  if (w < 1 || w > 32 || (w & (w - 1)))
    fail_here("shuffle width " + std::to_string(w) + " is not a power of two in [1, 32]");
  return w;
}

template <class SrcLane>
void shuffle(const void* const* ins, void* const* outs, unsigned mask, SrcLane src_lane) {
  for (unsigned m = mask; m; m &= m - 1) {
    const unsigned l = unsigned(__builtin_ctz(m));
    const ShflIn& me = *static_cast<const ShflIn*>(ins[l]);
    const unsigned src = src_lane(l, me, unsigned(checked_width(me)));
    if (!(mask >> src & 1u))
      fail_here("lane " + std::to_string(l) + " shuffles from lane " + std::to_string(src) +
                ", which is not in the mask (its value is undefined on the GPU)");
    *static_cast<uint64_t*>(outs[l]) = static_cast<const ShflIn*>(ins[src])->v;
  }
}

void shfl_idx(const void* const* ins, void* const* outs, unsigned mask) {
  shuffle(ins, outs, mask, [](unsigned l, const ShflIn& in, unsigned w) {
    return (l & ~(w - 1)) + (unsigned(in.arg) & (w - 1));
  });
}
void shfl_up(const void* const* ins, void* const* outs, unsigned mask) {
  shuffle(ins, outs, mask, [](unsigned l, const ShflIn& in, unsigned w) {
    return (l & (w - 1)) < unsigned(in.arg) ? l : l - unsigned(in.arg);
  });
}
void shfl_down(const void* const* ins, void* const* outs, unsigned mask) {
  shuffle(ins, outs, mask, [](unsigned l, const ShflIn& in, unsigned w) {
    return (l & (w - 1)) + unsigned(in.arg) >= w ? l : l + unsigned(in.arg);
  });
}
void shfl_xor(const void* const* ins, void* const* outs, unsigned mask) {
  shuffle(ins, outs, mask, [](unsigned l, const ShflIn& in, unsigned w) {
    const unsigned j = l ^ unsigned(in.arg);
    return j >= (l & ~(w - 1)) + w ? l : j;
  });
}

void vote_fn(const void* const* ins, void* const* outs, unsigned mask) {
  unsigned ballot = 0;
  for (unsigned m = mask; m; m &= m - 1) {
    const unsigned l = unsigned(__builtin_ctz(m));
    if (*static_cast<const int*>(ins[l])) ballot |= 1u << l;
  }
  for (unsigned m = mask; m; m &= m - 1) *static_cast<Vote*>(outs[__builtin_ctz(m)]) = Vote{ballot, mask};
}

void syncwarp_fn(const void* const*, void* const*, unsigned) {}

}  // namespace

const CollectiveFn kShflFns[4] = {shfl_idx, shfl_up, shfl_down, shfl_xor};

Vote vote(unsigned mask, int pred, const char* what) {
  Vote out{0, 0};
  warp_collective(mask, vote_fn, &pred, &out, what);
  return out;
}

void syncwarp(unsigned mask) { warp_collective(mask, syncwarp_fn, nullptr, nullptr, "__syncwarp"); }

}  // namespace emu
