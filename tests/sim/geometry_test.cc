#include "larserve/sim/geometry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace larserve::sim {
namespace {

Geometry Make(int apas = 1) {
  DetectorConfig d;
  d.apas = apas;
  auto g = Geometry::Create(d);
  EXPECT_TRUE(g.ok());
  return *g;
}

TEST(GeometryTest, ProtoDuneChannelCounts) {
  Geometry g = Make();
  EXPECT_EQ(g.num_channels(kPlaneU), 800);
  EXPECT_EQ(g.num_channels(kPlaneV), 800);
  EXPECT_EQ(g.num_channels(kPlaneW), 960);
  EXPECT_EQ(g.channels_per_apa(), 2560);  // FACTS: 2560 channels per APA
  Geometry six = Make(6);
  EXPECT_EQ(six.num_apas() * six.channels_per_apa(), 15360);
  EXPECT_EQ(six.num_rows(), 2);
  EXPECT_EQ(six.num_cols(), 3);
}

TEST(GeometryTest, LocateFacesAndApas) {
  Geometry g = Make(6);
  // Row 0 APA plane at x = -360, row 1 at +360; the cathode is at x = 0.
  auto p = g.Locate(-100, 300, 250);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->apa, 1);
  EXPECT_EQ(p->face, 1);
  EXPECT_NEAR(p->drift_cm, 260, 1e-9);
  EXPECT_NEAR(p->z_local_cm, 20, 1e-9);
  p = g.Locate(500, 10, 10);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->apa, 3);
  EXPECT_EQ(p->face, 1);
  EXPECT_FALSE(g.Locate(0, 700, 10));  // above the APAs
  EXPECT_FALSE(g.Locate(0, 100, -1));  // upstream
}

TEST(GeometryTest, CollectionWiresFollowZ) {
  Geometry g = Make();
  EXPECT_NEAR(g.ChannelCoordinate(kPlaneW, 0, 100, 0.4792 * 10.5), 10.5, 1e-9);
  EXPECT_NEAR(g.ChannelCoordinate(kPlaneW, 1, 100, 0.4792 * 10.5), 490.5, 1e-9);
}

TEST(GeometryTest, InductionChannelConstantAlongWireAndStepsByPitch) {
  Geometry g = Make();
  const double deg = std::numbers::pi / 180;
  for (int plane : {kPlaneU, kPlaneV}) {
    const double theta = (plane == kPlaneU ? 35.7 : -35.7) * deg;
    // Along the wire direction (sin theta, cos theta) in (z, y) the channel does not change.
    const double y0 = 300, z0 = 100;
    const double c0 = g.ChannelCoordinate(plane, 0, y0, z0);
    for (double l : {-50.0, 20.0, 80.0}) {
      const double c =
          g.ChannelCoordinate(plane, 0, y0 + l * std::cos(theta), z0 + l * std::sin(theta));
      EXPECT_NEAR(std::remainder(c - c0, 800.0), 0.0, 1e-6) << plane << " " << l;
    }
    // One pitch (4.669 mm) perpendicular to the wires moves one channel.
    const double p = 0.4669;
    const double c1 =
        g.ChannelCoordinate(plane, 0, y0 - p * std::sin(theta), z0 + p * std::cos(theta));
    EXPECT_NEAR(std::fabs(std::remainder(c1 - c0, 800.0)), 1.0, 0.01) << plane;
  }
}

TEST(GeometryTest, InductionWiresWrapAroundTheFrameEdges) {
  Geometry g = Make();
  const double w = 230.0;
  for (int plane : {kPlaneU, kPlaneV}) {
    for (double y : {10.0, 300.0, 590.0}) {
      // The same wire continues from the front face edge onto the back face edge.
      EXPECT_NEAR(std::remainder(g.ChannelCoordinate(plane, 0, y, w - 1e-9) -
                                     g.ChannelCoordinate(plane, 1, y, w - 1e-9),
                                 800.0),
                  0.0, 1e-6);
      EXPECT_NEAR(std::remainder(g.ChannelCoordinate(plane, 0, y, 1e-9) -
                                     g.ChannelCoordinate(plane, 1, y, 1e-9),
                                 800.0),
                  0.0, 1e-6);
    }
  }
}

TEST(GeometryTest, RejectsInconsistentWrappedPitch) {
  DetectorConfig d;
  d.induction_channels = 700;
  EXPECT_EQ(Geometry::Create(d).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace larserve::sim
