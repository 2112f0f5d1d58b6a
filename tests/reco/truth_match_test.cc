#include "larserve/reco/truth_match.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace larserve::reco {
namespace {

using testing::AddTruth;
using testing::MakePlane;

std::vector<sim::TruthParticle> Particles() {
  std::vector<sim::TruthParticle> p(4);
  const sim::Category cats[4] = {sim::Category::kTrack, sim::Category::kDelta,
                                 sim::Category::kMichel, sim::Category::kShower};
  const float kinetic[4] = {2000.0f, 3.5f, 40.0f, 150.0f};
  for (int i = 0; i < 4; ++i) {
    p[i].id = i;
    p[i].category = cats[i];
    p[i].kinetic_mev = kinetic[i];
  }
  return p;
}

Hit MakeHit(int wire, int start, int end) {
  Hit h;
  h.wire = wire;
  h.start_tick = start;
  h.end_tick = end;
  h.peak_tick = 0.5f * (start + end);
  return h;
}

TEST(TruthMatch, DominantParticleAndFraction) {
  sim::PlaneData p = MakePlane(2, 10, 500);
  for (int t = 95; t < 100; ++t) AddTruth(&p, 3, t, 0, 100.0f);   // muon: 500 e
  for (int t = 100; t < 106; ++t) AddTruth(&p, 3, t, 2, 300.0f);  // Michel: 1800 e
  AddTruth(&p, 4, 100, 1, 5000.0f);  // another wire: never counted for wire 3
  const auto particles = Particles();
  std::vector<Hit> hits = {MakeHit(3, 90, 110),  MakeHit(3, 90, 100),  MakeHit(3, 100, 101),
                           MakeHit(3, 200, 220), MakeHit(4, 100, 101), MakeHit(5, 0, 500)};
  auto truth = MatchTruth(p, hits, particles);
  ASSERT_TRUE(truth.ok()) << truth.status().ToString();
  ASSERT_EQ(truth->size(), hits.size());
  // Both particles in the window: the Michel dominates with 1800 of 2300 electrons.
  EXPECT_EQ((*truth)[0].truth_id, 2);
  EXPECT_EQ((*truth)[0].category, sim::Category::kMichel);
  EXPECT_FLOAT_EQ((*truth)[0].charge, 2300.0f);
  EXPECT_FLOAT_EQ((*truth)[0].fraction, 1800.0f / 2300.0f);
  // [90, 100): the end tick is exclusive, only the muon.
  EXPECT_EQ((*truth)[1].truth_id, 0);
  EXPECT_EQ((*truth)[1].category, sim::Category::kTrack);
  EXPECT_FLOAT_EQ((*truth)[1].charge, 500.0f);
  EXPECT_FLOAT_EQ((*truth)[1].fraction, 1.0f);
  // [100, 101): the start tick is inclusive.
  EXPECT_EQ((*truth)[2].truth_id, 2);
  EXPECT_FLOAT_EQ((*truth)[2].charge, 300.0f);
  // Nothing there: a noise hit.
  EXPECT_EQ((*truth)[3].truth_id, -1);
  EXPECT_EQ((*truth)[3].category, sim::Category::kNone);
  EXPECT_EQ((*truth)[3].charge, 0.0f);
  EXPECT_EQ((*truth)[3].fraction, 0.0f);
  EXPECT_EQ((*truth)[4].category, sim::Category::kDelta);
  EXPECT_EQ((*truth)[5].truth_id, -1);
  // The dominant particle's kinetic energy at creation (the size delta-ray scheme needs it);
  // NaN without a particle.
  EXPECT_EQ((*truth)[0].kinetic_mev, 40.0f);
  EXPECT_EQ((*truth)[1].kinetic_mev, 2000.0f);
  EXPECT_EQ((*truth)[4].kinetic_mev, 3.5f);
  EXPECT_TRUE(std::isnan((*truth)[3].kinetic_mev));
  EXPECT_TRUE(std::isnan((*truth)[5].kinetic_mev));
  // The label of the 3.5 MeV delta ray: track below a 5 MeV threshold, em below 3.
  EXPECT_EQ(LabelOfTruth((*truth)[4], io::DeltaRays::Size(5.0f)), io::PatchLabel::kTrack);
  EXPECT_EQ(LabelOfTruth((*truth)[4], io::DeltaRays::Size(3.0f)), io::PatchLabel::kEm);
  EXPECT_EQ(LabelOfTruth((*truth)[4], io::DeltaRays::Track()), io::PatchLabel::kTrack);
  EXPECT_EQ(LabelOfTruth((*truth)[0], io::DeltaRays::Size(5.0f)), io::PatchLabel::kEm);
  EXPECT_EQ(LabelOfTruth((*truth)[3], io::DeltaRays::Size(5.0f)), io::PatchLabel::kNone);
}

TEST(TruthMatch, IndexQueries) {
  sim::PlaneData p = MakePlane(0, 3, 100);
  AddTruth(&p, 0, 99, 3, 10.0f);
  AddTruth(&p, 2, 0, 3, 20.0f);
  AddTruth(&p, 2, 50, 1, 30.0f);
  const auto particles = Particles();
  auto idx = TruthIndex::Create(p, particles);
  ASSERT_TRUE(idx.ok());
  EXPECT_FLOAT_EQ(idx->Charge(0, 0, 100), 10.0f);
  EXPECT_FLOAT_EQ(idx->Charge(1, 0, 100), 0.0f);
  EXPECT_FLOAT_EQ(idx->Charge(2, -5, 51), 50.0f);
  EXPECT_FLOAT_EQ(idx->Charge(2, 1, 50), 0.0f);
  EXPECT_FLOAT_EQ(idx->Charge(7, 0, 100), 0.0f);  // outside the plane: nothing
  EXPECT_EQ(idx->Match(2, 0, 100).category, sim::Category::kDelta);
}

TEST(TruthMatch, InvalidTruthIsRefused) {
  const auto particles = Particles();
  sim::PlaneData unsorted = MakePlane(2, 10, 100);
  AddTruth(&unsorted, 3, 10, 0, 1.0f);
  AddTruth(&unsorted, 3, 9, 0, 1.0f);
  auto r = TruthIndex::Create(unsorted, particles);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("order"), std::string::npos) << r.status().message();

  sim::PlaneData bad_id = MakePlane(2, 10, 100);
  AddTruth(&bad_id, 3, 10, 4, 1.0f);  // 4 particles: ids 0-3
  r = TruthIndex::Create(bad_id, particles);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("particle 4"), std::string::npos);

  sim::PlaneData outside = MakePlane(2, 10, 100);
  AddTruth(&outside, 10, 10, 0, 1.0f);
  EXPECT_FALSE(TruthIndex::Create(outside, particles).ok());

  sim::PlaneData ragged = MakePlane(2, 10, 100);
  AddTruth(&ragged, 1, 10, 0, 1.0f);
  ragged.truth_charge.push_back(3.0f);
  EXPECT_FALSE(TruthIndex::Create(ragged, particles).ok());
}

}  // namespace
}  // namespace larserve::reco
