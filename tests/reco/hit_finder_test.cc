#include "larserve/reco/hit_finder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "larserve/core/rng.h"
#include "test_util.h"

namespace larserve::reco {
namespace {

using testing::AddRoi;
using testing::Gaussians;
using testing::MakePlane;
using testing::Peak;

const double kSqrt2Pi = std::sqrt(2.0 * std::numbers::pi);

TEST(HitFinder, SingleGaussianRecovered) {
  sim::PlaneData p = MakePlane(2, 4, 300);
  AddRoi(&p, 1, 50, Gaussians(50, 100, {{20.0, 100.3, 3.0}}));
  auto hits = FindHits(p, HitFinderConfig());
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  ASSERT_EQ(hits->size(), 1u);
  const Hit& h = (*hits)[0];
  EXPECT_EQ(h.wire, 1);
  EXPECT_NEAR(h.peak_tick, 100.3, 1e-3);
  EXPECT_NEAR(h.rms_ticks, 3.0, 1e-3);
  EXPECT_NEAR(h.amplitude, 20.0, 1e-2);
  EXPECT_NEAR(h.integral, 20.0 * 3.0 * kSqrt2Pi, 0.05);
  // The pulse runs down both slopes to 1 noise sigma (0.5 ADC): +-8.1 ticks, 99.3% of the area.
  EXPECT_EQ(h.start_tick, 93);
  EXPECT_EQ(h.end_tick, 109);
  EXPECT_NEAR(h.summed_adc, 20.0 * 3.0 * kSqrt2Pi, 0.01 * 150.4);
  EXPECT_EQ(h.multiplicity, 1);
  EXPECT_GE(h.chi2_ndf, 0.0f);
  EXPECT_LT(h.chi2_ndf, 1e-3f);
}

TEST(HitFinder, GaussianWithNoiseRecovered) {
  sim::PlaneData p = MakePlane(2, 1, 400, 0.5f);
  std::vector<float> v = Gaussians(0, 400, {{25.0, 201.7, 2.7}});
  Rng rng(7);
  for (float& x : v) x += static_cast<float>(rng.Normal(0, 0.5));
  AddRoi(&p, 0, 0, v);
  auto hits = FindHits(p, HitFinderConfig());
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 1u) << "noise made extra hits";
  EXPECT_NEAR((*hits)[0].peak_tick, 201.7, 0.1);
  EXPECT_NEAR((*hits)[0].rms_ticks, 2.7, 0.15);
  EXPECT_NEAR((*hits)[0].integral, 25.0 * 2.7 * kSqrt2Pi, 5.0);
  EXPECT_LT((*hits)[0].chi2_ndf, 3.0f);  // residuals are the noise: chi2/ndf ~ 1
}

TEST(HitFinder, OverlappingPeaksAreSplitAndFitted) {
  sim::PlaneData p = MakePlane(0, 3, 300);
  AddRoi(&p, 2, 60, Gaussians(60, 80, {{20.0, 90.0, 3.0}, {15.0, 101.5, 3.5}}));
  auto hits = FindHits(p, HitFinderConfig());
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 2u);
  const Hit &a = (*hits)[0], &b = (*hits)[1];
  EXPECT_NEAR(a.peak_tick, 90.0, 1e-2);
  EXPECT_NEAR(a.rms_ticks, 3.0, 1e-2);
  EXPECT_NEAR(a.amplitude, 20.0, 2e-2);
  EXPECT_NEAR(b.peak_tick, 101.5, 1e-2);
  EXPECT_NEAR(b.rms_ticks, 3.5, 1e-2);
  EXPECT_NEAR(b.integral, 15.0 * 3.5 * kSqrt2Pi, 0.1);
  EXPECT_EQ(a.multiplicity, 2);
  EXPECT_EQ(b.local_index, 1);
  // The pulse train is cut at the dip: a's window ends where b's begins, between the peaks.
  EXPECT_EQ(a.end_tick, b.start_tick);
  EXPECT_GT(a.end_tick, 92);
  EXPECT_LT(a.end_tick, 100);
}

TEST(HitFinder, ShallowDipIsOnePeak) {
  // Two close Gaussians whose sum dips by less than 2 noise sigma (1 ADC): one hit, as a noise
  // wiggle on a broad pulse must not make two.
  sim::PlaneData p = MakePlane(2, 1, 200);
  std::vector<float> v = Gaussians(0, 200, {{20.0, 100.0, 3.0}});
  v[103] += 0.6f;  // a small bump on the falling slope, not a separate peak
  AddRoi(&p, 0, 0, v);
  auto hits = FindHits(p, HitFinderConfig());
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->size(), 1u);
}

TEST(HitFinder, ThresholdIsRespected) {
  // noise 0.5 ADC, 5 sigma: threshold 2.5 ADC on every plane by default.
  sim::PlaneData p = MakePlane(1, 3, 300);
  AddRoi(&p, 0, 0, Gaussians(0, 300, {{2.4, 150.0, 3.0}}));  // below
  AddRoi(&p, 1, 0, Gaussians(0, 300, {{2.6, 150.0, 3.0}}));  // above
  auto hits = FindHits(p, HitFinderConfig());
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_EQ((*hits)[0].wire, 1);
  EXPECT_FLOAT_EQ(HitThresholdAdc(p, HitFinderConfig()), 2.5f);

  // The per-plane threshold: 10 sigma on V (plane 1) drops both.
  HitFinderConfig strict;
  strict.threshold_sigma[1] = 10.0f;
  auto none = FindHits(p, strict);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  // Without noise the floor min_threshold_adc applies.
  sim::PlaneData quiet = MakePlane(2, 1, 300, 0.0f);
  AddRoi(&quiet, 0, 0, Gaussians(0, 300, {{0.9, 150.0, 3.0}}));
  EXPECT_TRUE(FindHits(quiet, HitFinderConfig())->empty());
}

