// GGUF block formats in device code, as "units" of 32 consecutive weights along K: every format
// (legacy blocks of 32 values, k-quant super-blocks of 256 = 8 units) is read a unit at a time
// by one thread, into the shape both quantized matmul kernels use:
//
//   weight i (0..31) = a[i / 16] * q[i] + b[i / 16]
//
// q: 32 int8 packed 4 to a word (byte i % 4 of word i / 4, K order), ready for __dp4a against
// int8 activations; a: the scale of each half (Q2_K, Q3_K and Q6_K scale every 16 values; the
// rest repeat one); b: the offset of each half, zero (and kOffset false) for the formats whose
// offset is folded into q as signed int8 (Q4_0's "- 8", Q5_0's "- 16", Q3_K's "- 4", Q6_K's
// "- 32": exact, and it saves the kernels a sum of the activations). The byte layouts are
// GGUF's (native/quant_blocks.h describes each formula); QUnit<DT>::decode(block, j, u) reads
// unit j of the block at `block`. q8_0 is the exception: on the device it is two planes
// (cuda/q8_0_planes.cuh), so its QUnit has the format's constants but no decode;
// weight_unit<DT> reads unit u of a weight row in any format, q8_0 included.
//
// Loads: a unit's quant bytes are read as runs of words (ld32n): 16-byte loads where aligned
// (q4_k, q5_k from a 16-byte aligned tensor), 4-byte loads for the formats whose blocks and
// fields are 4-byte multiples (kAlign4: the launchers require 4-byte aligned weights), and for
// the others (18-, 22-, 110- and 210-byte blocks: 2-byte aligned, every other block 2 past a
// 4-byte boundary) aligned words rebuilt from halves; q8_0's planes by two 16-byte loads.
#pragma once
#include <cstdint>
#include <string>

#include "convert.cuh"
#include "ops.h"
#include "q8_0_planes.cuh"

FUSELM_CUDA_NAMESPACE_BEGIN

// The checks both quantized matmul launchers make first (`who` names the launcher in errors):
// a weight type it runs, rows of whole blocks; and the empty cases, done here (K = 0 writes
// zeros). False: nothing is left to launch.
inline bool quant_matmul_prologue(const MatmulArgs& a, bool supported, const char* who, cudaStream_t stream) {
  if (!supported) throw Error("E_INVALID_ARG", std::string(who) + ": unsupported weight dtype " + dtype_name(a.w_dtype));
  if (a.T <= 0 || a.N <= 0) return false;
  if (a.K <= 0) {
    CUDA_CHECK(cudaMemsetAsync(a.y, 0, size_t(a.T * a.N) * sizeof(float), stream));
    return false;
  }
  const int64_t per_block = dtype_block(a.w_dtype).values;
  if (a.K % per_block)
    throw Error("E_INVALID_ARG", std::string(who) + ": " + dtype_name(a.w_dtype) + " rows must hold whole blocks of " + std::to_string(per_block));
  return true;
}

struct QUnitVals {
  uint32_t q[8];
  float a[2], b[2];
};

// N consecutive little-endian words from p, in as few loads as its alignment allows: 16-byte
// loads when p is 16-byte aligned (N % 4 == 0), 4-byte loads when 4-byte aligned, and for p 2
// past a 4-byte boundary (every other block of the 18-, 22-, 34-, 110- and 210-byte formats) a
// 2-byte load, N - 1 aligned words and a 2-byte load, each word then rebuilt from two halves:
// N + 1 loads instead of 2N, nothing read outside [p, p + 4N).
template <int N, bool A4>
__device__ __forceinline__ void ld32n(const uint8_t* p, uint32_t (&w)[N]) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (N % 4 == 0 && (a & 15) == 0) {
    for (int i = 0; i < N / 4; i++) {
      const uint4 v = reinterpret_cast<const uint4*>(p)[i];
      w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
    }
  } else if (A4 || (a & 3) == 0) {
    for (int i = 0; i < N; i++) w[i] = reinterpret_cast<const uint32_t*>(p)[i];
  } else {
    const uint32_t first = *reinterpret_cast<const uint16_t*>(p), last = *reinterpret_cast<const uint16_t*>(p + 4 * N - 2);
    uint32_t v[N - 1 > 0 ? N - 1 : 1];
    for (int i = 0; i < N - 1; i++) v[i] = reinterpret_cast<const uint32_t*>(p + 2)[i];
    for (int i = 0; i < N; i++) w[i] = (i == 0 ? first : v[i - 1] >> 16) | (i == N - 1 ? last : v[i] & 0xffffu) << 16;
  }
}
__device__ __forceinline__ float ldf16(const uint8_t* p) { return f16_bits_to_f32(*reinterpret_cast<const uint16_t*>(p)); }

