// The emulator's scheduler: runs each block's threads as fibers on the calling OS thread,
// switching fiber-to-fiber when one must wait at a barrier, and turns kernel bugs that would
// hang a GPU into fuselm::Error("E_NATIVE", ...). See emu.h for the model.
#include "emu/emu.h"

#include <sys/mman.h>

#include <cstdlib>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "emu/fiber.h"
#include "emu/internal.h"

namespace emu {

namespace {

constexpr size_t kGuardBytes = 256;            // poisoned bytes on both sides of the arena
constexpr unsigned char kGuardByte = 0xA5;
constexpr unsigned char kPoisonByte = 0xFF;    // fresh shared memory reads as NaN / -1
constexpr size_t kMaxSmem = 227 * 1024;        // sm_90's opt-in maximum per block
constexpr unsigned kMaxThreads = 1024;

size_t stack_bytes() {
  static const size_t n = [] {
    const char* e = std::getenv("FUSELM_EMU_STACK_KB");
    long kb = e ? std::atol(e) : 0;
    return size_t(kb >= 16 ? kb : 128) * 1024;
  }();
  return n;
}

std::string fmt_mask(unsigned m) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", m);
  return b;
}

// A fiber's stack: mmap'd with a PROT_NONE page below it, so an overflow faults instead of
// silently corrupting the neighbour. Kept for the life of the OS thread and reused.
struct Stack {
  char* base = nullptr;  // the guard page
  size_t bytes = 0;
  void* usable() const { return base + 4096; }
  size_t usable_bytes() const { return bytes - 4096; }
};

}  // namespace

// Per OS thread: the fibers, their stacks, the arena and the running block's state.
struct Sm {
  std::vector<Fiber> fibers;
  std::vector<Stack> stacks;
  FiberContext* main_ctx = nullptr;
  std::vector<unsigned char> arena;  // guard | smem | guard, 128-byte aligned smem
  unsigned char* smem = nullptr;
  size_t smem_bytes = 0;

  bool running = false;
  const char* kernel = "";
  int n = 0;        // threads per block
  int cur = -1;     // running fiber, -1 = scheduler
  int exited = 0;
  int bar_arrived = 0, bar_count = 0, bar_line = 0;
  const char* bar_file = nullptr;
  std::exception_ptr error;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;

  ~Sm() {
    for (auto& f : fibers) fiber_context_free(f.ctx);
    if (main_ctx) fiber_context_free(main_ctx);
    for (auto& s : stacks) munmap(s.base, s.bytes);
  }
};

namespace {
thread_local Sm tl_sm;
}

Sm& sm() { return tl_sm; }

Fiber& current_fiber() {
  Sm& s = tl_sm;
  if (!s.running || s.cur < 0)
    throw fuselm::Error("E_NATIVE", "emulator: a device intrinsic was called outside a kernel launch");
  return s.fibers[size_t(s.cur)];
}

std::string where(const Fiber& f) {
  char b[160];
  std::snprintf(b, sizeof b, "kernel %s, block (%u,%u,%u), thread (%u,%u,%u)", tl_sm.kernel, blockIdx.x,
                blockIdx.y, blockIdx.z, f.tid.x, f.tid.y, f.tid.z);
  return b;
}

