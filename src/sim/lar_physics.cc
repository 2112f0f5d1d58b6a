#include "larserve/sim/lar_physics.h"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace larserve::sim::lar {
namespace {

// Log-log interpolation in a table of (x, y) with x ascending; clamps at the ends.
template <std::size_t N>
double LogLogInterp(const double (&xs)[N], const double (&ys)[N], double x) {
  if (x <= xs[0]) return ys[0];
  if (x >= xs[N - 1]) return ys[N - 1];
  const std::size_t i = std::upper_bound(std::begin(xs), std::end(xs), x) - std::begin(xs) - 1;
  const double f = std::log(x / xs[i]) / std::log(xs[i + 1] / xs[i]);
  if (ys[i] <= 0 || ys[i + 1] <= 0) return ys[i] + f * (ys[i + 1] - ys[i]);
  return ys[i] * std::exp(f * std::log(ys[i + 1] / ys[i]));
}

// NIST XCOM, argon, total attenuation without coherent scattering (cm^2/g), rounded.
constexpr double kPhotonE[] = {0.01, 0.02, 0.03, 0.04, 0.05,  0.06, 0.08, 0.1, 0.15, 0.2,
                               0.3,  0.4,  0.5,  0.6,  0.8,   1.0,  1.25, 1.5, 2.0,  3.0,
                               4.0,  5.0,  6.0,  8.0,  10.,   15.,  20.,  30., 40.,  50.,
                               60.,  80.,  100., 300., 1000., 1e4,  1e5};
constexpr double kPhotonMu[] = {62.4,   8.35,   2.62,   1.21,   0.70,   0.47,   0.27,   0.19,
                                0.131,  0.112,  0.0936, 0.0831, 0.0759, 0.0703, 0.0618, 0.0555,
                                0.0498, 0.0455, 0.0395, 0.0331, 0.0300, 0.0281, 0.0269, 0.0257,
                                0.0252, 0.0252, 0.0256, 0.0267, 0.0276, 0.0283, 0.0289, 0.0298,
                                0.0304, 0.0330, 0.0355, 0.0376, 0.0385};
constexpr double kPairE[] = {1.022, 1.5, 2.0, 3.0, 4.0,  5.0,  6.0,   8.0, 10.,
                             15.,   20., 30., 50., 100., 300., 1000., 1e5};
constexpr double kPairF[] = {0.0,  0.003, 0.012, 0.04, 0.08, 0.12, 0.17, 0.25, 0.32,
                             0.45, 0.53,  0.64,  0.76, 0.87, 0.94, 0.98, 0.999};
constexpr double kPeE[] = {0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0};
constexpr double kPeF[] = {0.99, 0.97,  0.90,  0.78,   0.62,   0.47,  0.27,
                           0.16, 0.055, 0.024, 0.0075, 0.0018, 0.0003};

}  // namespace

double RadiationLengthCm(double density) { return kRadiationLengthGcm2 / density; }

double DensityEffect(double beta_gamma) {
  // Sternheimer parameters of liquid argon (PDG atomic and nuclear properties).
  constexpr double kCbar = 5.2146, kX0 = 0.2, kX1 = 3.0, kA = 0.19559, kKexp = 3.0;
  const double x = std::log10(beta_gamma);
  if (x >= kX1) return 2.0 * std::log(10.0) * x - kCbar;
  if (x >= kX0) return 2.0 * std::log(10.0) * x - kCbar + kA * std::pow(kX1 - x, kKexp);
  return 0.0;
}

double MaxEnergyTransfer(double mass, double kinetic) {
  const double gamma = 1.0 + kinetic / mass;
  const double bg2 = gamma * gamma - 1.0;
  const double r = kElectronMass / mass;
  return 2.0 * kElectronMass * bg2 / (1.0 + 2.0 * gamma * r + r * r);
}

