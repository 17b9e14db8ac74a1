// __half and __nv_bfloat16 for the emulator: 16-bit storage with the conversions of
// cuda_fp16.h / cuda_bf16.h, rounding to nearest even bit-exactly (fuselm::f32_to_f16/bf16).
// Like CUDA, the types convert implicitly from and to float, and arithmetic on two halves
// rounds the f32 result once.
#pragma once
#include <cstdint>
#include <cstring>

#include "tensor.h"

struct __half {
  uint16_t __x;
  __half() = default;
  __half(float f) : __x(fuselm::f32_to_f16(f)) {}  // NOLINT: implicit, as in CUDA
  operator float() const { return fuselm::f16_to_f32(__x); }
};
struct __nv_bfloat16 {
  uint16_t __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(fuselm::f32_to_bf16(f)) {}  // NOLINT
  operator float() const { return fuselm::bf16_to_f32(__x); }
};
struct alignas(4) __half2 { __half x, y; };
struct alignas(4) __nv_bfloat162 { __nv_bfloat16 x, y; };
static_assert(sizeof(__half) == 2 && sizeof(__half2) == 4, "__half must be 16-bit");
static_assert(sizeof(__nv_bfloat16) == 2 && sizeof(__nv_bfloat162) == 4, "bf16 must be 16-bit");

inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { __half h; h.__x = u; return h; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 h; h.__x = u; return h; }

inline __half2 __halves2half2(__half a, __half b) { return {a, b}; }
inline __half2 __floats2half2_rn(float a, float b) { return {__half(a), __half(b)}; }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return {a, b}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
inline float __low2float(__half2 h) { return float(h.x); }
inline float __high2float(__half2 h) { return float(h.y); }
inline float __low2float(__nv_bfloat162 h) { return float(h.x); }
inline float __high2float(__nv_bfloat162 h) { return float(h.y); }

#define FUSELM_EMU_HALF_OPS(T)                                              \
  inline T operator+(T a, T b) { return T(float(a) + float(b)); }          \
  inline T operator-(T a, T b) { return T(float(a) - float(b)); }          \
  inline T operator*(T a, T b) { return T(float(a) * float(b)); }          \
  inline T operator/(T a, T b) { return T(float(a) / float(b)); }          \
  inline T operator-(T a) { T r = a; r.__x ^= 0x8000; return r; }          \
  inline bool operator==(T a, T b) { return float(a) == float(b); }        \
  inline bool operator!=(T a, T b) { return float(a) != float(b); }        \
  inline bool operator<(T a, T b) { return float(a) < float(b); }          \
  inline bool operator>(T a, T b) { return float(a) > float(b); }          \
  inline bool operator<=(T a, T b) { return float(a) <= float(b); }        \
  inline bool operator>=(T a, T b) { return float(a) >= float(b); }
FUSELM_EMU_HALF_OPS(__half)
FUSELM_EMU_HALF_OPS(__nv_bfloat16)
#undef FUSELM_EMU_HALF_OPS
inline __half __hadd(__half a, __half b) { return a + b; }
inline __half __hmul(__half a, __half b) { return a * b; }
inline __half __hfma(__half a, __half b, __half c) { return __half(float(a) * float(b) + float(c)); }
