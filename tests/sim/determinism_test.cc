#include <gtest/gtest.h>

#include <cstring>

#include "larserve/sim/simulator.h"

namespace larserve::sim {
namespace {

void ExpectSameEvent(const SimEvent& a, const SimEvent& b) {
  ASSERT_EQ(a.particles.size(), b.particles.size());
  for (std::size_t i = 0; i < a.particles.size(); ++i) {
    EXPECT_EQ(std::memcmp(&a.particles[i], &b.particles[i], sizeof(TruthParticle)), 0) << i;
  }
  ASSERT_EQ(a.planes.size(), b.planes.size());
  for (std::size_t k = 0; k < a.planes.size(); ++k) {
    EXPECT_EQ(a.planes[k].signal, b.planes[k].signal) << k;
    EXPECT_EQ(a.planes[k].roi_start, b.planes[k].roi_start) << k;
    EXPECT_EQ(a.planes[k].truth_id, b.planes[k].truth_id) << k;
    EXPECT_EQ(a.planes[k].truth_charge, b.planes[k].truth_charge) << k;
  }
}

TEST(DeterminismTest, SameSeedSameEventWhateverTheThreads) {
  auto sim = Simulator::Create(SimConfig());
  ASSERT_TRUE(sim.ok());
  ThreadPool one(1), three(3);
  SimEvent a = (*sim)->Simulate(123, 4, nullptr);
  SimEvent b = (*sim)->Simulate(123, 4, &three);
  SimEvent c = (*sim)->Simulate(123, 4, &one);
  ExpectSameEvent(a, b);
  ExpectSameEvent(a, c);
  SimEvent other = (*sim)->Simulate(124, 4, nullptr);
  EXPECT_NE(a.planes[2].signal, other.planes[2].signal);
}

TEST(DeterminismTest, EventContentIsPlausible) {
  auto sim = Simulator::Create(SimConfig());
  ASSERT_TRUE(sim.ok());
  SimEvent ev = (*sim)->Simulate(1, 0, nullptr);
  EXPECT_GT(ev.n_cosmics, 5);  // dozens of cosmics in a 5 ms window on a 7 m x 6 m x 2.3 m volume
  EXPECT_EQ(ev.n_beam, 1);
  EXPECT_EQ(ev.planes.size(), 3u);
  for (const auto& p : ev.planes) {
    EXPECT_FALSE(p.signal.empty());
    EXPECT_FALSE(p.truth_id.empty());
    for (std::size_t r = 0; r < p.roi_channel.size(); ++r) {
      ASSERT_LE(p.roi_start[r] + p.roi_length[r], p.n_ticks);
      ASSERT_LE(p.roi_offset[r] + p.roi_length[r], static_cast<int64_t>(p.signal.size()));
    }
  }
}

}  // namespace
}  // namespace larserve::sim
