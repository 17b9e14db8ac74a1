// Minimal fibers for the emulator: a context is a saved stack pointer. On x86-64 the switch is
// a dozen instructions (callee-saved registers, MXCSR and x87 control word, stack pointer) and
// makes no system call; elsewhere it falls back to ucontext (slower: swapcontext saves the
// signal mask with a system call per switch).
#pragma once
#include <cstddef>

namespace emu {

struct FiberContext;  // opaque; one per fiber plus one for the scheduler

FiberContext* fiber_context_new();
void fiber_context_free(FiberContext* c);
// Prepares c to run fn(arg) on [stack, stack + size) at the next switch to it. fn must never
// return: it ends by switching away for good.
void fiber_prepare(FiberContext* c, void* stack, size_t size, void (*fn)(void*), void* arg);
// Saves the running context into from and resumes to.
void fiber_switch(FiberContext* from, FiberContext* to);
// Called first thing by a fiber's fn: under AddressSanitizer it completes the switch that
// started the fiber (ASan must be told of every stack switch); a no-op otherwise.
void fiber_started();

}  // namespace emu