static double BetheCommon(double mass, double kinetic, double t_up, double density,
                          bool restricted) {
  const double gamma = 1.0 + kinetic / mass;
  const double beta2 = 1.0 - 1.0 / (gamma * gamma);
  const double bg2 = gamma * gamma - 1.0;
  const double tmax = MaxEnergyTransfer(mass, kinetic);
  const double tu = restricted ? std::min(t_up, tmax) : tmax;
  const double delta = DensityEffect(std::sqrt(bg2));
  const double log_term =
      0.5 * std::log(2.0 * kElectronMass * bg2 * tu / (kMeanExcitationMeV * kMeanExcitationMeV));
  const double beta_term = restricted ? 0.5 * beta2 * (1.0 + tu / tmax) : beta2;
  const double val = kK * kZoverA / beta2 * (log_term - beta_term - 0.5 * delta) * density;
  // Below ~1 MeV for muons the Bethe formula fails; keep it positive and rising.
  return std::max(val, 0.0);
}

double BetheDedx(double mass, double kinetic, double density) {
  return BetheCommon(mass, kinetic, 0, density, false);
}

double BetheRestrictedDedx(double mass, double kinetic, double t_cut, double density) {
  return BetheCommon(mass, kinetic, t_cut, density, true);
}

double DeltaRayRate(double mass, double kinetic, double t_cut, double density) {
  const double tmax = MaxEnergyTransfer(mass, kinetic);
  if (tmax <= t_cut) return 0.0;
  const double gamma = 1.0 + kinetic / mass;
  const double beta2 = 1.0 - 1.0 / (gamma * gamma);
  const double k = 0.5 * kK * kZoverA * density / beta2;
  return k * ((1.0 / t_cut - 1.0 / tmax) - beta2 / tmax * std::log(tmax / t_cut));
}

double SampleDeltaEnergy(double mass, double kinetic, double t_cut, Rng& rng) {
  const double tmax = MaxEnergyTransfer(mass, kinetic);
  if (tmax <= t_cut) return 0.0;
  const double gamma = 1.0 + kinetic / mass;
  const double beta2 = 1.0 - 1.0 / (gamma * gamma);
  for (;;) {
    const double inv = 1.0 / t_cut - rng.Uniform() * (1.0 / t_cut - 1.0 / tmax);
    const double t = 1.0 / inv;
    if (rng.Uniform() <= 1.0 - beta2 * t / tmax) return t;
  }
}

double ElectronCollisionDedx(double kinetic, double density) {
  const double t = std::max(kinetic, 0.005);
  const double tau = t / kElectronMass;
  const double gamma = tau + 1.0;
  const double beta2 = 1.0 - 1.0 / (gamma * gamma);
  const double i_over_m = kMeanExcitationMeV / kElectronMass;
  const double f_minus =
      1.0 - beta2 + (tau * tau / 8.0 - (2.0 * tau + 1.0) * std::log(2.0)) / ((tau + 1) * (tau + 1));
  const double delta = DensityEffect(std::sqrt(gamma * gamma - 1.0));
  const double bracket =
      std::log(tau * tau * (tau + 2.0) / (2.0 * i_over_m * i_over_m)) + f_minus - delta;
  return std::max(0.5 * kK * kZoverA / beta2 * bracket * density, 0.0);
}

double BremsRate(double kinetic, double k_cut, double density) {
  if (kinetic <= k_cut) return 0.0;
  const double e = kinetic + kElectronMass;
  const double x0 = RadiationLengthCm(density);
  const double t = kinetic;
  return (4.0 / 3.0 * std::log(t / k_cut) - 4.0 / 3.0 * (t - k_cut) / e +
          (t * t - k_cut * k_cut) / (2.0 * e * e)) /
         x0;
}

double BremsSoftLoss(double kinetic, double k_cut, double density) {
  const double kc = std::min(k_cut, kinetic);
  const double e = kinetic + kElectronMass;
  const double x0 = RadiationLengthCm(density);
  // Integral of k * (1/k)(4/3 - 4/3 y + y^2) dk from 0 to kc, y = k / E.
  return (4.0 / 3.0 * kc - 2.0 / 3.0 * kc * kc / e + kc * kc * kc / (3.0 * e * e)) / x0;
}

