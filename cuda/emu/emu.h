// The SIMT emulator (ARCHITECTURE.md, "CUDA without a GPU"): lets g++ compile the same .cu kernel sources that nvcc
// compiles, and runs them on the CPU. Each block's threads run as fibers on one OS thread;
// __syncthreads() and the warp operations are barriers among them (a fiber that has to wait
// switches to the next runnable one), shared memory is one per-block arena handed out by
// dynamic_smem<T>() (cuda/common.cuh). Bugs that would hang or corrupt a GPU are thrown as
// fuselm::Error("E_NATIVE", ...): a barrier some threads skip (exited or diverged), a warp
// operation naming an exited lane or lanes meeting in different operations, writes past the
// shared-memory arena (guard bytes checked after each block).
//
// Include this only from g++ builds (common.cuh does it when __CUDACC__ is not defined).
#pragma once
#if defined(__CUDACC__)
#error "cuda/emu/emu.h is for g++ builds of CUDA sources; nvcc uses the real CUDA headers"
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emu/half.h"
#include "emu/runtime.h"
#include "tensor.h"

// ---- built-in types and variables -------------------------------------------------------
struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}  // NOLINT: implicit, as in CUDA
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

// The scheduler writes these before it switches to a fiber, so each fiber sees its own.
// inline + constant-initialized: no TLS wrapper call on access.
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
constexpr int warpSize = 32;

// ---- qualifiers ----------------------------------------------------------------------------
// (__noinline__ is left alone: libstdc++ uses it as an attribute name.)
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// Static __shared__ arrays are not emulated on purpose: kernels take shared memory through
// dynamic_smem<T>() so the arena can be sized, poisoned and bounds-guarded.
#define __shared__ __shared___is_not_emulated__use_dynamic_smem_from_common_cuh

namespace emu {

// ---- the scheduler's interface -------------------------------------------------------------
// A warp collective: every lane named in `mask` calls warp_collective with its own `in` and
// `out`; the last lane to arrive calls fn(ins, outs, mask) with every participating lane's
// pointers (null for the others), then all of them continue. fn identifies the operation:
// lanes that meet with different fn or masks are a divergence error.
using CollectiveFn = void (*)(const void* const* ins, void* const* outs, unsigned mask);
void warp_collective(unsigned mask, CollectiveFn fn, const void* in, void* out, const char* what);

// __syncthreads and friends: returns how many threads passed pred != 0.
int block_barrier(const char* file, int line, int pred);
int block_size();  // threads in the running block

// The running block's dynamic shared memory arena.
void* dynamic_smem_base();
size_t dynamic_smem_bytes();
// Throws unless [p, p+bytes) lies inside the running block's arena.
void check_smem(const void* p, size_t bytes, const char* what);

// Throws the E_NATIVE error for __trap(), naming the kernel, block and thread.
[[noreturn]] void trap();

// Runs body(ctx) for every thread of every block. Throws fuselm::Error on a kernel bug.
void launch_raw(const char* name, dim3 grid, dim3 block, size_t smem_bytes, void (*body)(void*), void* ctx);

template <class... P, class... A>
void launch(const char* name, dim3 grid, dim3 block, size_t smem_bytes, void (*kernel)(P...), A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel argument count");
  struct Ctx {
    void (*k)(P...);
    std::tuple<std::decay_t<P>...> args;
  } ctx{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
  // Every thread gets its own copy of the parameters, as on the GPU.
  launch_raw(name, grid, block, smem_bytes, [](void* c) {
    auto* x = static_cast<Ctx*>(c);
    std::tuple<std::decay_t<P>...> mine = x->args;
    std::apply(x->k, mine);
  }, &ctx);
}

// ---- PTX instruction emulations (cuda/emu/ptx.cc); common.cuh wraps them ------------------
void mma_m16n8k16_f16f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]);
void mma_m16n8k16_bf16f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]);
void mma_m16n8k32_s8s32(int32_t (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const int32_t (&c)[4]);
void ldmatrix(uint32_t* r, int num, bool trans, const void* smem_row);
void cp_async(void* smem_dst, const void* src, int src_bytes);  // 16 bytes, zero-filled past src_bytes
void cp_async_commit();
void cp_async_wait(int n);  // wait until at most n committed groups are pending

// ---- shuffles and votes ---------------------------------------------------------------------
enum ShflKind { kShflIdx, kShflUp, kShflDown, kShflXor };
struct ShflIn { uint64_t v; int arg; int width; };
extern const CollectiveFn kShflFns[4];
template <class T> inline T shfl(unsigned mask, T var, int arg, int width, ShflKind kind, const char* what) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move up to 8 bytes");
  ShflIn in{0, arg, width};
  std::memcpy(&in.v, &var, sizeof(T));
  uint64_t out = 0;
  warp_collective(mask, kShflFns[kind], &in, &out, what);
  T r;
  std::memcpy(&r, &out, sizeof(T));
  return r;
}
struct Vote { unsigned ballot, mask; };
Vote vote(unsigned mask, int pred, const char* what);
void syncwarp(unsigned mask);

}  // namespace emu

