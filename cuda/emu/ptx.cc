// Emulations of the tensor-core and async-copy instructions behind the wrappers in
// cuda/common.cuh, written from the PTX ISA's fragment layouts. With lane = %laneid,
// g = lane >> 2 (groupID) and t = lane % 4 (threadID_in_group):
//
// mma.m16n8k16 .f16/.bf16 (A 16x16 row, B 16x8 col, C/D 16x8 f32):
//   A regs r=0..3, two elements each (low half first): row g + 8*(r&1), cols 2t + 8*(r>>1) + {0,1}
//   B regs r=0..1: rows (k) 2t + 8r + {0,1}, col (n) g
//   C/D c0,c1: row g, cols 2t + {0,1};  c2,c3: row g + 8, cols 2t + {0,1}
// mma.m16n8k32 .s8 (A 16x32 row, B 32x8 col, C/D s32): four int8 per reg (low byte first)
//   A regs r=0..3: row g + 8*(r&1), cols 4t + 16*(r>>1) + {0..3}
//   B regs r=0..1: rows 4t + 16r + {0..3}, col g;  C/D as above
// ldmatrix.m8n8 .b16: lanes 8i..8i+7 give the row addresses of matrix i (x1: lanes 0-7, x2:
//   0-15, x4: all); register i of lane l holds matrix i's row l/4, cols 2(l%4) + {0,1};
//   with .trans it holds rows 2(l%4) + {0,1} of col l/4 (the transposed matrix's fragment).
#include <string>

#include "emu/internal.h"

namespace emu {

namespace {

void require_full_warp(unsigned mask, const char* what) {
  if (mask != 0xffffffffu)
    fail_here(std::string(what) + " needs all 32 lanes of the warp (.sync.aligned); participating lanes " +
              std::to_string(__builtin_popcount(mask)));
}

struct MmaF16In {
  uint32_t a[4], b[2];
  float c[4];
};

template <float (*cvt)(uint16_t)>
void mma_k16(const void* const* ins, void* const* outs, unsigned mask) {
  require_full_warp(mask, "mma.sync.m16n8k16");
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; lane++) {
    const MmaF16In& in = *static_cast<const MmaF16In*>(ins[lane]);
    const int g = lane >> 2, t = lane & 3;
    for (int r = 0; r < 4; r++) {
      const int row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);
      A[row][col] = cvt(uint16_t(in.a[r] & 0xffff));
      A[row][col + 1] = cvt(uint16_t(in.a[r] >> 16));
    }
    for (int r = 0; r < 2; r++) {
      const int k = 2 * t + 8 * r;
      B[k][g] = cvt(uint16_t(in.b[r] & 0xffff));
      B[k + 1][g] = cvt(uint16_t(in.b[r] >> 16));
    }
    C[g][2 * t] = in.c[0];
    C[g][2 * t + 1] = in.c[1];
    C[g + 8][2 * t] = in.c[2];
    C[g + 8][2 * t + 1] = in.c[3];
  }
  // Products of 16-bit floats are exact in f32; the sum is accumulated in f32 in k order
  // (the tensor core's internal order and rounding differ in the last bits).
  float D[16][8];
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 8; j++) {
      float acc = C[i][j];
      for (int k = 0; k < 16; k++) acc += A[i][k] * B[k][j];
      D[i][j] = acc;
    }
  for (int lane = 0; lane < 32; lane++) {
    float* d = static_cast<float*>(outs[lane]);
    const int g = lane >> 2, t = lane & 3;
    d[0] = D[g][2 * t];
    d[1] = D[g][2 * t + 1];
    d[2] = D[g + 8][2 * t];
    d[3] = D[g + 8][2 * t + 1];
  }
}

struct MmaS8In {
  uint32_t a[4], b[2];
  int32_t c[4];
};

void mma_k32_s8(const void* const* ins, void* const* outs, unsigned mask) {
  require_full_warp(mask, "mma.sync.m16n8k32.s8");
  int32_t A[16][32], B[32][8], C[16][8];
  for (int lane = 0; lane < 32; lane++) {
    const MmaS8In& in = *static_cast<const MmaS8In*>(ins[lane]);
    const int g = lane >> 2, t = lane & 3;
    for (int r = 0; r < 4; r++)
      for (int e = 0; e < 4; e++) A[g + 8 * (r & 1)][4 * t + 16 * (r >> 1) + e] = int8_t(in.a[r] >> (8 * e));
    for (int r = 0; r < 2; r++)
      for (int e = 0; e < 4; e++) B[4 * t + 16 * r + e][g] = int8_t(in.b[r] >> (8 * e));
    C[g][2 * t] = in.c[0];
    C[g][2 * t + 1] = in.c[1];
    C[g + 8][2 * t] = in.c[2];
    C[g + 8][2 * t + 1] = in.c[3];
  }
  for (int lane = 0; lane < 32; lane++) {
    int32_t* d = static_cast<int32_t*>(outs[lane]);
    const int g = lane >> 2, t = lane & 3;
    for (int q = 0; q < 4; q++) {
      const int i = g + 8 * (q >> 1), j = 2 * t + (q & 1);
      // wrapping s32 accumulation (no .satfinite), computed without signed overflow
      uint32_t acc = uint32_t(C[i][j]);
      for (int k = 0; k < 32; k++) acc += uint32_t(A[i][k] * B[k][j]);
      d[q] = int32_t(acc);
    }
  }
}

