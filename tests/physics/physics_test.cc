// Physics validation of the simulation (ctest label `physics`). Each test fires particles with
// a particle gun into a quiet detector (no cosmics, no beam, no noise) and compares what the
// simulation produced with the physics it is meant to reproduce. Tolerances are stated per test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <vector>

#include "larserve/core/thread_pool.h"
#include "larserve/sim/lar_physics.h"
#include "larserve/sim/simulator.h"

namespace larserve::sim {
namespace {

SimConfig QuietConfig() {
  SimConfig c;
  c.cosmics.enabled = false;
  c.beam.enabled = false;
  c.readout.noise = false;
  c.readout.truth_min_electrons = 1.0;
  return c;
}

Primary Gun(int pdg_code, double ke, double x, double y, double z, double dx, double dy,
            double dz) {
  Primary p;
  p.pdg = pdg_code;
  p.kinetic_mev = ke;
  p.pos[0] = x;
  p.pos[1] = y;
  p.pos[2] = z;
  const double n = std::sqrt(dx * dx + dy * dy + dz * dz);
  p.dir[0] = dx / n;
  p.dir[1] = dy / n;
  p.dir[2] = dz / n;
  return p;
}

// Charge (electrons at the wires) on collection wires [lo, hi) from pixels whose dominant
// particle is `id` (or all pixels when id < 0).
double CollectionCharge(const PlaneData& w, int lo, int hi, int id) {
  double q = 0;
  for (std::size_t k = 0; k < w.truth_id.size(); ++k) {
    if (w.truth_channel[k] >= lo && w.truth_channel[k] < hi && (id < 0 || w.truth_id[k] == id)) {
      q += w.truth_charge[k];
    }
  }
  return q;
}

// A MIP along z (perpendicular to the collection wires) at a fixed drift distance: the charge
// per cm must match Bethe dE/dx x Modified-Box recombination / W_ion x exp(-t_drift / lifetime).
TEST(PhysicsTest, MipChargePerCmMatchesRecombinationAndLifetime) {
  SimConfig c = QuietConfig();
  auto sim = Simulator::Create(c);
  ASSERT_TRUE(sim.ok());
  const double drift_cm = 150, pitch = 0.4792, ke = 4000;
  const int lo = 20, hi = 460;  // away from the ends of the track
  std::vector<Primary> guns;
  for (int i = 0; i < 6; ++i)
    guns.push_back(Gun(pdg::kMuMinus, ke, -drift_cm, 100 + 80 * i, -5, 0, 0, 1));
  ThreadPool pool(2);
  double q_all = 0, q_muon = 0, length = 0;
  for (std::size_t i = 0; i < guns.size(); ++i) {
    SimEvent ev = (*sim)->SimulatePrimaries(7, static_cast<int64_t>(i), {guns[i]}, &pool);
    const PlaneData& w = ev.planes[kPlaneW];
    q_all += CollectionCharge(w, lo, hi, -1);
    q_muon += CollectionCharge(w, lo, hi, 0);
    length += (hi - lo) * pitch;
  }
  const double mass = MassMeV(pdg::kMuMinus);
  const double ke_mid = ke - 0.5 * 230 * 2.2;  // the muon loses ~250 MeV before mid-plane
  const double atten = std::exp(-(drift_cm / (c.argon.drift_speed_mm_us / 10.0)) /
                                (c.argon.electron_lifetime_ms * 1000));
  auto expected = [&](double dedx) {
    return dedx *
           lar::RecombinationFactor(dedx, c.argon.efield_kv_cm, c.argon.density_g_cm3,
                                    c.argon.recomb_a, c.argon.recomb_b) *
           1e6 / c.argon.w_ion_ev * atten;
  };
  const double full = lar::BetheDedx(mass, ke_mid, c.argon.density_g_cm3);
  const double restricted =
      lar::BetheRestrictedDedx(mass, ke_mid, c.transport.delta_cut_mev, c.argon.density_g_cm3);
  // The muon's own pixels hold the restricted loss (delta rays above 1 MeV are particles of
  // their own): 3%. Everything on the plane holds the full mean loss, whose delta-ray tail
  // fluctuates: 8%. And the absolute scale: ~60k electrons/cm for a MIP at 500 V/cm.
  EXPECT_NEAR(q_muon / length / expected(restricted), 1.0, 0.03)
      << "muon-only dQ/dx " << q_muon / length;
  EXPECT_NEAR(q_all / length / expected(full), 1.0, 0.08) << "total dQ/dx " << q_all / length;
  // Absolute scale: a 4 GeV muon (2.3-2.4 MeV/cm, a little above minimum ionisation) gives
  // 60-75 thousand electrons per cm at 500 V/cm before attenuation.
  EXPECT_GT(q_all / length / atten, 60000);
  EXPECT_LT(q_all / length / atten, 75000);
}

// Charge attenuation versus drift distance follows exp(-t / lifetime); fit the lifetime back.
TEST(PhysicsTest, AttenuationWithDriftMatchesElectronLifetime) {
  SimConfig c = QuietConfig();
  c.argon.electron_lifetime_ms = 2.0;  // short, so the attenuation is large and well measured
  auto sim = Simulator::Create(c);
  ASSERT_TRUE(sim.ok());
  ThreadPool pool(2);
  std::vector<double> ts, lnq;
  int k = 0;
  for (double drift : {30.0, 90.0, 150.0, 210.0, 270.0, 330.0}) {
    double q = 0;
    for (int rep = 0; rep < 3; ++rep) {
      SimEvent ev = (*sim)->SimulatePrimaries(
          11, k++, {Gun(pdg::kMuMinus, 4000, -drift, 150 + 100 * rep, -5, 0, 0, 1)}, &pool);
      q += CollectionCharge(ev.planes[kPlaneW], 20, 460, 0);
    }
    ts.push_back(drift / (c.argon.drift_speed_mm_us / 10.0));  // us
    lnq.push_back(std::log(q));
  }
  const double n = static_cast<double>(ts.size());
  const double mt = std::accumulate(ts.begin(), ts.end(), 0.0) / n;
  const double mq = std::accumulate(lnq.begin(), lnq.end(), 0.0) / n;
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    sxy += (ts[i] - mt) * (lnq[i] - mq);
    sxx += (ts[i] - mt) * (ts[i] - mt);
  }
  const double fitted_ms = -1.0 / (sxy / sxx) / 1000.0;
  EXPECT_NEAR(fitted_ms, 2.0, 0.06) << "fitted lifetime " << fitted_ms << " ms";  // 3%
}

// Longitudinal diffusion: the arrival-time spread of the charge of a track at fixed drift
// grows as sqrt(2 D_L t) / v. The track is slightly inclined in x so that the position of the
// charge relative to the tick boundaries is uniform (the tick binning then adds 1/12 tick^2).
TEST(PhysicsTest, DiffusionWidthGrowsAsSqrtDriftTime) {
  SimConfig c = QuietConfig();
  auto sim = Simulator::Create(c);
  ASSERT_TRUE(sim.ok());
  ThreadPool pool(2);
  const double v = c.argon.drift_speed_mm_us / 10.0;  // cm/us
  std::vector<double> measured, expected;
  int k = 0;
  for (double drift : {60.0, 120.0, 200.0, 280.0, 350.0}) {
    SimEvent ev = (*sim)->SimulatePrimaries(
        13, k++, {Gun(pdg::kMuMinus, 4000, -drift + 1.2, 300, -5, -0.0104, 0, 1)}, &pool);
    const PlaneData& w = ev.planes[kPlaneW];
    // Per wire: charge-weighted RMS of the tick, pixels of the muon only.
    std::map<int, std::vector<std::pair<double, double>>> per_wire;
    for (std::size_t i = 0; i < w.truth_id.size(); ++i) {
      if (w.truth_id[i] == 0 && w.truth_channel[i] >= 20 && w.truth_channel[i] < 460) {
        per_wire[w.truth_channel[i]].push_back({w.truth_tick[i] + 0.5, w.truth_charge[i]});
      }
    }
    std::vector<double> var;
    for (const auto& [ch, px] : per_wire) {
      double s = 0, sw = 0, s2 = 0;
      for (auto [t, q] : px) {
        s += t * q;
        sw += q;
      }
      const double m = s / sw;
      for (auto [t, q] : px) s2 += (t - m) * (t - m) * q;
      var.push_back(s2 / sw);
    }
    ASSERT_GT(var.size(), 300u);
    std::sort(var.begin(), var.end());
    // Mean of the central 80% (delta rays and binning make a few wires wider or narrower).
    double mean_var = 0;
    const std::size_t a = var.size() / 10, b = var.size() - var.size() / 10;
    for (std::size_t i = a; i < b; ++i) mean_var += var[i];
    mean_var /= static_cast<double>(b - a);
    const double t_s = drift / v * 1e-6;
    const double sigma_ticks =
        std::sqrt(2 * c.argon.diffusion_long_cm2_s * t_s) / v / c.detector.tick_us;
    measured.push_back(std::sqrt(std::max(0.0, mean_var - 1.0 / 12.0)));
    expected.push_back(sigma_ticks);
  }
  for (std::size_t i = 0; i < measured.size(); ++i) {
    EXPECT_NEAR(measured[i] / expected[i], 1.0, 0.12)
        << "drift point " << i << ": " << measured[i] << " ticks vs " << expected[i];
  }
  // sqrt(t): the width ratio between 350 cm and 60 cm is sqrt(350/60) = 2.42.
  EXPECT_NEAR(measured.back() / measured.front(), std::sqrt(350.0 / 60.0), 0.25);
}

// Muons stopping in the argon: mu+ always decay to a Michel positron; the Michel energy
// spectrum follows x^2 (3 - 2x) up to 52.8 MeV; mu- are mostly captured (75%).
TEST(PhysicsTest, MichelSpectrumEndsAt52p8MeV) {
  SimConfig c = QuietConfig();
  auto geo = Geometry::Create(c.detector);
  ASSERT_TRUE(geo.ok());
  Transporter tr(c, *geo);
  Rng rng(17);
  std::vector<double> energies;
  std::vector<double> visible;
  int mu_minus_michels = 0;
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    for (int sign : {-1, 1}) {
      std::vector<TruthParticle> parts;
      std::vector<Deposit> deps;
      tr.Run(Gun(sign > 0 ? pdg::kMuPlus : pdg::kMuMinus, 30, -180, 300, 100, 0.3, -0.5, 0.8), rng,
             &parts, &deps);
      for (const auto& p : parts) {
        if (p.category != Category::kMichel) continue;
        if (sign < 0) {
          ++mu_minus_michels;
          continue;
        }
        energies.push_back(p.kinetic_mev + lar::kElectronMass);
        double e = 0;
        for (const auto& d : deps) e += d.truth_id == p.id ? d.energy_mev : 0.0;
        visible.push_back(e);
      }
    }
  }
  ASSERT_EQ(static_cast<int>(energies.size()), n);  // every stopped mu+ decays
  EXPECT_NEAR(static_cast<double>(mu_minus_michels) / n, 1.0 - c.cosmics.mu_minus_capture_fraction,
              0.03);
  const double max_e = *std::max_element(energies.begin(), energies.end());
  EXPECT_LE(max_e, lar::kMichelEndpointMeV + 1e-6);
  EXPECT_GT(max_e, 52.0);
  // Shape: compare a 10-bin histogram with the integral of x^2 (3 - 2x) per bin (chi2/ndf < 2).
  std::vector<double> h(10, 0.0);
  for (double e : energies) h[std::min(9, static_cast<int>(e / lar::kMichelEndpointMeV * 10))] += 1;
  double chi2 = 0;
  for (int b = 0; b < 10; ++b) {
    auto cdf = [](double x) { return x * x * x - 0.5 * x * x * x * x; };  // int x^2(3-2x) / 0.5
    const double p = (cdf((b + 1) / 10.0) - cdf(b / 10.0)) / 0.5;
    const double expect = p * n;
    chi2 += (h[b] - expect) * (h[b] - expect) / std::max(expect, 1.0);
  }
  EXPECT_LT(chi2 / 9, 2.0) << "chi2 " << chi2;
  // The deposited energy of a Michel positron (its cascade and the annihilation photons,
  // folded into it) never exceeds its kinetic energy + 2 m_e = E + m_e, and most of it stays
  // in the argon.
  double vis_sum = 0, avail_sum = 0;
  for (std::size_t i = 0; i < energies.size(); ++i) {
    EXPECT_LE(visible[i], energies[i] + lar::kElectronMass + 1e-3) << i;
    vis_sum += visible[i];
    avail_sum += energies[i] + lar::kElectronMass;
  }
  EXPECT_GT(vis_sum / avail_sum, 0.9);
}

