#include "larserve/core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace larserve {
namespace {

TEST(ThreadPoolTest, ParallelForVisitsEveryIndexOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(1000);
    pool.ParallelFor(0, hits.size(), [&](std::size_t i) { hits[i].fetch_add(1); });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
}

TEST(ThreadPoolTest, NestedParallelForDoesNotDeadlock) {
  ThreadPool pool(3);
  std::atomic<int> total{0};
  pool.ParallelFor(0, 8, [&](std::size_t) {
    pool.ParallelFor(0, 16, [&](std::size_t) { total.fetch_add(1); });
  });
  EXPECT_EQ(total.load(), 8 * 16);
}

TEST(ThreadPoolTest, SubmitRunsTasks) {
  std::atomic<int> done{0};
  {
    ThreadPool pool(2);
    for (int i = 0; i < 50; ++i) pool.Submit([&] { done.fetch_add(1); });
  }  // the destructor drains the queue
  EXPECT_EQ(done.load(), 50);
}

}  // namespace
}  // namespace larserve