template <int NUM, bool TRANS>
void ldmatrix_fn(const void* const* ins, void* const* outs, unsigned mask) {
  require_full_warp(mask, "ldmatrix");
  const uint16_t* rows[32];
  for (int i = 0; i < 8 * NUM; i++) {
    const void* p = *static_cast<const void* const*>(ins[i]);
    if (reinterpret_cast<uintptr_t>(p) % 16)
      fail_here("ldmatrix: the row address of lane " + std::to_string(i) + " is not 16-byte aligned");
    check_smem(p, 16, "ldmatrix");
    rows[i] = static_cast<const uint16_t*>(p);
  }
  for (int l = 0; l < 32; l++) {
    uint32_t* r = static_cast<uint32_t*>(outs[l]);
    for (int m = 0; m < NUM; m++) {
      uint16_t lo, hi;
      if (!TRANS) {
        lo = rows[8 * m + l / 4][2 * (l % 4)];
        hi = rows[8 * m + l / 4][2 * (l % 4) + 1];
      } else {
        lo = rows[8 * m + 2 * (l % 4)][l / 4];
        hi = rows[8 * m + 2 * (l % 4) + 1][l / 4];
      }
      r[m] = uint32_t(lo) | uint32_t(hi) << 16;
    }
  }
}

}  // namespace

void mma_m16n8k16_f16f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  MmaF16In in{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {c[0], c[1], c[2], c[3]}};
  float out[4];
  warp_collective(0xffffffffu, mma_k16<fuselm::f16_to_f32>, &in, out, "mma.sync.m16n8k16.f16");
  for (int i = 0; i < 4; i++) d[i] = out[i];
}

void mma_m16n8k16_bf16f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  MmaF16In in{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {c[0], c[1], c[2], c[3]}};
  float out[4];
  warp_collective(0xffffffffu, mma_k16<fuselm::bf16_to_f32>, &in, out, "mma.sync.m16n8k16.bf16");
  for (int i = 0; i < 4; i++) d[i] = out[i];
}

void mma_m16n8k32_s8s32(int32_t (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const int32_t (&c)[4]) {
  MmaS8In in{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {c[0], c[1], c[2], c[3]}};
  int32_t out[4];
  warp_collective(0xffffffffu, mma_k32_s8, &in, out, "mma.sync.m16n8k32.s8");
  for (int i = 0; i < 4; i++) d[i] = out[i];
}

void ldmatrix(uint32_t* r, int num, bool trans, const void* smem_row) {
  static const CollectiveFn fns[2][3] = {{ldmatrix_fn<1, false>, ldmatrix_fn<2, false>, ldmatrix_fn<4, false>},
                                         {ldmatrix_fn<1, true>, ldmatrix_fn<2, true>, ldmatrix_fn<4, true>}};
  uint32_t out[4];
  warp_collective(0xffffffffu, fns[trans][num == 1 ? 0 : num == 2 ? 1 : 2], &smem_row, out, "ldmatrix");
  for (int i = 0; i < num; i++) r[i] = out[i];
}

void cp_async(void* smem_dst, const void* src, int src_bytes) {
  Fiber& f = current_fiber();
  if (reinterpret_cast<uintptr_t>(smem_dst) % 16 || reinterpret_cast<uintptr_t>(src) % 16)
    fail_here("cp.async of 16 bytes needs 16-byte aligned source and destination");
  if (src_bytes < 0 || src_bytes > 16) fail_here("cp.async src-size must be in [0, 16]");
  check_smem(smem_dst, 16, "cp.async");
  PendingCopy c;
  c.dst = smem_dst;
  c.group = f.open_group;
  std::memset(c.data, 0, 16);
  if (src_bytes) std::memcpy(c.data, src, size_t(src_bytes));
  f.pending.push_back(c);
}

void cp_async_commit() { current_fiber().open_group++; }

// Copies land only at the wait, so a kernel that reads its tile before waiting sees the
// poisoned arena instead of data that happened to arrive early.
void cp_async_wait(int n) {
  Fiber& f = current_fiber();
  const int done_below = f.open_group - n;
  size_t keep = 0;
  for (size_t i = 0; i < f.pending.size(); i++) {
    PendingCopy& c = f.pending[i];
    if (c.group < done_below) std::memcpy(c.dst, c.data, 16);
    else f.pending[keep++] = c;
  }
  f.pending.resize(keep);
}

}  // namespace emu