// Longitudinal profile of electromagnetic showers: the energy deposition peaks at
// t_max = ln(E / E_c) + C radiation lengths, C = -0.5 for electrons, +0.5 for photons (PDG
// eq. 34.36, E_c = 32.84 MeV for argon). Tolerance 0.5 X0 on the electron peaks; 0.35 X0 on
// the shift between 1 and 4 GeV (ln 4 = 1.39).
TEST(PhysicsTest, ShowerProfilePeaksAtExpectedDepth) {
  SimConfig c = QuietConfig();
  c.detector.apas = 3;  // 6.9 m (49 X0) along z
  auto geo = Geometry::Create(c.detector);
  ASSERT_TRUE(geo.ok());
  Transporter tr(c, *geo);
  const double x0 = lar::RadiationLengthCm(c.argon.density_g_cm3);
  auto peak = [&](int pdg_code, double energy, int n) {
    Rng rng(static_cast<uint64_t>(energy) * 31 + static_cast<uint64_t>(pdg_code + 100));
    const double bin = 0.25;
    std::vector<double> profile(200, 0.0);
    double total = 0;
    for (int i = 0; i < n; ++i) {
      std::vector<TruthParticle> parts;
      std::vector<Deposit> deps;
      tr.Run(Gun(pdg_code, energy, -180, 300, 10, 0, 0, 1), rng, &parts, &deps);
      for (const auto& d : deps) {
        const int b = static_cast<int>((d.z - 10.0) / x0 / bin);
        if (b >= 0 && b < 200) profile[b] += d.energy_mev;
        total += d.energy_mev;
      }
    }
    EXPECT_GT(total / n, 0.9 * energy) << "containment";
    // Smooth over +-2 bins, take the maximum, refine with a parabola.
    std::vector<double> s(profile.size(), 0.0);
    for (std::size_t b = 2; b + 2 < profile.size(); ++b) {
      for (int k = -2; k <= 2; ++k) s[b] += profile[b + k];
    }
    const std::size_t m = std::max_element(s.begin(), s.end()) - s.begin();
    const double denom = s[m - 1] - 2 * s[m] + s[m + 1];
    const double shift = denom != 0 ? 0.5 * (s[m - 1] - s[m + 1]) / denom : 0.0;
    return (m + 0.5 + shift) * bin;
  };
  const double ec = lar::kCriticalEnergyMeV;
  const double e1 = peak(pdg::kElectron, 1000, 60);
  const double e4 = peak(pdg::kElectron, 4000, 25);
  const double g1 = peak(pdg::kGamma, 1000, 60);
  EXPECT_NEAR(e1, std::log(1000 / ec) - 0.5, 0.5) << "1 GeV electron";
  EXPECT_NEAR(e4, std::log(4000 / ec) - 0.5, 0.5) << "4 GeV electron";
  EXPECT_NEAR(e4 - e1, std::log(4.0), 0.35);
  // A photon shower starts after the first conversion (mean free path 9/7 X0) with two
  // particles of half the energy: it peaks later. PDG's fit (C_gamma - C_e = 1.0 X0) is
  // larger than what our explicit cascade gives (~0.5 X0, docs/simulation.md): 0.2-1.2 X0.
  EXPECT_GT(g1 - e1, 0.2) << "1 GeV photon " << g1;
  EXPECT_LT(g1 - e1, 1.2) << "1 GeV photon " << g1;
  std::printf("shower maxima (X0): e- 1 GeV %.2f, e- 4 GeV %.2f, gamma 1 GeV %.2f\n", e1, e4, g1);
}

}  // namespace
}  // namespace larserve::sim