namespace {

[[noreturn]] void fail(const Fiber&, const std::string& msg) { fail_here(msg); }

void switch_to(Sm& s, int from, int to) {
  FiberContext* a = from < 0 ? s.main_ctx : s.fibers[size_t(from)].ctx;
  FiberContext* b = to < 0 ? s.main_ctx : s.fibers[size_t(to)].ctx;
  s.cur = to;
  if (to >= 0) threadIdx = s.fibers[size_t(to)].tid;
  fiber_switch(a, b);
}

// The running fiber can't continue: switch to the next runnable one, or back to the scheduler
// when there is none (all done, or a deadlock the scheduler reports).
void suspend(Sm& s) {
  const int c = s.cur;
  for (int k = 1; k <= s.n; k++) {
    int j = c + k >= s.n ? c + k - s.n : c + k;
    if (s.fibers[size_t(j)].st == St::Ready) {
      if (j != c) switch_to(s, c, j);
      return;
    }
  }
  switch_to(s, c, -1);
}

// Exiting while others wait for this thread is the bug that hangs a GPU: report it.
void check_exit(Sm& s, Fiber& f) {
  if (s.bar_arrived > 0)
    fail(f, "this thread exited while " + std::to_string(s.bar_arrived) + " thread(s) wait at __syncthreads (" +
                s.bar_file + ":" + std::to_string(s.bar_line) +
                "); every thread of the block must reach each __syncthreads");
  const unsigned lane = f.linear & 31u, base = f.linear & ~31u;
  for (unsigned j = 0; j < 32 && base + j < unsigned(s.n); j++) {
    const Fiber& g = s.fibers[base + j];
    if (g.st == St::WaitWarp && (g.mask >> lane & 1u))
      fail(f, "this thread (lane " + std::to_string(lane) + ") exited while lane " + std::to_string(j) +
                  " waits for it in " + g.what + " with mask " + fmt_mask(g.mask));
  }
}

void fiber_main(void* arg) {
  fiber_started();
  Sm& s = tl_sm;
  Fiber& f = *static_cast<Fiber*>(arg);
  std::exception_ptr err;
  try {
    s.body(s.ctx);
    f.pending.clear();  // cp.async copies never waited for are dropped
    check_exit(s, f);
  } catch (...) {
    err = std::current_exception();
  }
  // Outside the catch block: a fiber must not switch away with an exception being handled.
  f.st = St::Exited;
  s.exited++;
  if (err) {
    // This frame is never resumed, so no local may keep the exception alive (it would leak):
    // the first error moves to the block, a later one is dropped here.
    if (!s.error) s.error = std::move(err);
    err = nullptr;
    switch_to(s, s.cur, -1);  // abandon the block
  }
  suspend(s);
  // never resumed
}

std::string deadlock_report(Sm& s) {
  std::map<std::string, int> groups;
  for (auto& f : s.fibers) {
    if (int(&f - s.fibers.data()) >= s.n) break;
    std::string k;
    if (f.st == St::Exited) k = "exited";
    else if (f.st == St::WaitBlock) k = std::string("wait at __syncthreads (") + s.bar_file + ":" + std::to_string(s.bar_line) + ")";
    else if (f.st == St::WaitWarp) k = "wait in " + std::string(f.what) + " (warp " + std::to_string(f.linear / 32) +
                                     ", mask " + fmt_mask(f.mask) + ")";
    else k = "runnable";
    groups[k]++;
  }
  std::string r;
  for (auto& [k, v] : groups) r += (r.empty() ? "" : "; ") + std::to_string(v) + " thread(s) " + k;
  return r;
}

void ensure_capacity(Sm& s, int n) {
  if (!s.main_ctx) s.main_ctx = fiber_context_new();
  while (int(s.fibers.size()) < n) {
    Stack st;
    st.bytes = stack_bytes() + 4096;
    void* m = mmap(nullptr, st.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) throw fuselm::Error("E_NATIVE", "emulator: cannot map a fiber stack");
    st.base = static_cast<char*>(m);
    mprotect(st.base, 4096, PROT_NONE);
    s.stacks.push_back(st);
    s.fibers.emplace_back();
    s.fibers.back().ctx = fiber_context_new();
  }
}

void check_guards(Sm& s) {
  const unsigned char* lo = s.smem - kGuardBytes;
  const unsigned char* hi = s.smem + s.smem_bytes;
  for (size_t i = 0; i < kGuardBytes; i++) {
    if (lo[i] != kGuardByte || hi[i] != kGuardByte) {
      long off = lo[i] != kGuardByte ? long(i) - long(kGuardBytes) : long(s.smem_bytes + i);
      char b[256];
      std::snprintf(b, sizeof b,
                    "emulator: kernel %s, block (%u,%u,%u) wrote outside its %zu bytes of dynamic shared memory "
                    "(byte offset %ld)",
                    s.kernel, blockIdx.x, blockIdx.y, blockIdx.z, s.smem_bytes, off);
      throw fuselm::Error("E_NATIVE", b);
    }
  }
}

}  // namespace

