// The emulator's per-thread state, shared by its .cc files (not for kernels).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "emu/emu.h"
#include "emu/fiber.h"

namespace emu {

enum class St : uint8_t { Ready, WaitWarp, WaitBlock, Exited };

// One cp.async in flight: the 16 bytes read at issue, written to dst at the wait.
struct PendingCopy {
  void* dst;
  unsigned char data[16];
  int group;
};

struct Fiber {
  FiberContext* ctx = nullptr;
  uint3 tid{0, 0, 0};
  unsigned linear = 0;  // x + y*Dx + z*Dx*Dy: lane = linear % 32, warp = linear / 32
  St st = St::Ready;
  // the warp collective it waits in
  unsigned mask = 0;
  CollectiveFn fn = nullptr;
  const void* in = nullptr;
  void* out = nullptr;
  const char* what = "";
  int bar_result = 0;
  std::vector<PendingCopy> pending;
  int open_group = 0;  // index of the cp.async group still being filled
};

Fiber& current_fiber();
// "(kernel K, block (..), thread (..))" for messages.
std::string where(const Fiber& f);
[[noreturn]] inline void fail_here(const std::string& msg) {
  throw fuselm::Error("E_NATIVE", "emulator: " + msg + " (" + where(current_fiber()) + ")");
}

}  // namespace emu
