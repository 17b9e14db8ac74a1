#include "emu/fiber.h"

#include <cstdint>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace emu {
namespace {

// A context's stack; the thread's own stack (the scheduler's context) is learned at its first
// switch away, from what AddressSanitizer reports of the stack left.
struct StackBounds {
  const void* bottom = nullptr;
  size_t size = 0;
};

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer must be told of every stack switch, or it takes the fiber stacks for
// corrupted ones: start before the switch, finish on the stack switched to.
thread_local StackBounds* t_from = nullptr;  // the stack being left, for its bounds

template <class C>
void* asan_leaving(C* from, C* to) {
  void* fake = nullptr;
  t_from = &from->stack;
  __sanitizer_start_switch_fiber(&fake, to->stack.bottom, to->stack.size);
  return fake;
}
void asan_arrived(void* fake) {
  StackBounds left;
  __sanitizer_finish_switch_fiber(fake, &left.bottom, &left.size);
  if (t_from && !t_from->bottom) *t_from = left;
}
// A stack handed to a fresh fiber still carries the shadow of the frames its last fiber
// abandoned (a fiber never returns, so their redzones are never unpoisoned), and an
// instrumented prologue poisons only its redzones: it assumes the rest of its frame is clean.
// Without this, a later frame laid over a stale redzone reads as a stack overflow.
void asan_stack_reused(void* stack, size_t size) { ASAN_UNPOISON_MEMORY_REGION(stack, size); }
#else
template <class C>
void* asan_leaving(C*, C*) { return nullptr; }
void asan_arrived(void*) {}
void asan_stack_reused(void*, size_t) {}
#endif

}  // namespace
}  // namespace emu

#if defined(__x86_64__) && !defined(FUSELM_EMU_UCONTEXT)

// fuselm_emu_swap(void** save_sp, void* load_sp): pushes the callee-saved state on the current
// stack, stores the stack pointer in *save_sp, loads load_sp and pops the state saved there.
// fuselm_emu_entry: where a fresh fiber's first switch returns to; calls r13(r12).
extern "C" void fuselm_emu_swap(void** save_sp, void* load_sp);
extern "C" void fuselm_emu_entry();
asm(R"(
  .text
  .p2align 4
  .globl fuselm_emu_swap
  .hidden fuselm_emu_swap
  .type fuselm_emu_swap,@function
fuselm_emu_swap:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size fuselm_emu_swap, .-fuselm_emu_swap

  .p2align 4
  .globl fuselm_emu_entry
  .hidden fuselm_emu_entry
  .type fuselm_emu_entry,@function
fuselm_emu_entry:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size fuselm_emu_entry, .-fuselm_emu_entry
)");

namespace emu {

struct FiberContext {
  void* sp = nullptr;
  StackBounds stack;
};

FiberContext* fiber_context_new() { return new FiberContext; }
void fiber_context_free(FiberContext* c) { delete c; }

void fiber_prepare(FiberContext* c, void* stack, size_t size, void (*fn)(void*), void* arg) {
  // Frame popped by the first switch (low to high): MXCSR|FPUCW, r15, r14, r13=fn, r12=arg,
  // rbx, rbp, return address = fuselm_emu_entry. After the ret the stack pointer is the
  // 16-byte aligned top, so the call in fuselm_emu_entry enters fn with the ABI's alignment.
  asan_stack_reused(stack, size);
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  uint64_t* f = reinterpret_cast<uint64_t*>(top) - 8;
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  f[0] = uint64_t(mxcsr) | uint64_t(fpucw) << 32;
  f[1] = 0;
  f[2] = 0;
  f[3] = reinterpret_cast<uint64_t>(fn);
  f[4] = reinterpret_cast<uint64_t>(arg);
  f[5] = 0;
  f[6] = 0;
  f[7] = reinterpret_cast<uint64_t>(&fuselm_emu_entry);
  c->sp = f;
  c->stack = {stack, size};
}

void fiber_switch(FiberContext* from, FiberContext* to) {
  void* fake = asan_leaving(from, to);
  fuselm_emu_swap(&from->sp, to->sp);
  asan_arrived(fake);
}

}  // namespace emu

#else  // portable fallback

#include <ucontext.h>

namespace emu {

struct FiberContext {
  StackBounds stack;
  ucontext_t uc;
  void (*fn)(void*) = nullptr;
  void* arg = nullptr;
};

FiberContext* fiber_context_new() { return new FiberContext; }
void fiber_context_free(FiberContext* c) { delete c; }

static void ucontext_entry(unsigned lo, unsigned hi) {
  auto* c = reinterpret_cast<FiberContext*>(uintptr_t(lo) | uintptr_t(hi) << 32);
  c->fn(c->arg);
}

void fiber_prepare(FiberContext* c, void* stack, size_t size, void (*fn)(void*), void* arg) {
  asan_stack_reused(stack, size);
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = nullptr;
  c->fn = fn;
  c->arg = arg;
  c->stack = {stack, size};
  uintptr_t p = reinterpret_cast<uintptr_t>(c);
  makecontext(&c->uc, reinterpret_cast<void (*)()>(ucontext_entry), 2, unsigned(p), unsigned(p >> 32));
}

void fiber_switch(FiberContext* from, FiberContext* to) {
  void* fake = asan_leaving(from, to);
  swapcontext(&from->uc, &to->uc);
  asan_arrived(fake);
}

}  // namespace emu

#endif

namespace emu {
void fiber_started() { asan_arrived(nullptr); }
}  // namespace emu