// Bytes holding values in [0, 2^(P+1)) minus 2^P, as int8, without borrows between bytes: for
// v >= 2^P that is v ^ 2^P; for v < 2^P it is v ^ 2^P with bits P+1..7 set (2^(8-P) - 2 times
// the cleared bit P).
template <int P>
__device__ __forceinline__ uint32_t sub_pow2_bytes(uint32_t v) {
  constexpr uint32_t m = 0x01010101u << P;
  return (v ^ m) | ((~v & m) * ((1u << (8 - P)) - 2));
}

// Bits 0..3 of `bits` to bit `to` of bytes 0..3.
template <int TO>
__device__ __forceinline__ uint32_t spread4(uint32_t bits) {
  return ((bits & 1u) | (bits & 2u) << 7 | (bits & 4u) << 14 | (bits & 8u) << 21) << TO;
}

// IQ4_NL's non-linear grid (native/quant_blocks.h's kIq4nlValues, checked below), as int8
// bytes packed four to a word, looked up by selects so it stays in registers.
constexpr uint32_t iq4nl_packed(int i) {
  return uint32_t(uint8_t(kIq4nlValues[4 * i])) | uint32_t(uint8_t(kIq4nlValues[4 * i + 1])) << 8 |
         uint32_t(uint8_t(kIq4nlValues[4 * i + 2])) << 16 | uint32_t(uint8_t(kIq4nlValues[4 * i + 3])) << 24;
}
static_assert(iq4nl_packed(0) == 0xbfad9881u && iq4nl_packed(1) == 0xf6eaddcfu && iq4nl_packed(2) == 0x26190d01u &&
                  iq4nl_packed(3) == 0x71594535u,
              "iq4nl_byte's words are kIq4nlValues");
__device__ __forceinline__ uint32_t iq4nl_byte(uint32_t n) {
  const uint32_t t0 = 0xbfad9881u, t1 = 0xf6eaddcfu, t2 = 0x26190d01u, t3 = 0x71594535u;
  const uint32_t t = n & 8 ? (n & 4 ? t3 : t2) : (n & 4 ? t1 : t0);
  return (t >> (8 * (n & 3))) & 0xffu;
}
__device__ __forceinline__ uint32_t iq4nl_word(uint32_t nibbles) {  // 4 nibbles in bytes 0..3
  return iq4nl_byte(nibbles & 15) | iq4nl_byte((nibbles >> 8) & 15) << 8 | iq4nl_byte((nibbles >> 16) & 15) << 16 |
         iq4nl_byte((nibbles >> 24) & 15) << 24;
}

__device__ __forceinline__ void set_scales(QUnitVals& u, float a0, float a1, float b0, float b1) {
  u.a[0] = a0, u.a[1] = a1, u.b[0] = b0, u.b[1] = b1;
}

template <DType DT> struct QUnit;

// Legacy formats: one unit per block; low nibbles are values 0..15, high nibbles 16..31.
template <> struct QUnit<DType::Q8_0> {  // planes on the device: read by weight_unit
  static constexpr int kValues = 32, kBytes = 34;
  static constexpr bool kAlign4 = false, kOffset = false;
};

template <> struct QUnit<DType::Q4_0> {  // d, qs[16]
  static constexpr int kValues = 32, kBytes = 18;
  static constexpr bool kAlign4 = false, kOffset = false;
  __device__ __forceinline__ static void decode(const uint8_t* p, int, QUnitVals& u) {
    const float d = ldf16(p);
    uint32_t qs[4];
    ld32n<4, false>(p + 2, qs);
    for (int w = 0; w < 4; w++) {
      u.q[w] = sub_pow2_bytes<3>(qs[w] & 0x0f0f0f0fu);
      u.q[w + 4] = sub_pow2_bytes<3>((qs[w] >> 4) & 0x0f0f0f0fu);
    }
    set_scales(u, d, d, 0.f, 0.f);
  }
};

