// Shared CUDA helpers. Every runtime call and kernel launch is checked and turned into a
// fuselm::Error (a JS FuselmError), never an exit or abort.
//
// This header compiles two ways (ARCHITECTURE.md, "CUDA without a GPU"): with nvcc for the GPU, and with g++ for the
// SIMT emulator (cuda/emu/emu.h), so kernels must reach the hardware-specific pieces only
// through what is here: dynamic_smem<T>() for shared memory, launch_kernel() to launch, and
// the PTX wrappers (mma_*, ldmatrix_*, cp_async_*), which have an inline-PTX version
// (sm_80 and later) and an emulated one written from the PTX ISA fragment layouts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#else
#include "emu/emu.h"
#endif

#include "tensor.h"

// The kernels compile twice into one addon: by nvcc for the GPU and by g++ for the emulator
// (the CUDA backend under FUSELM_CUDA_EMULATE=1). An inline namespace per flavor keeps the two
// sets of launchers and helpers apart at link time, while sources still say fuselm::<op>_cuda.
#if defined(__CUDACC__)
#define FUSELM_CUDA_FLAVOR gpu
#else
#define FUSELM_CUDA_FLAVOR emulated
#endif
#define FUSELM_CUDA_NAMESPACE_BEGIN namespace fuselm { inline namespace FUSELM_CUDA_FLAVOR {
#define FUSELM_CUDA_NAMESPACE_END } }

// Full unrolling keeps per-thread arrays indexed by loop counters (fragments, accumulators) in
// registers under nvcc; g++ (the emulator) takes no such pragma.
#if defined(__CUDACC__)
#define FUSELM_UNROLL _Pragma("unroll")
#else
#define FUSELM_UNROLL
#endif
// A device function kept out of line (the emulator's g++ spelling; emu.h leaves __noinline__
// alone, libstdc++ uses the name).
#if defined(__CUDACC__)
#define FUSELM_NOINLINE __noinline__
#else
#define FUSELM_NOINLINE __attribute__((noinline))
#endif

FUSELM_CUDA_NAMESPACE_BEGIN

inline void cuda_check(cudaError_t err, const char* what, const char* file, int line) {
  if (err != cudaSuccess)
    throw Error("E_NATIVE", std::string("CUDA error in ") + what + " (" + file + ":" + std::to_string(line) +
                                "): " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

#define CUDA_CHECK(call) ::fuselm::cuda_check((call), #call, __FILE__, __LINE__)
// After a <<<...>>> launch: catches bad launch configurations at once.
#define CUDA_CHECK_LAUNCH(name) ::fuselm::cuda_check(cudaGetLastError(), name, __FILE__, __LINE__)

// Whether a pointer allows 16-byte vector loads (float4, cp.async of 16 bytes).
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Launches kernel<<<grid, block, smem_bytes, stream>>>(args...) and checks the launch; under
// the emulator, runs it to completion (kernel bugs are thrown as fuselm::Error).
template <class... P, class... A>
inline void launch_kernel(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem_bytes,
                          cudaStream_t stream, A&&... args) {
#if defined(__CUDACC__)
  kernel<<<grid, block, smem_bytes, stream>>>(std::forward<A>(args)...);
  cuda_check(cudaGetLastError(), name, __FILE__, __LINE__);
#else
  (void)stream;
  emu::launch(name, grid, block, smem_bytes, kernel, std::forward<A>(args)...);
#endif
}

// The block's dynamic shared memory (the launch's smem_bytes), the only way kernels get
// shared memory. 16-byte aligned at least (128 under the emulator).
template <class T>
__device__ __forceinline__ T* dynamic_smem() {
#if defined(__CUDACC__)
  extern __shared__ __align__(16) unsigned char fuselm_dynamic_smem_[];
  return reinterpret_cast<T*>(fuselm_dynamic_smem_);
#else
  return static_cast<T*>(emu::dynamic_smem_base());
#endif
}

// Under the emulator, throws unless [p, p + bytes) lies inside the block's dynamic shared
// memory; compiles to nothing on the GPU. For kernels with computed shared-memory offsets
// (swizzles, padded tiles) to state their bounds where a bug would otherwise only show up as
// a guard-byte error after the block (or wrong numbers on the GPU).
__device__ __forceinline__ void smem_bounds_check(const void* p, size_t bytes) {
#if defined(__CUDACC__)
  (void)p;
  (void)bytes;
#else
  emu::check_smem(p, bytes, "smem_bounds_check");
#endif
}

// ---- PTX wrappers ------------------------------------------------------------------------------
// Fragment layouts (lane = %laneid, g = lane / 4, t = lane % 4) are spelled out in
// cuda/emu/ptx.cc next to the emulation. 16-bit pairs are packed low element first.

#if defined(__CUDACC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define FUSELM_PTX_UNSUPPORTED() __trap()
#endif

// D = A * B + C; A 16x16 f16 row-major fragment (4 regs), B 16x8 f16 col-major (2 regs),
// C and D 16x8 f32 (4 floats). d may alias c.
__device__ __forceinline__ void mma_m16n8k16_f16f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                    const float (&c)[4]) {
#if defined(__CUDACC__)
#ifdef FUSELM_PTX_UNSUPPORTED
  FUSELM_PTX_UNSUPPORTED();
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
#else
  emu::mma_m16n8k16_f16f32(d, a, b, c);
#endif
}

// The same with bf16 inputs.
__device__ __forceinline__ void mma_m16n8k16_bf16f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                     const float (&c)[4]) {
#if defined(__CUDACC__)
#ifdef FUSELM_PTX_UNSUPPORTED
  FUSELM_PTX_UNSUPPORTED();
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
#else
  emu::mma_m16n8k16_bf16f32(d, a, b, c);
#endif
}

