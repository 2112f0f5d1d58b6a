// The reco front-end on a real simulated event (default configuration: 1 APA of cosmic muons
// and one beam particle): hit counts and truth must be physically sensible.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>

#include "larserve/reco/hit_finder.h"
#include "larserve/reco/patch_maker.h"
#include "larserve/reco/plane_image.h"
#include "larserve/reco/truth_match.h"
#include "larserve/sim/simulator.h"

namespace larserve::reco {
namespace {

class SimulatedEventTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto sim = sim::Simulator::Create(sim::SimConfig());
    ASSERT_TRUE(sim.ok());
    event_ = new sim::SimEvent((*sim)->Simulate(1, 0, nullptr));
  }
  static void TearDownTestSuite() { delete event_; }
  static sim::SimEvent* event_;
};
sim::SimEvent* SimulatedEventTest::event_ = nullptr;

TEST_F(SimulatedEventTest, HitsHaveSensibleTruth) {
  ASSERT_EQ(event_->planes.size(), 3u);
  for (const sim::PlaneData& plane : event_->planes) {
    auto hits = FindHits(plane, HitFinderConfig());
    ASSERT_TRUE(hits.ok()) << hits.status().ToString();
    auto truth = MatchTruth(plane, *hits, event_->particles);
    ASSERT_TRUE(truth.ok()) << truth.status().ToString();
    std::array<int, sim::kNumCategories> count{};
    double fraction = 0;
    for (std::size_t i = 0; i < hits->size(); ++i) {
      const Hit& h = (*hits)[i];
      ASSERT_GE(h.peak_tick, h.start_tick);
      ASSERT_LT(h.peak_tick, h.end_tick);
      ASSERT_GT(h.amplitude, 0.0f);
      ++count[static_cast<int>((*truth)[i].category)];
      fraction += (*truth)[i].fraction;
    }
    const int n = static_cast<int>(hits->size());
    const int track_like = count[1] + count[4];  // track and delta rays
    std::printf(
        "plane %d: %d hits: none %d track %d shower %d michel %d delta %d; mean truth "
        "fraction %.3f\n",
        plane.plane, n, count[0], count[1], count[2], count[3], count[4], fraction / n);
    // A few dozen cosmic muons crossing 2.3 m x 6 m: thousands of hits per plane.
    EXPECT_GT(n, 1000) << "plane " << plane.plane;
    EXPECT_LT(n, 50000) << "plane " << plane.plane;
    // Cosmic muons dominate: most hits are track-like, almost none are noise.
    EXPECT_GT(track_like, 0.8 * n) << "plane " << plane.plane;
    EXPECT_LT(count[0], 0.01 * n) << "plane " << plane.plane;
    // A hit mostly measures one particle.
    EXPECT_GT(fraction / n, 0.8) << "plane " << plane.plane;
  }
}

TEST_F(SimulatedEventTest, PatchesAreCentredOnSignal) {
  const sim::PlaneData& w = event_->planes[2];
  auto hits = FindHits(w, HitFinderConfig());
  ASSERT_TRUE(hits.ok());
  auto image = PlaneImage::Create(w);
  ASSERT_TRUE(image.ok());
  const PatchConfig config;
  std::vector<DownsampledView> views;
  for (const WireRange& r : PlaneViews(2, w.n_channels)) {
    auto v = DownsampledView::Create(*image, config, r);
    ASSERT_TRUE(v.ok());
    views.push_back(std::move(*v));
  }
  std::vector<float> patch(config.patch_size());
  int strong = 0, lit = 0;
  for (const Hit& h : *hits) {
    if (h.amplitude < 10 || h.chi2_ndf < 0) continue;
    ++strong;
    const DownsampledView& v = views[h.wire < w.n_channels / 2 ? 0 : 1];
    v.FillPatch(h.wire, h.peak_tick, patch.data());
    // The centre pixel (row 24, column 24) is the mean of the 6-tick window holding the peak.
    if (patch[24 * 48 + 24] > config.zero_level() + 1.0f) ++lit;
  }
  ASSERT_GT(strong, 100);
  EXPECT_GT(lit, 0.95 * strong);
}

}  // namespace
}  // namespace larserve::reco