template <> struct QUnit<DType::Q4_1> {  // d, m, qs[16]
  static constexpr int kValues = 32, kBytes = 20;
  static constexpr bool kAlign4 = true, kOffset = true;
  __device__ __forceinline__ static void decode(const uint8_t* p, int, QUnitVals& u) {
    const float d = ldf16(p), m = ldf16(p + 2);
    uint32_t qs[4];
    ld32n<4, true>(p + 4, qs);
    for (int w = 0; w < 4; w++) {
      u.q[w] = qs[w] & 0x0f0f0f0fu;
      u.q[w + 4] = (qs[w] >> 4) & 0x0f0f0f0fu;
    }
    set_scales(u, d, d, m, m);
  }
};

template <> struct QUnit<DType::Q5_0> {  // d, qh[4] (bit j: value j's fifth bit), qs[16]
  static constexpr int kValues = 32, kBytes = 22;
  static constexpr bool kAlign4 = false, kOffset = false;
  __device__ __forceinline__ static void decode(const uint8_t* p, int, QUnitVals& u) {
    const float d = ldf16(p);
    uint32_t v[5];  // qh, then qs
    ld32n<5, false>(p + 2, v);
    for (int w = 0; w < 4; w++) {
      u.q[w] = sub_pow2_bytes<4>((v[1 + w] & 0x0f0f0f0fu) | spread4<4>(v[0] >> (4 * w)));
      u.q[w + 4] = sub_pow2_bytes<4>(((v[1 + w] >> 4) & 0x0f0f0f0fu) | spread4<4>(v[0] >> (16 + 4 * w)));
    }
    set_scales(u, d, d, 0.f, 0.f);
  }
};

template <> struct QUnit<DType::Q5_1> {  // d, m, qh[4], qs[16]
  static constexpr int kValues = 32, kBytes = 24;
  static constexpr bool kAlign4 = true, kOffset = true;
  __device__ __forceinline__ static void decode(const uint8_t* p, int, QUnitVals& u) {
    const float d = ldf16(p), m = ldf16(p + 2);
    uint32_t v[5];  // qh, then qs
    ld32n<5, true>(p + 4, v);
    for (int w = 0; w < 4; w++) {
      u.q[w] = (v[1 + w] & 0x0f0f0f0fu) | spread4<4>(v[0] >> (4 * w));
      u.q[w + 4] = ((v[1 + w] >> 4) & 0x0f0f0f0fu) | spread4<4>(v[0] >> (16 + 4 * w));
    }
    set_scales(u, d, d, m, m);
  }
};

template <> struct QUnit<DType::IQ4_NL> {  // d, qs[16]: indices into the grid
  static constexpr int kValues = 32, kBytes = 18;
  static constexpr bool kAlign4 = false, kOffset = false;
  __device__ __forceinline__ static void decode(const uint8_t* p, int, QUnitVals& u) {
    const float d = ldf16(p);
    uint32_t qs[4];
    ld32n<4, false>(p + 2, qs);
    for (int w = 0; w < 4; w++) {
      u.q[w] = iq4nl_word(qs[w] & 0x0f0f0f0fu);
      u.q[w + 4] = iq4nl_word((qs[w] >> 4) & 0x0f0f0f0fu);
    }
    set_scales(u, d, d, 0.f, 0.f);
  }
};

// k-quants: 8 units per 256-value super-block.