// D = A * B + C in int32 (wrapping); A 16x32 s8 row-major (4 regs of 4 bytes), B 32x8 s8
// col-major (2 regs), C and D 16x8 s32.
__device__ __forceinline__ void mma_m16n8k32_s8s32(int32_t (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                   const int32_t (&c)[4]) {
#if defined(__CUDACC__)
#ifdef FUSELM_PTX_UNSUPPORTED
  FUSELM_PTX_UNSUPPORTED();
#else
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]));
#endif
#else
  emu::mma_m16n8k32_s8s32(d, a, b, c);
#endif
}

// ldmatrix.sync.aligned.m8n8.{x4,x2}[.trans].shared.b16: smem_row is this lane's row address
// (lanes 8i..8i+7 give the 8 rows of matrix i; 16 bytes each, 16-byte aligned).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
#if defined(__CUDACC__)
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
#else
  emu::ldmatrix(r, 4, false, smem_row);
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row) {
#if defined(__CUDACC__)
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
#else
  emu::ldmatrix(r, 4, true, smem_row);
#endif
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* smem_row) {
#if defined(__CUDACC__)
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr)
               : "memory");
#else
  emu::ldmatrix(r, 2, false, smem_row);
#endif
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* smem_row) {
#if defined(__CUDACC__)
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr)
               : "memory");
#else
  emu::ldmatrix(r, 2, true, smem_row);
#endif
}

// cp.async.cg.shared.global, 16 bytes, both addresses 16-byte aligned. The copy is complete
// (visible to this thread) after cp_async_commit() and a cp_async_wait<N>() that retires its
// group; other threads need a __syncthreads() after that as well.
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* global_src) {
#if defined(__CUDACC__)
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(__cvta_generic_to_global(global_src))
               : "memory");
#else
  emu::cp_async(smem_dst, global_src, 16);
#endif
}
// The same, but copies only when valid and writes 16 zero bytes otherwise (masking a tile's
// tail without a branch around the copy). global_src must still be a valid address.
__device__ __forceinline__ void cp_async_16_zfill(void* smem_dst, const void* global_src, bool valid) {
#if defined(__CUDACC__)
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst),
               "l"(__cvta_generic_to_global(global_src)), "r"(src_bytes)
               : "memory");
#else
  emu::cp_async(smem_dst, global_src, valid ? 16 : 0);
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDACC__)
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#else
  emu::cp_async_commit();
#endif
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDACC__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#else
  emu::cp_async_wait(N);
#endif
}

FUSELM_CUDA_NAMESPACE_END