TEST(HitFinder, EmptyPlaneHasNoHits) {
  sim::PlaneData p = MakePlane(2, 960, 6000);
  auto hits = FindHits(p, HitFinderConfig());
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE(hits->empty());
  // ROIs of zeros and of negative values only: no hits either.
  AddRoi(&p, 3, 10, std::vector<float>(50, 0.0f));
  AddRoi(&p, 4, 10, std::vector<float>(50, -5.0f));
  EXPECT_TRUE(FindHits(p, HitFinderConfig())->empty());
}

TEST(HitFinder, HitsOrderedByWireThenTick) {
  sim::PlaneData p = MakePlane(2, 5, 1000);
  AddRoi(&p, 0, 500, Gaussians(500, 100, {{10.0, 550.0, 3.0}}));
  AddRoi(&p, 3, 100, Gaussians(100, 60, {{10.0, 130.0, 3.0}}));
  AddRoi(&p, 3, 700, Gaussians(700, 60, {{10.0, 720.0, 3.0}, {12.0, 740.0, 3.0}}));
  AddRoi(&p, 4, 0, Gaussians(0, 60, {{10.0, 30.0, 3.0}}));
  auto hits = FindHits(p, HitFinderConfig());
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 5u);
  for (std::size_t i = 1; i < hits->size(); ++i) {
    const Hit &a = (*hits)[i - 1], &b = (*hits)[i];
    EXPECT_TRUE(a.wire < b.wire || (a.wire == b.wire && a.peak_tick < b.peak_tick));
  }
  for (const Hit& h : *hits) {
    EXPECT_GE(h.peak_tick, h.start_tick);
    EXPECT_LT(h.peak_tick, h.end_tick);
  }
}

TEST(HitFinder, LongPulseIsCutIntoHits) {
  // A 64-tick flat top (a track along the drift direction). With a strict fit-quality cut the
  // single Gaussian is rejected and the pulse is cut into hits of ~16 ticks (GausHitFinder's
  // long-pulse treatment) whose summed ADC adds up to the pulse.
  std::vector<Peak> box;
  for (int t = 100; t < 164; ++t) box.push_back({4.0, t + 0.5, 2.66});
  sim::PlaneData p = MakePlane(2, 1, 400);
  const std::vector<float> v = Gaussians(0, 400, box);
  AddRoi(&p, 0, 0, v);
  HitFinderConfig config;
  config.max_chi2_ndf = 5.0f;
  auto hits = FindHits(p, config);
  ASSERT_TRUE(hits.ok());
  ASSERT_GE(hits->size(), 4u);
  ASSERT_LE(hits->size(), 6u);
  double sum = 0, pulse = 0;
  for (const Hit& h : *hits) {
    EXPECT_EQ(h.chi2_ndf, -1.0f);
    EXPECT_EQ(h.multiplicity, static_cast<int>(hits->size()));
    EXPECT_FLOAT_EQ(h.integral, h.summed_adc);
    sum += h.summed_adc;
  }
  for (int i = (*hits)[0].start_tick; i < hits->back().end_tick; ++i) pulse += v[i];
  EXPECT_NEAR(sum, pulse, 1e-3 * pulse);

  // With the default cut the flat top is one broad Gaussian hit.
  auto one = FindHits(p, HitFinderConfig());
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_NEAR((*one)[0].peak_tick, 132.0, 0.5);
  EXPECT_GT((*one)[0].rms_ticks, 15.0f);
}

TEST(HitFinder, TooManyPeaksMakeALongPulse) {
  // Seven resolved peaks in one pulse train: more than max_multi_hit (5) -> long pulse.
  std::vector<Peak> peaks;
  for (int k = 0; k < 7; ++k) peaks.push_back({20.0, 100.0 + 9 * k, 2.5});
  sim::PlaneData p = MakePlane(2, 1, 400);
  AddRoi(&p, 0, 0, Gaussians(0, 400, peaks));
  auto hits = FindHits(p, HitFinderConfig());
  ASSERT_TRUE(hits.ok());
  ASSERT_FALSE(hits->empty());
  for (const Hit& h : *hits) EXPECT_EQ(h.chi2_ndf, -1.0f);
  HitFinderConfig more;
  more.max_multi_hit = 8;
  auto fitted = FindHits(p, more);
  ASSERT_TRUE(fitted.ok());
  ASSERT_EQ(fitted->size(), 7u);
  for (int k = 0; k < 7; ++k) EXPECT_NEAR((*fitted)[k].peak_tick, 100.0 + 9 * k, 1e-2);
}

TEST(HitFinder, InvalidInputIsRefused) {
  sim::PlaneData p = MakePlane(2, 4, 100);
  AddRoi(&p, 1, 90, std::vector<float>(20, 1.0f));  // runs past the last tick
  auto r = FindHits(p, HitFinderConfig());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("ROI 0"), std::string::npos) << r.status().message();

  sim::PlaneData q = MakePlane(2, 4, 100);
  AddRoi(&q, 2, 10, std::vector<float>(5, 1.0f));
  AddRoi(&q, 1, 10, std::vector<float>(5, 1.0f));  // channel order broken
  EXPECT_FALSE(FindHits(q, HitFinderConfig()).ok());

  HitFinderConfig bad;
  bad.threshold_sigma[0] = -1;
  EXPECT_FALSE(FindHits(MakePlane(0, 4, 100), bad).ok());
}

}  // namespace
}  // namespace larserve::reco
