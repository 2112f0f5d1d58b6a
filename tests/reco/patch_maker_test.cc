#include "larserve/reco/patch_maker.h"

#include <gtest/gtest.h>

#include "larserve/core/rng.h"
#include "test_util.h"

namespace larserve::reco {
namespace {

using testing::AddRoi;
using testing::MakePlane;

// LArSoft, written out naively: DataProviderAlg::downscaleMean + scaleAdcSamples on every wire,
// then patchFromDownsampledView, for a view of wires [begin, end).
std::vector<float> ReferencePatch(const PlaneImage& img, const PatchConfig& c, WireRange view,
                                  int wire, float drift) {
  const std::size_t n_drifts = img.n_ticks() / c.drift_window;
  const float inv = static_cast<float>(1.0 / c.drift_window);
  const float scale = (c.out_max - c.out_min) / (c.adc_max - c.adc_min);
  const float zero = c.out_min + scale * (0 - c.adc_min);
  std::vector<std::vector<float>> data(view.end - view.begin, std::vector<float>(n_drifts));
  for (int w = view.begin; w < view.end; ++w) {
    for (std::size_t i = 0, k0 = 0; i < n_drifts; ++i, k0 += c.drift_window) {
      float sum = 0;
      for (std::size_t k = k0; k < k0 + c.drift_window; ++k) sum += img.at(w, k) * 1.0f;
      float v = sum * inv;
      if (v < c.adc_min) v = c.adc_min;
      if (v > c.adc_max) v = c.adc_max;
      data[w - view.begin][i] = c.out_min + scale * (v - c.adc_min);
    }
  }
  std::vector<float> patch(c.patch_wires * c.patch_drifts);
  const int half_w = c.patch_wires / 2, half_d = c.patch_drifts / 2;
  const int sd = drift >= 0 ? static_cast<int>(drift / c.drift_window)
                            : static_cast<int>(std::floor(drift / c.drift_window));
  for (int w = wire - half_w, wp = 0; w < wire + half_w; ++w, ++wp) {
    for (int d = sd - half_d, dp = 0; d < sd + half_d; ++d, ++dp) {
      const bool inside =
          w >= view.begin && w < view.end && d >= 0 && d < static_cast<int>(n_drifts);
      patch[wp * c.patch_drifts + dp] = inside ? data[w - view.begin][d] : zero;
    }
  }
  return patch;
}

TEST(PatchConfig, ScalingNumbers) {
  const PatchConfig c;
  ASSERT_TRUE(c.Validate().ok());
  EXPECT_FLOAT_EQ(c.scale(), 0.5f);            // (15 - -5) / (30 - -10)
  EXPECT_FLOAT_EQ(c.zero_level(), 0.0f);       // -5 + 0.5 * 10
  EXPECT_FLOAT_EQ(c.ScaleAdc(-20.0f), -5.0f);  // clipped to AdcMin
  EXPECT_FLOAT_EQ(c.ScaleAdc(-10.0f), -5.0f);
  EXPECT_FLOAT_EQ(c.ScaleAdc(0.0f), 0.0f);
  EXPECT_FLOAT_EQ(c.ScaleAdc(10.0f), 5.0f);
  EXPECT_FLOAT_EQ(c.ScaleAdc(30.0f), 15.0f);
  EXPECT_FLOAT_EQ(c.ScaleAdc(100.0f), 15.0f);  // clipped to AdcMax
  PatchConfig unit;
  unit.out_min = 0;
  unit.out_max = 1;
  EXPECT_FLOAT_EQ(unit.zero_level(), 0.25f);  // 0 + (1 / 40) * 10

  PatchConfig odd;
  odd.patch_wires = 47;
  EXPECT_FALSE(odd.Validate().ok());
  PatchConfig flat;
  flat.adc_max = flat.adc_min;
  EXPECT_FALSE(flat.Validate().ok());
  PatchConfig window;
  window.drift_window = 0;
  EXPECT_FALSE(window.Validate().ok());
}

class PatchMakerTest : public ::testing::Test {
 protected:
  // 60 wires x 600 ticks (100 drift bins).
  void SetUp() override {
    plane_ = MakePlane(2, 60, 600);
    // Random signal on a few wires, including the first and the last, and near tick 0 and the
    // end, for the comparison with the reference (ROIs go in (wire, tick) order).
    Rng rng(3);
    auto random_wire = [&](int w) {
      std::vector<float> r(40);
      for (float& x : r) x = static_cast<float>(rng.Normal(5, 15));
      AddRoi(&plane_, w, 0, r);
      AddRoi(&plane_, w, 300, r);
      AddRoi(&plane_, w, 560, r);
    };
    random_wire(0);
    random_wire(1);
    // Wire 10 holds hand-made windows of 6 ticks:
    // ticks 6-11: 1..6 -> mean 3.5 -> -5 + 0.5 * 13.5 = 1.75
    // ticks 12-17: 60 -> clipped to 30 -> 15; ticks 18-23: -40 -> clipped to -10 -> -5
    // ticks 24-29: 6 -> 3; ticks 30-35: only tick 35 = 12 -> mean 2 -> 1
    std::vector<float> v = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < 6; ++i) v.push_back(60);
    for (int i = 0; i < 6; ++i) v.push_back(-40);
    for (int i = 0; i < 6; ++i) v.push_back(6);
    for (int i = 0; i < 5; ++i) v.push_back(0);
    v.push_back(12);
    AddRoi(&plane_, 10, 6, v);
    for (int w : {25, 58, 59}) random_wire(w);
    auto img = PlaneImage::Create(plane_);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    image_ = std::make_unique<PlaneImage>(std::move(*img));
  }

