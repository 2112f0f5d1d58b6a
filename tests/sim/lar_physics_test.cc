#include "larserve/sim/lar_physics.h"

#include <gtest/gtest.h>

#include <cmath>

#include "larserve/sim/particle.h"

namespace larserve::sim::lar {
namespace {

constexpr double kRho = 1.39;

TEST(LarPhysicsTest, MinimumIonisingMuon) {
  // PDG: minimum dE/dx of liquid argon 1.519 MeV cm^2/g -> 2.11 MeV/cm at 1.39 g/cm^3.
  double min_dedx = 1e9;
  for (double t = 50; t < 5000; t *= 1.05)
    min_dedx = std::min(min_dedx, BetheDedx(MassMeV(13), t, kRho));
  EXPECT_NEAR(min_dedx, 1.519 * kRho, 0.03 * 1.519 * kRho);
  EXPECT_LT(BetheRestrictedDedx(MassMeV(13), 4000, 1.0, kRho), BetheDedx(MassMeV(13), 4000, kRho));
}

TEST(LarPhysicsTest, RadiationLengthAndRecombination) {
  EXPECT_NEAR(RadiationLengthCm(kRho), 14.0, 0.1);  // FACTS: 14 cm
  // Modified Box at 500 V/cm for a MIP: ~0.70 of the charge survives (ArgoNeuT).
  EXPECT_NEAR(RecombinationFactor(2.1, 0.5, kRho, 0.93, 0.212), 0.70, 0.02);
  EXPECT_LT(RecombinationFactor(20, 0.5, kRho, 0.93, 0.212), 0.45);
}

TEST(LarPhysicsTest, ElectronStoppingPowerNearEstar) {
  // ESTAR (argon, collision): ~1.4 MeV cm^2/g at 1 MeV, rising slowly above.
  EXPECT_NEAR(ElectronCollisionDedx(1.0, 1.0), 1.4, 0.1);
  EXPECT_GT(ElectronCollisionDedx(0.1, 1.0), 2.5);
}

TEST(LarPhysicsTest, PhotonAttenuationAtHighEnergyApproaches7Over9X0) {
  const double mu = PhotonAttenuation(1e4, kRho);
  EXPECT_NEAR(1.0 / mu, 9.0 / 7.0 * RadiationLengthCm(kRho), 0.15 * 18.0);
  EXPECT_GT(PairFraction(1000), 0.95);
  EXPECT_EQ(PairFraction(1.0), 0.0);
}

TEST(LarPhysicsTest, ComptonConservesEnergyAndKinematics) {
  Rng rng(3);
  for (int i = 0; i < 1000; ++i) {
    double eps, cost;
    SampleCompton(2.0, rng, &eps, &cost);
    ASSERT_GE(eps, 1.0 / (1.0 + 2.0 * 2.0 / kElectronMass) - 1e-12);
    ASSERT_LE(eps, 1.0);
    // Compton formula: 1/eps = 1 + k (1 - cos theta)
    EXPECT_NEAR(1.0 / eps, 1.0 + 2.0 / kElectronMass * (1 - cost), 1e-9);
  }
}

TEST(LarPhysicsTest, MichelSpectrumShapeAndEndpoint) {
  Rng rng(11);
  const int n = 200000;
  double sum = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    const double e = SampleMichelEnergy(rng);
    sum += e;
    max = std::max(max, e);
  }
  // <x> for x^2 (3 - 2x) is 0.7.
  EXPECT_NEAR(sum / n, 0.7 * kMichelEndpointMeV, 0.1);
  EXPECT_LE(max, kMichelEndpointMeV);
  EXPECT_GT(max, 52.5);
}

TEST(LarPhysicsTest, MoyalModeIsZero) {
  Rng rng(2);
  int below = 0;
  const int n = 100000;
  double mean = 0;
  for (int i = 0; i < n; ++i) {
    const double x = SampleMoyal(rng);
    mean += x;
    below += x < 0;
  }
  // Moyal mean = gamma_E + ln 2 = 1.2704; P(x < 0) = P(|Z| > 1) = 0.3173.
  EXPECT_NEAR(mean / n, 1.2704, 0.02);
  EXPECT_NEAR(static_cast<double>(below) / n, 0.3173, 0.01);
}

}  // namespace
}  // namespace larserve::sim::lar
