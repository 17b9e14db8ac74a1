// A persistent CPU thread pool. Workers stay alive for the pool's lifetime; between jobs they
// spin briefly (decode steps come back-to-back, so a wakeup through the kernel would cost more
// than the op) and then sleep on a condition variable. The calling thread works too, so a pool
// of N threads starts N-1 workers.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <climits>
#include <mutex>
#include <thread>
#include <vector>

namespace fuselm {

// A non-owning reference to a callable, cheaper than std::function on the hot path.
class TaskFn {
 public:
  template <typename F>
  TaskFn(const F& f) : obj_(&f), call_([](const void* o, int64_t i, int t) { (*static_cast<const F*>(o))(i, t); }) {}
  void operator()(int64_t i, int t) const { call_(obj_, i, t); }

 private:
  const void* obj_;
  void (*call_)(const void*, int64_t, int);
};

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Runs fn(task, thread) for task in [0, n_tasks), spread over all threads; returns when all
  // are done. Not reentrant: one job at a time per pool (callers serialize).
  // `work_size` estimates the job's size (bytes touched or multiply-adds); a job under
  // kMinParallelWork runs on the calling thread alone, since waking and joining the workers
  // would cost more than it saves (and far more when the machine is busy).
  void run(int64_t n_tasks, TaskFn fn, int64_t work_size = INT64_MAX);
  static constexpr int64_t kMinParallelWork = 32 * 1024;

 private:
  void worker_loop(int index);
  void work(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> busy_{0};
  std::atomic<bool> stop_{false};
  int64_t n_tasks_ = 0;
  const TaskFn* fn_ = nullptr;
};

// Physical cores of this machine (hyperthread siblings counted once); at least 1.
int physical_cores();

}  // namespace fuselm
