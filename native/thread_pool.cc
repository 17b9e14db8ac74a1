#include "thread_pool.h"

#include <fstream>
#include <set>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FUSELM_PAUSE() _mm_pause()
#else
#define FUSELM_PAUSE() std::this_thread::yield()
#endif

namespace fuselm {

namespace {
// Waiting spins with `pause` first (a job usually arrives or finishes within microseconds),
// then yields the core on each try, so that on a busy machine a preempted thread we are
// waiting for can run here; idle workers go to sleep after about kSleepAfter tries.
constexpr int kPauseSpins = 2000;
constexpr int kSleepAfter = 20000;

inline void wait_step(int spins) {
  if (spins < kPauseSpins)
    FUSELM_PAUSE();
  else
    std::this_thread::yield();
}
}

ThreadPool::ThreadPool(int threads) : n_threads_(threads < 1 ? 1 : threads) {
  for (int i = 1; i < n_threads_; i++) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work(int thread) {
  for (;;) {
    int64_t i = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n_tasks_) break;
    (*fn_)(i, thread);
  }
}

void ThreadPool::run(int64_t n_tasks, TaskFn fn, int64_t work_size) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1 || work_size < kMinParallelWork) {
    for (int64_t i = 0; i < n_tasks; i++) fn(i, 0);
    return;
  }
  n_tasks_ = n_tasks;
  fn_ = &fn;
  next_task_.store(0, std::memory_order_relaxed);
  busy_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  work(0);
  for (int spins = 0; busy_.load(std::memory_order_acquire) != 0; spins++) wait_step(spins);
  fn_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    int spins = 0;
    uint64_t g;
    while ((g = generation_.load(std::memory_order_acquire)) == seen && spins < kSleepAfter) wait_step(spins++);
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load()) return;
    work(index);
    busy_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

int physical_cores() {
  std::set<std::string> cores;
  for (int cpu = 0; cpu < 4096; cpu++) {
    std::ifstream f("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings_list");
    if (!f) break;
    std::string s;
    std::getline(f, s);
    cores.insert(s);
  }
  if (!cores.empty()) return int(cores.size());
  unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

}  // namespace fuselm