// ---- the intrinsics' back ends ----------------------------------------------------------------

int block_barrier(const char* file, int line, int pred) {
  Sm& s = tl_sm;
  Fiber& f = current_fiber();
  if (s.exited > 0)
    fail(f, std::string("__syncthreads at ") + file + ":" + std::to_string(line) + " reached after " +
                std::to_string(s.exited) + " thread(s) of the block exited; every thread must reach it");
  if (s.bar_arrived == 0) {
    s.bar_file = file;
    s.bar_line = line;
    s.bar_count = 0;
  } else if (line != s.bar_line || (file != s.bar_file && std::strcmp(file, s.bar_file) != 0)) {
    fail(f, std::string("divergent __syncthreads: this thread is at ") + file + ":" + std::to_string(line) + " while " +
                std::to_string(s.bar_arrived) + " thread(s) wait at " + s.bar_file + ":" + std::to_string(s.bar_line));
  }
  s.bar_count += pred != 0;
  if (++s.bar_arrived == s.n) {
    const int r = s.bar_count;
    s.bar_arrived = 0;
    for (int j = 0; j < s.n; j++) {
      Fiber& g = s.fibers[size_t(j)];
      if (g.st == St::WaitBlock) { g.st = St::Ready; g.bar_result = r; }
    }
    return r;
  }
  f.st = St::WaitBlock;
  suspend(s);
  return f.bar_result;
}

int block_size() { return tl_sm.n; }

void trap() { fail_here("kernel executed __trap()"); }

void warp_collective(unsigned mask, CollectiveFn fn, const void* in, void* out, const char* what) {
  Sm& s = tl_sm;
  Fiber& f = current_fiber();
  const unsigned lane = f.linear & 31u, base = f.linear & ~31u;
  if (!(mask >> lane & 1u)) fail(f, std::string(what) + " with mask " + fmt_mask(mask) + " that leaves out the calling lane " + std::to_string(lane));
  const unsigned nlanes = std::min(32u, unsigned(s.n) - base);
  const unsigned exist = nlanes == 32 ? 0xffffffffu : (1u << nlanes) - 1u;
  mask &= exist;  // lanes past the end of a partial last warp are not there at all
  bool all = true;
  for (unsigned m = mask & ~(1u << lane); m; m &= m - 1) {
    const unsigned j = unsigned(__builtin_ctz(m));
    const Fiber& g = s.fibers[base + j];
    if (g.st == St::Exited)
      fail(f, std::string(what) + " with mask " + fmt_mask(mask) + " names lane " + std::to_string(j) + ", which has exited");
    if (g.st == St::WaitWarp) {
      if (g.fn != fn || g.mask != mask)
        fail(f, "lanes of one warp meet in different warp operations: lane " + std::to_string(lane) + " in " + what +
                    " (mask " + fmt_mask(mask) + "), lane " + std::to_string(j) + " in " + g.what + " (mask " +
                    fmt_mask(g.mask) + ")");
    } else {
      all = false;
    }
  }
  f.mask = mask;
  f.fn = fn;
  f.in = in;
  f.out = out;
  f.what = what;
  if (!all) {
    f.st = St::WaitWarp;
    suspend(s);
    return;  // the last lane computed our out
  }
  const void* ins[32] = {};
  void* outs[32] = {};
  for (unsigned m = mask; m; m &= m - 1) {
    const unsigned j = unsigned(__builtin_ctz(m));
    ins[j] = s.fibers[base + j].in;
    outs[j] = s.fibers[base + j].out;
  }
  fn(ins, outs, mask);
  for (unsigned m = mask & ~(1u << lane); m; m &= m - 1) s.fibers[base + unsigned(__builtin_ctz(m))].st = St::Ready;
}