// ---- CUDA intrinsics ---------------------------------------------------------------------------
inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  emu::block_barrier(file, line, 0);
}
inline int __syncthreads_count(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return emu::block_barrier(file, line, pred);
}
inline int __syncthreads_and(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return emu::block_barrier(file, line, pred) == emu::block_size();
}
inline int __syncthreads_or(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return emu::block_barrier(file, line, pred) > 0;
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::syncwarp(mask); }
// __activemask() is not provided: which lanes run converged is the hardware scheduler's choice,
// which fibers do not model; kernels pass explicit masks.

template <class T> inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  return emu::shfl(mask, var, src_lane, width, emu::kShflIdx, "__shfl_sync");
}
template <class T> inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return emu::shfl(mask, var, int(delta), width, emu::kShflUp, "__shfl_up_sync");
}
template <class T> inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return emu::shfl(mask, var, int(delta), width, emu::kShflDown, "__shfl_down_sync");
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  return emu::shfl(mask, var, lane_mask, width, emu::kShflXor, "__shfl_xor_sync");
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return emu::vote(mask, pred, "__ballot_sync").ballot; }
inline int __any_sync(unsigned mask, int pred) { return emu::vote(mask, pred, "__any_sync").ballot != 0; }
inline int __all_sync(unsigned mask, int pred) {
  emu::Vote v = emu::vote(mask, pred, "__all_sync");
  return v.ballot == v.mask;
}

// Atomics: real atomics, so blocks may one day run on several OS threads.
template <class T> inline T emu_atomic_add_(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline int atomicAdd(int* p, int v) { return emu_atomic_add_(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return emu_atomic_add_(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return emu_atomic_add_(p, v); }
template <class F, class Op> inline F emu_atomic_float_(F* p, Op op) {
  using U = std::conditional_t<sizeof(F) == 4, uint32_t, uint64_t>;
  U* u = reinterpret_cast<U*>(p);
  U old = __atomic_load_n(u, __ATOMIC_RELAXED), nw;
  F f;
  do {
    std::memcpy(&f, &old, sizeof f);
    F r = op(f);
    std::memcpy(&nw, &r, sizeof nw);
  } while (!__atomic_compare_exchange_n(u, &old, nw, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return f;
}
inline float atomicAdd(float* p, float v) { return emu_atomic_float_(p, [v](float x) { return x + v; }); }
inline double atomicAdd(double* p, double v) { return emu_atomic_float_(p, [v](double x) { return x + v; }); }
template <class T, class Op> inline T emu_atomic_rmw_(T* p, Op op) {  // CAS loop for what GCC lacks
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, op(old), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline int atomicMax(int* p, int v) { return emu_atomic_rmw_(p, [v](int x) { return x > v ? x : v; }); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return emu_atomic_rmw_(p, [v](unsigned x) { return x > v ? x : v; }); }
inline int atomicMin(int* p, int v) { return emu_atomic_rmw_(p, [v](int x) { return x < v ? x : v; }); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return emu_atomic_rmw_(p, [v](unsigned x) { return x < v ? x : v; }); }
inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
inline float atomicExch(float* p, float v) { return emu_atomic_float_(p, [v](float) { return v; }); }
template <class T> inline T emu_atomic_cas_(T* p, T cmp, T v) {
  __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return cmp;  // the old value either way
}
inline int atomicCAS(int* p, int c, int v) { return emu_atomic_cas_(p, c, v); }
inline unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) { return emu_atomic_cas_(p, c, v); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c, unsigned long long v) {
  return emu_atomic_cas_(p, c, v);
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
[[noreturn]] inline void __trap() { emu::trap(); }

// Math: the fast intrinsics are the accurate functions here (parity tolerances absorb it).
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }  // the GPU's load through L2, past L1
// dp4a: the 4 byte lanes of a and b multiplied pairwise (signed or unsigned bytes), summed
// into c with 32-bit wrap-around, as the PTX dp4a.{s32,u32} instructions do.
inline int __dp4a(int a, int b, int c) {
  uint32_t s = uint32_t(c);
  for (int i = 0; i < 4; i++) s += uint32_t(int32_t(int8_t(a >> 8 * i)) * int32_t(int8_t(b >> 8 * i)));
  return int(s);
}
inline unsigned __dp4a(unsigned a, unsigned b, unsigned c) {
  for (int i = 0; i < 4; i++) c += ((a >> 8 * i) & 0xffu) * ((b >> 8 * i) & 0xffu);
  return c;
}
// CUDA's device min/max overloads
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
