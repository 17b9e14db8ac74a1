// The GGUF block formats, byte for byte as llama.cpp's ggml stores them (little-endian; a `d`,
// `m` or `dmin` is an f16 bit pattern). Plain structs with no host-only code, so the CUDA
// kernels include this header too. Every weight row holds whole blocks.
//
//   legacy, 32 values per block:
//     Q4_0   x = d * (nibble - 8)                low nibbles: values 0..15, high: 16..31
//     Q4_1   x = d * nibble + m
//     Q5_0   x = d * ((nibble | fifth << 4) - 16) bit j of qh: value j's fifth bit
//     Q5_1   x = d * (nibble | fifth << 4) + m
//     Q8_0   x = d * q
//     IQ4_NL x = d * kIq4nlValues[nibble]        (non-linear 4-bit grid)
//   k-quants, 256 values per super-block (kQK):
//     Q2_K   16 sub-blocks of 16, 4-bit scale and min per sub-block (scales[i]: low 4 scale,
//            high 4 min): x = d * sc * q2 - dmin * mn
//     Q3_K   16 sub-blocks of 16, 6-bit scales (12 bytes, offset 32), hmask the third bit
//            (set means +0, clear means -4): x = d * (sc - 32) * (q2 - 4 * !h)
//     Q4_K   8 sub-blocks of 32, 6-bit scale and min packed in 12 bytes: x = d*sc*q4 - dmin*mn
//     Q5_K   Q4_K with a fifth bit per value in qh
//     Q6_K   16 sub-blocks of 16, int8 scales: x = d * sc * (q6 - 32)
//     IQ4_XS 8 sub-blocks of 32, 6-bit scales (offset 32) split in scales_l / scales_h:
//            x = d * (sc - 32) * kIq4nlValues[nibble]
//   activations (never weights): Q8_1 (Q8_0 plus s = d * sum(q)), Q8_K (f32 d, 256 int8 and
//   the sums of each 16 of them).
#pragma once
#include <cstdint>

namespace fuselm {

constexpr int kQK = 256;  // values per k-quant super-block
constexpr int kQ32 = 32;  // values per legacy block

struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ8_1 { uint16_t d, s; int8_t qs[32]; };
struct BlockIQ4_NL { uint16_t d; uint8_t qs[16]; };

struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
struct BlockIQ4_XS { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; };
struct BlockQ8_K { float d; int8_t qs[256]; int16_t bsums[16]; };

static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block is 18 bytes");
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block is 20 bytes");
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block is 22 bytes");
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block is 24 bytes");
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes");
static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 block is 36 bytes");
static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block is 18 bytes");
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block is 84 bytes");
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block is 110 bytes");
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block is 144 bytes");
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block is 176 bytes");
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block is 210 bytes");
static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block is 136 bytes");
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block is 292 bytes");

// IQ4_NL / IQ4_XS: the value of each 4-bit index (before the block scale).
constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes: bytes
// 0-3 hold scales 0-3 (low 6 bits), 4-7 mins 0-3, 8-11 the low 4 bits of scale and min 4-7,
// whose high 2 bits sit in the top bits of bytes 0-3 (scales) and 4-7 (mins).
inline void k4_scale_min(const uint8_t* s, int j, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = uint8_t((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
    *mn = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Q3_K: the 16 6-bit scales (still offset by 32) from the 12 packed bytes: low 4 bits from
// bytes 0-7 (low nibble: scales 0-7, high nibble: 8-15), high 2 bits from bytes 8-11.
inline void q3k_scales(const uint8_t* s, int8_t out[16]) {
  for (int j = 0; j < 16; j++) {
    const int lo = j < 8 ? s[j] & 0x0f : s[j - 8] >> 4;
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = int8_t((lo | (hi << 4)) - 32);
  }
}

}  // namespace fuselm
