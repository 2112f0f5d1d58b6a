#pragma once
// A fixed-size thread pool with a ParallelFor in which the calling thread takes part.
//
// Threading contract: Submit and ParallelFor may be called from any thread, including from
// inside a task running on this pool (nested parallelism). ParallelFor never waits for an item
// that no thread has started: the caller claims unstarted items itself, so nesting cannot
// deadlock even when every worker is busy. The pool owns its threads; the destructor finishes
// queued tasks and joins.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace larserve {

class ThreadPool {
 public:
  // num_threads is the total parallelism including the caller: a pool of 1 runs everything on
  // the calling thread and starts no worker.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(i) for every i in [begin, end). Returns when all calls have returned. fn must not
  // throw. The order of calls is unspecified; results must not depend on it.
  void ParallelFor(std::size_t begin, std::size_t end, const std::function<void(std::size_t)>& fn);

  // Runs task on a worker (or inline when the pool has no workers).
  void Submit(std::function<void()> task);

  // Number of hardware threads, at least 1.
  static int HardwareThreads();

 private:
  void WorkerLoop();

  std::vector<std::thread> workers_;
  std::deque<std::function<void()>> queue_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

// Names the calling thread (Linux keeps the first 15 characters), so that top -H, perf and
// /proc/PID/task/*/comm tell a server's threads apart; bench/server_bench.py adds up their CPU
// time by name. Threads the named thread starts afterwards (its OpenMP team) inherit the name.
// Does nothing where the platform has no thread names.
void SetCurrentThreadName(const char* name);

}  // namespace larserve