  sim::PlaneData plane_;
  std::unique_ptr<PlaneImage> image_;
};

TEST_F(PatchMakerTest, PlaneImageIsTheRois) {
  EXPECT_EQ(image_->n_wires(), 60);
  EXPECT_EQ(image_->n_ticks(), 600);
  EXPECT_EQ(image_->at(10, 5), 0.0f);
  EXPECT_EQ(image_->at(10, 6), 1.0f);
  EXPECT_EQ(image_->at(10, 35), 12.0f);
  EXPECT_EQ(image_->at(10, 36), 0.0f);
  EXPECT_EQ(image_->at(11, 10), 0.0f);
}

TEST_F(PatchMakerTest, MeanDownsamplingAndScalingByHand) {
  auto view = DownsampledView::Create(*image_, PatchConfig());
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  EXPECT_EQ(view->n_drifts(), 100);
  EXPECT_FLOAT_EQ(view->at(10, 0), 0.0f);  // zero signal -> the zero level
  EXPECT_FLOAT_EQ(view->at(10, 1), 1.75f);
  EXPECT_FLOAT_EQ(view->at(10, 2), 15.0f);
  EXPECT_FLOAT_EQ(view->at(10, 3), -5.0f);
  EXPECT_FLOAT_EQ(view->at(10, 4), 3.0f);
  EXPECT_FLOAT_EQ(view->at(10, 5), 1.0f);
  EXPECT_FLOAT_EQ(view->at(-1, 1), 0.0f);  // outside the view: the zero level
  EXPECT_FLOAT_EQ(view->at(10, 100), 0.0f);
}

TEST_F(PatchMakerTest, PatchByHand) {
  auto view = DownsampledView::Create(*image_, PatchConfig());
  ASSERT_TRUE(view.ok());
  // Centre (wire 10, tick 8.0): sd = (size_t)(8 / 6) = 1, wires [-14, 34), bins [-23, 25).
  // Wire 10 is row 24, bin b is column b + 23.
  std::vector<float> patch(48 * 48, -99.0f);
  view->FillPatch(10, 8.0f, patch.data());
  auto at = [&](int r, int c) { return patch[r * 48 + c]; };
  EXPECT_FLOAT_EQ(at(24, 23), 0.0f);  // bin 0
  EXPECT_FLOAT_EQ(at(24, 24), 1.75f);
  EXPECT_FLOAT_EQ(at(24, 25), 15.0f);
  EXPECT_FLOAT_EQ(at(24, 26), -5.0f);
  EXPECT_FLOAT_EQ(at(24, 27), 3.0f);
  EXPECT_FLOAT_EQ(at(24, 28), 1.0f);
  for (int c = 0; c < 23; ++c) EXPECT_EQ(at(24, c), 0.0f) << c;  // bins < 0: padding
  for (int r = 0; r < 48; ++r) {
    if (r == 24) continue;
    const int wire = -14 + r;
    for (int c = 0; c < 48; ++c) {
      if (wire == 0 || wire == 1 || wire == 25) continue;  // the random wires
      EXPECT_EQ(at(r, c), 0.0f) << "row " << r << " col " << c;
    }
  }
  // Sub-tick centres: 11.99 is still bin 1, 12.0 is bin 2 (the patch shifts by one column).
  std::vector<float> p2(48 * 48);
  view->FillPatch(10, 11.99f, p2.data());
  EXPECT_EQ(p2, patch);
  view->FillPatch(10, 12.0f, p2.data());
  EXPECT_FLOAT_EQ(p2[24 * 48 + 24], 15.0f);
}

TEST_F(PatchMakerTest, EdgesMatchLArSoftReference) {
  const PatchConfig config;
  auto view = DownsampledView::Create(*image_, config);
  ASSERT_TRUE(view.ok());
  const WireRange all{0, 60};
  const std::vector<PatchCenter> centres = {{0, 0.0f},    {0, 5.99f}, {0, 6.0f},    {1, 2.5f},
                                            {59, 599.9f}, {59, 0.0f}, {58, 590.0f}, {0, 599.0f},
                                            {25, 300.5f}, {10, 8.0f}, {30, 143.9f}, {59, 330.0f},
                                            {-3, 10.0f},  {70, 1e4f}, {12, -20.0f}, {25, 575.0f}};
  std::vector<float> got(48 * 48);
  for (const PatchCenter& c : centres) {
    view->FillPatch(c.wire, c.tick, got.data());
    EXPECT_EQ(got, ReferencePatch(*image_, config, all, c.wire, c.tick))
        << "centre wire " << c.wire << " tick " << c.tick;
  }
  // The batch call writes the same patches back to back.
  std::vector<float> batch(centres.size() * 48 * 48);
  view->FillPatches(centres, batch.data());
  for (std::size_t i = 0; i < centres.size(); ++i) {
    view->FillPatch(centres[i].wire, centres[i].tick, got.data());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), batch.begin() + i * 48 * 48)) << i;
  }
}

