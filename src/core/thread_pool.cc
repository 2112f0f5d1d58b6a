#include "larserve/core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace larserve {

ThreadPool::ThreadPool(int num_threads) {
  const int workers = std::max(0, num_threads - 1);
  workers_.reserve(workers);
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void SetCurrentThreadName(const char* name) {
#if defined(__linux__)
  const std::string shortened = std::string(name).substr(0, 15);  // the kernel's limit
  pthread_setname_np(pthread_self(), shortened.c_str());
#else
  (void)name;
#endif
}

int ThreadPool::HardwareThreads() { return std::max(1u, std::thread::hardware_concurrency()); }

void ThreadPool::Submit(std::function<void()> task) {
  if (workers_.empty()) {
    task();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void ThreadPool::ParallelFor(std::size_t begin, std::size_t end,
                             const std::function<void(std::size_t)>& fn) {
  if (end <= begin) return;
  const std::size_t n = end - begin;
  if (workers_.empty() || n == 1) {
    for (std::size_t i = begin; i < end; ++i) fn(i);
    return;
  }
  // Shared state outlives this call if a helper task starts late (it then finds no work).
  struct State {
    std::atomic<std::size_t> next{0};
    std::atomic<std::size_t> done{0};
    std::mutex mutex;
    std::condition_variable cv;
  };
  auto state = std::make_shared<State>();
  auto run_items = [state, begin, n, &fn]() {
    for (;;) {
      const std::size_t i = state->next.fetch_add(1);
      if (i >= n) return;
      fn(begin + i);
      if (state->done.fetch_add(1) + 1 == n) {
        std::lock_guard<std::mutex> lock(state->mutex);
        state->cv.notify_all();
      }
    }
  };
  const std::size_t helpers = std::min(workers_.size(), n - 1);
  for (std::size_t h = 0; h < helpers; ++h) {
    // A helper that starts after all items are claimed returns at once; it never touches fn.
    Submit(run_items);
  }
  run_items();
  std::unique_lock<std::mutex> lock(state->mutex);
  state->cv.wait(lock, [&] { return state->done.load() == n; });
}

}  // namespace larserve