// Q2_K: scales[16] (low nibble scale, high nibble min, per 16 values), qs[64], d, dmin. Unit
// j = 4h + s holds values 128h + 32s .. + 31: bits 2s..2s+1 of qs[32h + i].
template <> struct QUnit<DType::Q2_K> {
  static constexpr int kValues = 256, kBytes = 84;
  static constexpr bool kAlign4 = true, kOffset = true;
  __device__ __forceinline__ static void decode(const uint8_t* p, int j, QUnitVals& u) {
    const float d = ldf16(p + 80), dmin = ldf16(p + 82);
    const int h = j >> 2, s = j & 3;
    uint32_t qs[8];
    ld32n<8, true>(p + 16 + 32 * h, qs);
    for (int w = 0; w < 8; w++) u.q[w] = (qs[w] >> (2 * s)) & 0x03030303u;
    const uint32_t sc0 = p[2 * j], sc1 = p[2 * j + 1];
    set_scales(u, d * float(sc0 & 15), d * float(sc1 & 15), -dmin * float(sc0 >> 4), -dmin * float(sc1 >> 4));
  }
};

// Q3_K: hmask[32], qs[64], scales[12] (16 6-bit scales, offset 32), d. Unit j = 4h + s: low 2
// bits as Q2_K's, the third from bit j of hmask[i] (clear means -4, so value = (q3 | h << 2) - 4).
template <> struct QUnit<DType::Q3_K> {
  static constexpr int kValues = 256, kBytes = 110;
  static constexpr bool kAlign4 = false, kOffset = false;
  __device__ __forceinline__ static int scale(const uint8_t* sc, int i) {
    const int lo = i < 8 ? sc[i] & 15 : sc[i - 8] >> 4;
    const int hi = (sc[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    return (lo | hi << 4) - 32;
  }
  __device__ __forceinline__ static void decode(const uint8_t* p, int j, QUnitVals& u) {
    const float d = ldf16(p + 108);
    const int h = j >> 2, s = j & 3;
    uint32_t qs[8], hm[8];
    ld32n<8, false>(p + 32 + 32 * h, qs);
    ld32n<8, false>(p, hm);
    for (int w = 0; w < 8; w++) u.q[w] = sub_pow2_bytes<2>(((qs[w] >> (2 * s)) & 0x03030303u) | ((hm[w] >> j) & 0x01010101u) << 2);
    set_scales(u, d * float(scale(p + 96, 2 * j)), d * float(scale(p + 96, 2 * j + 1)), 0.f, 0.f);
  }
};

// Q4_K / Q5_K: the 6-bit scale and min of unit j from the 12 packed bytes at sc.
__device__ __forceinline__ void k4_scale_min_dev(const uint8_t* sc, int j, int& s, int& m) {
  if (j < 4) {
    s = sc[j] & 63;
    m = sc[j + 4] & 63;
  } else {
    s = (sc[j + 4] & 15) | (sc[j - 4] >> 6) << 4;
    m = (sc[j + 4] >> 4) | (sc[j] >> 6) << 4;
  }
}

// Q4_K: d, dmin, scales[12], qs[128]. Units 2c and 2c + 1 are the low and high nibbles of
// qs[32c .. 32c + 31].
template <> struct QUnit<DType::Q4_K> {
  static constexpr int kValues = 256, kBytes = 144;
  static constexpr bool kAlign4 = true, kOffset = true;
  __device__ __forceinline__ static void decode(const uint8_t* p, int j, QUnitVals& u) {
    const float d = ldf16(p), dmin = ldf16(p + 2);
    const int shift = 4 * (j & 1);
    uint32_t qs[8];
    ld32n<8, true>(p + 16 + 32 * (j >> 1), qs);
    for (int w = 0; w < 8; w++) u.q[w] = (qs[w] >> shift) & 0x0f0f0f0fu;
    int s, m;
    k4_scale_min_dev(p + 4, j, s, m);
    set_scales(u, d * float(s), d * float(s), -dmin * float(m), -dmin * float(m));
  }
};

// Q5_K: d, dmin, scales[12], qh[32], qs[128]: Q4_K's nibbles plus bit j of qh[i] as the fifth.
template <> struct QUnit<DType::Q5_K> {
  static constexpr int kValues = 256, kBytes = 176;
  static constexpr bool kAlign4 = true, kOffset = true;
  __device__ __forceinline__ static void decode(const uint8_t* p, int j, QUnitVals& u) {
    const float d = ldf16(p), dmin = ldf16(p + 2);
    const int shift = 4 * (j & 1);
    uint32_t qs[8], qh[8];
    ld32n<8, true>(p + 48 + 32 * (j >> 1), qs);
    ld32n<8, true>(p + 16, qh);
    for (int w = 0; w < 8; w++) u.q[w] = ((qs[w] >> shift) & 0x0f0f0f0fu) | ((qh[w] >> j) & 0x01010101u) << 4;
    int s, m;
    k4_scale_min_dev(p + 4, j, s, m);
    set_scales(u, d * float(s), d * float(s), -dmin * float(m), -dmin * float(m));
  }
};

// Q6_K: ql[128], qh[64], scales[16] (int8, per 16 values), d. Unit j = 4h + g (values 128h +
// 32g + i): low 4 bits from ql[64h + 32(g & 1) + i] (high nibble when g >= 2), high 2 bits
// from bits 2g, 2g + 1 of qh[32h + i]; value (q6 - 32).
template <> struct QUnit<DType::Q6_K> {
  static constexpr int kValues = 256, kBytes = 210;
  static constexpr bool kAlign4 = false, kOffset = false;
  __device__ __forceinline__ static void decode(const uint8_t* p, int j, QUnitVals& u) {
    const float d = ldf16(p + 208);
    const int h = j >> 2, g = j & 3;
    uint32_t ql[8], qh[8];
    ld32n<8, false>(p + 64 * h + 32 * (g & 1), ql);
    ld32n<8, false>(p + 128 + 32 * h, qh);
    for (int w = 0; w < 8; w++)
      u.q[w] = sub_pow2_bytes<5>(((ql[w] >> (4 * (g >> 1))) & 0x0f0f0f0fu) | ((qh[w] >> (2 * g)) & 0x03030303u) << 4);
    const int8_t* sc = reinterpret_cast<const int8_t*>(p + 192 + 8 * h + 2 * g);
    set_scales(u, d * float(sc[0]), d * float(sc[1]), 0.f, 0.f);
  }
};

// IQ4_XS: d, scales_h (2 bits per unit), scales_l[4] (4 bits per unit), qs[128] (16 bytes per
// unit, nibbles as IQ4_NL's); unit scale d * (6-bit scale - 32).
template <> struct QUnit<DType::IQ4_XS> {
  static constexpr int kValues = 256, kBytes = 136;
  static constexpr bool kAlign4 = true, kOffset = false;
  __device__ __forceinline__ static void decode(const uint8_t* p, int j, QUnitVals& u) {
    const float d = ldf16(p);
    const uint32_t sh = *reinterpret_cast<const uint16_t*>(p + 2);
    const int ls = ((p[4 + (j >> 1)] >> (4 * (j & 1))) & 15) | int((sh >> (2 * j)) & 3) << 4;
    uint32_t qs[4];
    ld32n<4, true>(p + 8 + 16 * j, qs);
    for (int w = 0; w < 4; w++) {
      u.q[w] = iq4nl_word(qs[w] & 0x0f0f0f0fu);
      u.q[w + 4] = iq4nl_word((qs[w] >> 4) & 0x0f0f0f0fu);
    }
    const float a = d * float(ls - 32);
    set_scales(u, a, a, 0.f, 0.f);
  }
};

// Unit u (32 values along K) of row `row` of a weight tensor of `rows` rows of K values: q8_0
// from its planes, the other block formats from their stored blocks.
template <DType DT>
__device__ __forceinline__ void weight_unit(const uint8_t* w, int64_t rows, int64_t K, int64_t row, int64_t u, QUnitVals& v) {
  if constexpr (DT == DType::Q8_0) {
    float d;
    load_q8_plane_block(q8_planes(w, rows * (K / 32)), row * (K / 32) + u, d, v.q);
    set_scales(v, d, d, 0.f, 0.f);
  } else {
    using F = QUnit<DT>;
    constexpr int kUnits = F::kValues / 32;
    F::decode(w + row * ((K / F::kValues) * F::kBytes) + (u / kUnits) * F::kBytes, int(u % kUnits), v);
  }
}

// The alignment weight_unit<DT> needs of a tensor's base address.
template <DType DT>
constexpr uintptr_t weight_align() {
  return DT == DType::Q8_0 ? 16 : QUnit<DT>::kAlign4 ? 4 : 2;
}

FUSELM_CUDA_NAMESPACE_END