TEST_F(PatchMakerTest, NonZeroZeroLevelPadsOutside) {
  PatchConfig config;
  config.out_min = 0;
  config.out_max = 1;
  auto view = DownsampledView::Create(*image_, config);
  ASSERT_TRUE(view.ok());
  std::vector<float> got(48 * 48);
  view->FillPatch(59, 599.0f, got.data());
  EXPECT_EQ(got, ReferencePatch(*image_, config, {0, 60}, 59, 599.0f));
  EXPECT_FLOAT_EQ(got[47 * 48 + 47], 0.25f);  // beyond the last wire and the last bin
  EXPECT_FLOAT_EQ(got[0], 0.25f);             // empty signal inside the plane
}

TEST(PatchMaker, ViewsArePaddedAtTheirBoundary) {
  // Two views of 4 wires (like the two faces of the collection plane); signal everywhere.
  sim::PlaneData p = MakePlane(2, 8, 40);
  for (int w = 0; w < 8; ++w) AddRoi(&p, w, 0, std::vector<float>(40, 10.0f + w));
  auto img = PlaneImage::Create(p);
  ASSERT_TRUE(img.ok());
  PatchConfig config;
  config.patch_wires = 4;
  config.patch_drifts = 4;
  config.drift_window = 2;
  const auto views = PlaneViews(2, 8);
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].end, 4);
  auto first = DownsampledView::Create(*img, config, views[0]);
  ASSERT_TRUE(first.ok());
  // Centre wire 3: rows are wires 1, 2, 3, 4; wire 4 belongs to the other face -> padding.
  std::vector<float> got(16);
  first->FillPatch(3, 10.0f, got.data());
  for (int c = 0; c < 4; ++c) {
    EXPECT_FLOAT_EQ(got[0 * 4 + c], config.ScaleAdc(11.0f));
    EXPECT_FLOAT_EQ(got[2 * 4 + c], config.ScaleAdc(13.0f));
    EXPECT_FLOAT_EQ(got[3 * 4 + c], config.zero_level());
  }
  EXPECT_EQ(got, ReferencePatch(*img, config, views[0], 3, 10.0f));
  // U and V wrap around both faces: one view.
  EXPECT_EQ(PlaneViews(0, 800).size(), 1u);
  EXPECT_FALSE(DownsampledView::Create(*img, config, {3, 9}).ok());
}

TEST(PatchMaker, PartialLastWindowIsDropped) {
  // 605 ticks: 100 bins of 6 (LArSoft's drifts / DriftWindow); ticks 600-604 are not in the view.
  sim::PlaneData p = MakePlane(2, 4, 605);
  AddRoi(&p, 1, 598, std::vector<float>(7, 20.0f));
  auto img = PlaneImage::Create(p);
  ASSERT_TRUE(img.ok());
  auto view = DownsampledView::Create(*img, PatchConfig());
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->n_drifts(), 100);
  EXPECT_FLOAT_EQ(view->at(1, 99), PatchConfig().ScaleAdc(20.0f * 2 / 6));
  std::vector<float> got(48 * 48);
  view->FillPatch(1, 603.0f, got.data());  // sd = 100: column 24 is beyond the view
  EXPECT_FLOAT_EQ(got[24 * 48 + 23], view->at(1, 99));
  EXPECT_FLOAT_EQ(got[24 * 48 + 24], 0.0f);
}

}  // namespace
}  // namespace larserve::reco
