#include "larserve/runtime/memory_planner.h"

#include <gtest/gtest.h>

#include "larserve/core/rng.h"

namespace larserve::runtime {
namespace {

// No two buffers alive at the same step may overlap in memory.
void ExpectValid(const std::vector<BufferRequest>& req, const MemoryPlan& plan) {
  for (std::size_t a = 0; a < req.size(); ++a) {
    EXPECT_EQ(plan.offsets[a] % 64, 0u);
    EXPECT_LE(plan.offsets[a] + req[a].bytes, plan.arena_bytes);
    for (std::size_t b = a + 1; b < req.size(); ++b) {
      const bool alive_together =
          req[a].first_step <= req[b].last_step && req[b].first_step <= req[a].last_step;
      const bool overlap = plan.offsets[a] < plan.offsets[b] + req[b].bytes &&
                           plan.offsets[b] < plan.offsets[a] + req[a].bytes;
      EXPECT_FALSE(alive_together && overlap) << a << " and " << b;
    }
  }
}

TEST(MemoryPlannerTest, ChainReusesMemory) {
  // A chain a -> b -> c -> d: each tensor is read only by the next step, so two buffers suffice.
  std::vector<BufferRequest> req = {{1024, 0, 1}, {1024, 1, 2}, {1024, 2, 3}, {1024, 3, 4}};
  MemoryPlan plan = PlanMemory(req);
  ExpectValid(req, plan);
  EXPECT_EQ(plan.arena_bytes, 2048u);
  EXPECT_EQ(plan.unshared_bytes, 4096u);
}

TEST(MemoryPlannerTest, RandomLifetimesNeverCollide) {
  Rng rng(4);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<BufferRequest> req;
    for (int i = 0; i < 40; ++i) {
      const int first = static_cast<int>(rng.Uniform(0, 30));
      req.push_back({static_cast<std::size_t>(rng.Uniform(1, 5000)), first,
                     first + static_cast<int>(rng.Uniform(0, 8))});
    }
    MemoryPlan plan = PlanMemory(req);
    ExpectValid(req, plan);
    EXPECT_LE(plan.arena_bytes, plan.unshared_bytes);
  }
}

}  // namespace
}  // namespace larserve::runtime
