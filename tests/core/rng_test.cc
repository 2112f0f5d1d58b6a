#include "larserve/core/rng.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace larserve {
namespace {

TEST(RngTest, SameSeedSameStream) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.NextU64();
    EXPECT_EQ(x, b.NextU64());
    EXPECT_NE(x, c.NextU64());
  }
}

TEST(RngTest, DerivedSeedsDiffer) {
  EXPECT_NE(DeriveSeed(1, {0}), DeriveSeed(1, {1}));
  EXPECT_NE(DeriveSeed(1, {2, 0}), DeriveSeed(1, {0, 2}));
  EXPECT_EQ(DeriveSeed(7, {3, 4}), DeriveSeed(7, {3, 4}));
}

TEST(RngTest, NormalMoments) {
  Rng rng(5);
  const int n = 200000;
  double s = 0, s2 = 0;
  std::vector<float> v(n);
  rng.FillNormal(v.data(), n);
  for (float x : v) {
    s += x;
    s2 += x * x;
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.01);
}

TEST(RngTest, PoissonMeanAndVariance) {
  Rng rng(9);
  for (double mean : {0.5, 4.0, 45.0, 300.0}) {
    const int n = 50000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
      const double k = static_cast<double>(rng.Poisson(mean));
      s += k;
      s2 += k * k;
    }
    const double m = s / n, var = s2 / n - m * m;
    EXPECT_NEAR(m, mean, 5 * std::sqrt(mean / n) + 1e-3) << mean;
    EXPECT_NEAR(var / mean, 1.0, 0.05) << mean;
  }
}

}  // namespace
}  // namespace larserve