void* dynamic_smem_base() {
  current_fiber();
  return tl_sm.smem;
}
size_t dynamic_smem_bytes() { return tl_sm.smem_bytes; }

void check_smem(const void* p, size_t bytes, const char* what) {
  Sm& s = tl_sm;
  const Fiber& f = current_fiber();
  auto a = reinterpret_cast<uintptr_t>(p), lo = reinterpret_cast<uintptr_t>(s.smem);
  if (a < lo || a + bytes > lo + s.smem_bytes) {
    char b[200];
    std::snprintf(b, sizeof b, "%s touches shared memory bytes [%ld, %ld) outside the %zu-byte arena", what,
                  long(a - lo), long(a - lo + bytes), s.smem_bytes);
    fail(f, b);
  }
}

void launch_raw(const char* name, dim3 grid, dim3 block, size_t smem_bytes, void (*body)(void*), void* ctx) {
  Sm& s = tl_sm;
  if (s.running) throw fuselm::Error("E_NATIVE", std::string("emulator: launch of ") + name + " from inside a kernel");
  const unsigned long long nthreads = 1ull * block.x * block.y * block.z;
  if (nthreads == 0 || nthreads > kMaxThreads || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
      grid.z > 65535 || block.z > 64)
    throw fuselm::Error("E_NATIVE", std::string("emulator: invalid launch configuration for ") + name + ": grid (" +
                                        std::to_string(grid.x) + "," + std::to_string(grid.y) + "," + std::to_string(grid.z) +
                                        "), block (" + std::to_string(block.x) + "," + std::to_string(block.y) + "," +
                                        std::to_string(block.z) + ")");
  if (smem_bytes > kMaxSmem)
    throw fuselm::Error("E_NATIVE", std::string("emulator: ") + name + " asks for " + std::to_string(smem_bytes) +
                                        " bytes of shared memory; the limit is " + std::to_string(kMaxSmem));
  const int n = int(nthreads);
  ensure_capacity(s, n);
  s.arena.assign(smem_bytes + 2 * kGuardBytes + 128, kGuardByte);
  uintptr_t a = (reinterpret_cast<uintptr_t>(s.arena.data()) + kGuardBytes + 127) & ~uintptr_t(127);
  s.smem = reinterpret_cast<unsigned char*>(a);
  s.smem_bytes = smem_bytes;
  s.kernel = name;
  s.n = n;
  s.body = body;
  s.ctx = ctx;
  gridDim = grid;
  blockDim = block;
  for (int i = 0; i < n; i++) {
    Fiber& f = s.fibers[size_t(i)];
    f.linear = unsigned(i);
    f.tid = {unsigned(i) % block.x, unsigned(i) / block.x % block.y, unsigned(i) / (block.x * block.y)};
  }
  struct Running {  // clears the running state however the launch ends
    Sm& s;
    ~Running() { s.running = false; s.cur = -1; s.error = nullptr; }
  } running{s};
  s.running = true;
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) {
        blockIdx = {bx, by, bz};
        std::memset(s.smem - kGuardBytes, kGuardByte, kGuardBytes);
        std::memset(s.smem, kPoisonByte, smem_bytes);
        std::memset(s.smem + smem_bytes, kGuardByte, kGuardBytes);
        s.exited = 0;
        s.bar_arrived = 0;
        s.error = nullptr;
        for (int i = 0; i < n; i++) {
          Fiber& f = s.fibers[size_t(i)];
          f.st = St::Ready;
          f.pending.clear();
          f.open_group = 0;
          fiber_prepare(f.ctx, s.stacks[size_t(i)].usable(), s.stacks[size_t(i)].usable_bytes(), fiber_main, &f);
        }
        switch_to(s, -1, 0);
        if (s.error) std::rethrow_exception(s.error);
        if (s.exited != n) {
          char b[128];
          std::snprintf(b, sizeof b, "emulator: deadlock in kernel %s, block (%u,%u,%u): ", name, bx, by, bz);
          throw fuselm::Error("E_NATIVE", b + deadlock_report(s));
        }
        check_guards(s);
      }
}

}  // namespace emu