double SampleBremsEnergy(double kinetic, double k_cut, Rng& rng) {
  const double e = kinetic + kElectronMass;
  for (;;) {
    const double k = k_cut * std::pow(kinetic / k_cut, rng.Uniform());
    const double y = k / e;
    if (rng.Uniform() * (4.0 / 3.0) <= 4.0 / 3.0 - 4.0 / 3.0 * y + y * y) return k;
  }
}

double PhotonAttenuation(double energy, double density) {
  return LogLogInterp(kPhotonE, kPhotonMu, energy) * density;
}

double PairFraction(double energy) {
  if (energy <= 2.0 * kElectronMass) return 0.0;
  return LogLogInterp(kPairE, kPairF, energy);
}

double PhotoelectricFraction(double energy) {
  if (energy >= kPeE[std::size(kPeE) - 1]) return 0.0;
  return LogLogInterp(kPeE, kPeF, energy);
}

void SampleCompton(double energy, Rng& rng, double* eps_out, double* cos_out) {
  // Butcher & Messel sampling of Klein-Nishina, as in Geant4's G4KleinNishinaCompton.
  const double k = energy / kElectronMass;
  const double eps0 = 1.0 / (1.0 + 2.0 * k);
  const double eps0sq = eps0 * eps0;
  const double a1 = -std::log(eps0);
  const double a2 = 0.5 * (1.0 - eps0sq);
  double eps, onecost, sint2, greject;
  do {
    if (a1 / (a1 + a2) > rng.Uniform()) {
      eps = std::exp(-a1 * rng.Uniform());
    } else {
      eps = std::sqrt(eps0sq + (1.0 - eps0sq) * rng.Uniform());
    }
    onecost = (1.0 - eps) / (eps * k);
    sint2 = onecost * (2.0 - onecost);
    greject = 1.0 - eps * sint2 / (1.0 + eps * eps);
  } while (greject < rng.Uniform());
  *eps_out = eps;
  *cos_out = 1.0 - onecost;
}

double SamplePairFraction(double energy, Rng& rng) {
  const double emin = kElectronMass / energy;
  for (;;) {
    const double x = emin + (1.0 - 2.0 * emin) * rng.Uniform();
    if (rng.Uniform() <= 1.0 - 4.0 / 3.0 * x * (1.0 - x)) return x;
  }
}

double SampleMichelEnergy(Rng& rng) {
  for (;;) {
    const double x = rng.Uniform();
    if (rng.Uniform() <= x * x * (3.0 - 2.0 * x)) {
      return std::max(x * kMichelEndpointMeV, kElectronMass * 1.0001);
    }
  }
}

double RecombinationFactor(double dedx, double efield, double density, double a, double b) {
  const double xi = b * dedx / (density * efield);
  if (xi < 1e-6) return 1.0;
  return std::clamp(std::log(a + xi) / xi, 0.0, 1.0);
}

double HighlandTheta0(double momentum, double beta, double step_cm, double density) {
  const double x = step_cm / RadiationLengthCm(density);
  if (x <= 0) return 0.0;
  // The logarithmic term of Highland's formula does not add up over many short steps; applied
  // per step with x << 1 it would shrink the total width. Steps use the x = 1 X0 value (1.0),
  // which reproduces Highland for a 1 X0 segment of track.
  return 13.6 / (beta * momentum) * std::sqrt(x);
}

double SampleMoyal(Rng& rng) {
  // If Z ~ N(0,1) then -ln(Z^2) follows the Moyal distribution with mode 0.
  double z;
  do {
    z = rng.Normal();
  } while (z == 0.0);
  return -std::log(z * z);
}

}  // namespace larserve::sim::lar
