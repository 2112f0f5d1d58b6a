#include "larserve/reco/patch_selection.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace larserve::reco {
namespace {

using testing::AddTruth;
using testing::MakePlane;

struct Fixture {
  sim::PlaneData plane = MakePlane(2, 200, 2000);
  std::vector<sim::TruthParticle> particles;
  std::vector<Hit> hits;
  std::vector<HitTruth> truth;
};

// One hit per wire at tick 1000 on wires 20-179 (a track line across the drift), each over a
// truth pixel: shower on wires divisible by 10 (16 em hits), track on the others (144).
Fixture MakeFixture() {
  Fixture f;
  f.particles.resize(2);
  f.particles[0].category = sim::Category::kTrack;
  f.particles[1] = {};
  f.particles[1].id = 1;
  f.particles[1].category = sim::Category::kShower;
  for (int w = 20; w < 180; ++w) {
    Hit h;
    h.wire = w;
    h.peak_tick = 1000.2f;
    h.start_tick = 995;
    h.end_tick = 1006;
    h.integral = 100;
    f.hits.push_back(h);
    const int id = w % 10 == 0 ? 1 : 0;
    AddTruth(&f.plane, w, 1000, id, 5000.0f);
    HitTruth t;
    t.truth_id = id;
    t.category = f.particles[id].category;
    t.charge = 5000;
    t.fraction = 1;
    f.truth.push_back(t);
  }
  return f;
}

TEST(PatchSelection, BalanceNoneKeepsEveryHit) {
  Fixture f = MakeFixture();
  auto idx = TruthIndex::Create(f.plane, f.particles);
  ASSERT_TRUE(idx.ok());
  SelectionConfig config;
  config.balance = false;
  const auto views = PlaneViews(2, 200);
  auto sel = SelectPatches(f.hits, f.truth, *idx, views, 2000, config, 42);
  ASSERT_TRUE(sel.ok()) << sel.status().ToString();
  ASSERT_EQ(sel->size(), f.hits.size());
  for (std::size_t i = 0; i < sel->size(); ++i) {
    EXPECT_FALSE((*sel)[i].empty);
    EXPECT_EQ((*sel)[i].hit, static_cast<int>(i));
    EXPECT_EQ((*sel)[i].centre.wire, f.hits[i].wire);
    EXPECT_EQ((*sel)[i].centre.tick, f.hits[i].peak_tick);
  }
}

TEST(PatchSelection, TracksSubsampledEmKept) {
  Fixture f = MakeFixture();
  auto idx = TruthIndex::Create(f.plane, f.particles);
  ASSERT_TRUE(idx.ok());
  const auto views = PlaneViews(2, 200);
  SelectionConfig config;
  config.empty_per_hit = 0;
  config.track_keep = 0;
  auto sel = SelectPatches(f.hits, f.truth, *idx, views, 2000, config, 1);
  ASSERT_TRUE(sel.ok());
  ASSERT_EQ(sel->size(), 16u);  // the em hits only: wires 20, 30, ..., 170
  for (const auto& s : *sel) EXPECT_EQ(s.truth.category, sim::Category::kShower);

  config.track_keep = 0.2;
  auto some = SelectPatches(f.hits, f.truth, *idx, views, 2000, config, 1);
  ASSERT_TRUE(some.ok());
  const int tracks = static_cast<int>(some->size()) - 16;
  EXPECT_GT(tracks, 144 * 0.2 - 4 * std::sqrt(144 * 0.2 * 0.8));
  EXPECT_LT(tracks, 144 * 0.2 + 4 * std::sqrt(144 * 0.2 * 0.8));
  // Deterministic for a seed, different for another.
  auto again = SelectPatches(f.hits, f.truth, *idx, views, 2000, config, 1);
  auto other = SelectPatches(f.hits, f.truth, *idx, views, 2000, config, 2);
  ASSERT_EQ(again->size(), some->size());
  bool differs = other->size() != some->size();
  for (std::size_t i = 0; i < some->size(); ++i) {
    EXPECT_EQ((*again)[i].hit, (*some)[i].hit);
    if (!differs && (*other)[i].hit != (*some)[i].hit) differs = true;
  }
  EXPECT_TRUE(differs);
}

TEST(PatchSelection, EmptyPatchesAreNearButOffSignal) {
  Fixture f = MakeFixture();
  auto idx = TruthIndex::Create(f.plane, f.particles);
  ASSERT_TRUE(idx.ok());
  const auto views = PlaneViews(2, 200);  // faces [0, 100) and [100, 200)
  SelectionConfig config;
  config.track_keep = 1;
  config.empty_per_hit = 2;
  auto sel = SelectPatches(f.hits, f.truth, *idx, views, 2000, config, 5);
  ASSERT_TRUE(sel.ok());
  int empties = 0;
  for (const auto& s : *sel) {
    if (!s.empty) {
      EXPECT_EQ(empties, 0) << "hit patches come first";
      continue;
    }
    ++empties;
    const Hit& h = f.hits[s.hit];
    const int w = s.centre.wire, t = static_cast<int>(s.centre.tick);
    EXPECT_EQ(s.truth.category, sim::Category::kNone);
    EXPECT_LE(std::abs(w - h.wire), config.empty_max_wire_offset);
    EXPECT_LE(std::abs(t - 1000), config.empty_max_tick_offset);
    EXPECT_EQ(w < 100, h.wire < 100) << "an empty patch left the view of its hit";
    // Every hit is at ticks [995, 1006): the centre must be more than 12 ticks away from it
    // (the hits cover every wire from 20 to 179).
    if (w >= 18 && w <= 181) {
      EXPECT_TRUE(t + 12 < 995 || t - 12 >= 1006) << "centre " << w << "," << t;
    }
    EXPECT_EQ(idx->Charge(w, t - 12, t + 13), 0.0f);
  }
  // 2 per hit, of which some draws fail (the box around the track line is excluded).
  EXPECT_GT(empties, 160);
  EXPECT_LE(empties, 320);
}

// --delta-rays size:5: delta rays below 5 MeV are track-labelled (subsampled with the tracks),
// the others em-labelled (all kept); under track and em every delta ray goes one way.
TEST(PatchSelection, SizeSchemeSubsamplesOnlySmallDeltaRays) {
  Fixture f = MakeFixture();
  auto idx = TruthIndex::Create(f.plane, f.particles);
  ASSERT_TRUE(idx.ok());
  // Track hits on wires ending in 5 become delta rays: 2 MeV ones on 25, 45, ..., 165 (8 hits),
  // 20 MeV ones on 35, 55, ..., 175 (8 hits).
  for (std::size_t i = 0; i < f.hits.size(); ++i) {
    const int w = f.hits[i].wire;
    if (w % 10 != 5) continue;
    f.truth[i].category = sim::Category::kDelta;
    f.truth[i].kinetic_mev = w % 20 == 5 ? 2.0f : 20.0f;
  }
  const auto views = PlaneViews(2, 200);
  SelectionConfig config;
  config.empty_per_hit = 0;
  config.track_keep = 0;
  auto count = [&](io::DeltaRays delta, int* small, int* large) {
    config.delta_rays = delta;
    auto sel = SelectPatches(f.hits, f.truth, *idx, views, 2000, config, 1);
    EXPECT_TRUE(sel.ok()) << sel.status().ToString();
    *small = *large = 0;
    for (const auto& s : *sel) {
      if (s.truth.category != sim::Category::kDelta) continue;
      ++(s.truth.kinetic_mev < 5.0f ? *small : *large);
    }
    return static_cast<int>(sel->size());
  };
  int small = 0, large = 0;
  EXPECT_EQ(count(io::DeltaRays::Size(5.0f), &small, &large), 16 + 8);  // showers + large deltas
  EXPECT_EQ(small, 0);
  EXPECT_EQ(large, 8);
  EXPECT_EQ(count(io::DeltaRays::Size(1.0f), &small, &large), 16 + 16);  // every delta is em
  EXPECT_EQ(count(io::DeltaRays::Size(50.0f), &small, &large), 16);      // every delta is track
  EXPECT_EQ(count(io::DeltaRays::Track(), &small, &large), 16);
  EXPECT_EQ(count(io::DeltaRays::Em(), &small, &large), 16 + 16);
}

TEST(PatchSelection, BadInput) {
  Fixture f = MakeFixture();
  auto idx = TruthIndex::Create(f.plane, f.particles);
  ASSERT_TRUE(idx.ok());
  const auto views = PlaneViews(2, 200);
  SelectionConfig config;
  config.track_keep = 1.5;
  EXPECT_FALSE(SelectPatches(f.hits, f.truth, *idx, views, 2000, config, 1).ok());
  f.truth.pop_back();
  EXPECT_FALSE(SelectPatches(f.hits, f.truth, *idx, views, 2000, SelectionConfig(), 1).ok());
}

}  // namespace
}  // namespace larserve::reco
