// matmul on weights in the GGUF block formats, as stored (native/quant_blocks.h), with the
// activations quantized the way llama.cpp quantizes them for each format (its vec_dot_type),
// so the integer dot products, and so the tokens, are llama.cpp's:
//   Q8_K (f32 d per 256 values, int8, sums of each 16)  for Q2_K..Q6_K, IQ4_XS
//   Q8_0 (d rounded to f16, per 32)                     for Q5_0, IQ4_NL
//   Q8_0 and -8 * sum(q) per 32                         for Q4_0 (its offset term)
//   Q8_1 (Q8_0 and s = d * sum(q), per 32)              for Q4_1, Q5_1 (y += m * s per block)
//   Q8_0 and its offset term in groups of 4 blocks       for Q4_0 under 4 tokens (decode)
//
// Every level computes the same int32 lanes exactly: lane l (of 8) of a superblock holds the
// products of bytes 4l..4l+3 of each 32-value group, times that group's scale (the layout of
// AVX2's maddubs + madd; AVX-512 folds its 16 lanes to these 8), and the min or offset term per
// lane. Lane l accumulates in f32, fma(dx * d, float(lane), acc[l]), over the superblocks, and
// the 8 lanes are summed once per output in one fixed order (lanes_sum). So every level returns
// the same bits as the integer reference, and the parity cases hold them to it exactly. (One
// scalar sum per superblock would cost a horizontal reduction per 256 products: it halved the
// prefill speed.)
// Q4_0 and Q4_K are the exceptions: they keep llama.cpp's repacked order, so their outputs are
// its bits, with a vector lane per weight row: Q4_0 one exact int32 sum and one fma per 32-value
// block (matmul_q4_0_blocksum.cc), Q4_K one per pair of sub-blocks or per superblock (matmul_q4_k.cc).
//
// The driver (matmul_quant.cc) quantizes x once per call, then walks row tasks; a tile is one
// weight row against up to 4 or 8 tokens, so each weight block is unpacked once per 4 or 8 tokens,
// or (formats with a rows tile) 4 rows against up to 4 tokens (Q4_0: 16 rows, up to 16 tokens;
// Q4_K: 16 rows, up to 8).
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/cpu_features.h"
#include "ops/matmul.h"

namespace fuselm {

// The activation format a weight format is dotted with.
enum class QAct { Q8_K, Q8_0, Q8_1, Q8_0Off, Q8_0x4 };

// Q8_0 activations as the kernels read them: the f16-rounded scale kept as f32.
struct BlockQ8_0x { float d; int8_t qs[32]; };
// Q8_1 (llama.cpp's x86 quantize_row_q8_1): Q8_0's d and q, and s = (max|x| / 127) * sum(q)
// rounded to f16, both kept as f32.
struct BlockQ8_1x { float d; int8_t qs[32]; float s; };
// Q8_0 for Q4_0 (value = nibble - 8): Q8_0's d and q, and off = -8 * sum(q), the block's offset
// term, made once per call rather than once per row tile.
struct BlockQ8_0off { float d; int8_t qs[32]; int32_t off; };
// BlockQ8_0off's values of 4 consecutive blocks as Q4_0's decode reads them (each block's first
// 16 values dot the low nibbles of its 16 bytes, the last 16 the high ones), with each block's
// offset term and d repeated 4 times (one lane per row of a 4-row tile). A row of nb blocks takes
// ceil(nb / 4) groups; the unused blocks of a last partial group are zero.
struct BlockQ8_0x4 { int8_t lo[64]; int8_t hi[64]; int32_t off[16]; float d[16]; };

// y[t * ys] = row w · token t's quantized activations (at xq + t * xs) for t < TT (1..max_tokens).
using QuantTileFn = void (*)(const uint8_t* w, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y, int64_t ys);
// The same for kTileRows rows at once (row r at w + r * ws): y[t * ys + r * yr]. Each row's
// outputs are the single-row tile's bits; per-token work (loading x, its offsets and scales) is
// shared by the rows, per-row work (unpacking a block) by the tokens.
constexpr int kTileRows = 4;
using QuantRowsFn = void (*)(const uint8_t* w, size_t ws, const uint8_t* xq, size_t xs, int64_t K, int TT, float* y,
                             int64_t yr, int64_t ys);

struct QuantKernel {
  QAct act;
  QuantTileFn tile;  // null: no kernel for this dtype
  int max_tokens = 4;  // the most tokens one tile call takes
  QuantRowsFn rows = nullptr;  // rows_n rows at once, up to max_tokens tokens (null: one row at a time)
  int rows_n = kTileRows;
  // The kernel for the call's last T % 4 tokens, which llama.cpp's repacked Q4_K GEMM leaves to
  // its GEMV, summed in another order (matmul_q4_k.cc); null: this kernel for every token.
  const QuantKernel* tail = nullptr;
};

// Decode tiles with 4 row streams (AVX-512: f32/f16/bf16, q8_0, the Q4_0 family) prefetch every
// stream kPrefetchAhead bytes (about one 2048-wide q8_0 row) ahead: the per-block work keeps too
// few loads in flight for the hardware prefetchers alone. Measured (TinyLlama decode, 1 thread,
// CPU time of a whole 96-token run (64 for f16), 3 runs each, on a loaded host): q8_0 none
// 10.03-10.26 s, 1024 ahead 9.21-9.53 s, 2048 8.40-8.46 s, 4096 8.74-9.43 s; q4_0 none
// 8.12-8.23 s, 1024 6.48-6.81 s, 2048 6.19-6.75 s; f16 none 10.51-11.19 s, 1024 10.33-10.89 s, 2048 9.38-9.69 s.
constexpr size_t kPrefetchAhead = 2048;
inline void prefetch_ahead(const void* p) { __builtin_prefetch(static_cast<const char*>(p) + kPrefetchAhead); }

// The 8 lanes' sum in the order of simd256::hsum: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
inline float lanes_sum(const float a[8]) {
  const float s0 = a[0] + a[4], s1 = a[1] + a[5], s2 = a[2] + a[6], s3 = a[3] + a[7];
  return (s0 + s2) + (s1 + s3);
}

// Per format family (one file each): the kernel of `impl` (kReference: the integer reference).
QuantKernel q4_k_kernel(DType dt, Impl impl, int64_t T, bool gemv_order);  // Q4_K, Q5_K: matmul_q4_k.cc
QuantKernel q6_k_kernel(Impl impl);            // matmul_q6_k.cc
QuantKernel legacy_q8_0_kernel(DType dt, Impl impl);  // Q5_0, IQ4_NL, Q4_1, Q5_1: matmul_q4_0.cc
QuantKernel q4_0_kernel(Impl impl, int64_t T);         // matmul_q4_0_blocksum.cc (T: the call's tokens)
QuantKernel iq4_xs_kernel(Impl impl);                  // matmul_iq4_xs.cc
QuantKernel q2_k_kernel(DType dt, Impl impl);          // Q2_K, Q3_K: matmul_q2_k.cc

// True when dt is a block format with a quantized kernel; matmul_quant_cpu then runs it.
bool has_quant_kernel(DType dt);
void matmul_quant_cpu(const MatmulArgs& a, const Exec& e);

// llama.cpp's quantize_row_q8_K_ref: per 256 values, max = the value of largest magnitude,
// iscale = -127 / max, q = min(127, round-to-even(iscale * x)), d = 1 / iscale, bsums = sums
// of each 16 q. An all-zero block gets d = 0, q = 0.
void quantize_row_q8_k(const float* x, int64_t K, BlockQ8_K* y);
// As matmul.cc's q8_0 activations: d = max|x| / 127 rounded to f16, q = round-to-even(x * 127 / max|x|).
void quantize_row_q8_0x(const float* x, int64_t K, BlockQ8_0x* y, Impl impl);
void quantize_row_q8_1x(const float* x, int64_t K, BlockQ8_1x* y, Impl impl);
void quantize_row_q8_0off(const float* x, int64_t K, BlockQ8_0off* y, Impl impl);
void quantize_row_q8_0x4(const float* x, int64_t K, BlockQ8_0x4* y, Impl impl);
// matmul.cc's q8_0 activation quantizer of a level (x [K] -> q [K], d [K / 32]); all give the same bits.
using QuantizeQ8Fn = void (*)(const float* x, int64_t K, int8_t* q, float* d);
QuantizeQ8Fn quantize_q8_fn(Impl impl);

}  // namespace fuselm
