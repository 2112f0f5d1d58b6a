#include "larserve/sim/transport.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "larserve/sim/lar_physics.h"

namespace larserve::sim {

using lar::kElectronMass;

struct Transporter::Track {
  int pdg = 0;
  double pos[3] = {0, 0, 0};
  double dir[3] = {0, 0, 1};
  double ke = 0;
  double t = 0;
  int truth_id = -1;  // saved particle that the deposits of this track belong to
  bool owns = false;  // this track is the saved particle itself (not a folded EM daughter)
};

struct Transporter::Context {
  Rng* rng;
  std::vector<TruthParticle>* particles;
  std::vector<larserve::sim::Deposit>* deposits;
  std::vector<Track> stack;
};

namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kPiPlusLifetimeNs = 26.033;
constexpr int kMaxStepsPerTrack = 2000000;

bool IsEm(int pdg) { return pdg == pdg::kElectron || pdg == pdg::kPositron || pdg == pdg::kGamma; }
bool IsHeavyCharged(int pdg) {
  const int a = std::abs(pdg);
  return a == 13 || a == 211 || a == 2212;
}

void Normalize(double d[3]) {
  const double n = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
  if (n > 0) {
    d[0] /= n;
    d[1] /= n;
    d[2] /= n;
  } else {
    d[0] = 0;
    d[1] = 0;
    d[2] = 1;
  }
}

// Rotates `dir` by polar angle acos(cos_theta) and azimuth phi about itself (Geant4 rotateUz).
void RotateUz(double dir[3], double cos_theta, double phi) {
  cos_theta = std::clamp(cos_theta, -1.0, 1.0);
  const double sin_theta = std::sqrt(std::max(0.0, 1.0 - cos_theta * cos_theta));
  const double lx = sin_theta * std::cos(phi), ly = sin_theta * std::sin(phi), lz = cos_theta;
  const double ux = dir[0], uy = dir[1], uz = dir[2];
  const double up = ux * ux + uy * uy;
  double out[3];
  if (up > 1e-20) {
    const double s = std::sqrt(up);
    out[0] = (ux * uz * lx - uy * ly) / s + ux * lz;
    out[1] = (uy * uz * lx + ux * ly) / s + uy * lz;
    out[2] = -s * lx + uz * lz;
  } else if (uz > 0) {
    out[0] = lx;
    out[1] = ly;
    out[2] = lz;
  } else {
    out[0] = -lx;
    out[1] = ly;
    out[2] = -lz;
  }
  dir[0] = out[0];
  dir[1] = out[1];
  dir[2] = out[2];
  Normalize(dir);
}

void IsotropicDirection(Rng& rng, double d[3]) {
  const double c = 2.0 * rng.Uniform() - 1.0;
  const double s = std::sqrt(std::max(0.0, 1.0 - c * c));
  const double phi = 2.0 * kPi * rng.Uniform();
  d[0] = s * std::cos(phi);
  d[1] = s * std::sin(phi);
  d[2] = c;
}

// Polar angle of a bremsstrahlung photon or pair lepton, in units of m_e / E (Tsai, as the
// approximation in Geant4's G4ModifiedTsai).
double SampleTsaiU(Rng& rng) {
  const double a = rng.Uniform() < 0.25 ? 1.875 : 0.625;
  return -std::log(rng.UniformPositive() * rng.UniformPositive()) / a;
}

Category Categorize(int pdg, Process process, int parent_pdg) {
  const int a = std::abs(pdg);
  if (a == 13 || a == 211 || a == 2212 || a == 321) return Category::kTrack;
  if (a == 11 && process == Process::kDecay && std::abs(parent_pdg) == 13) return Category::kMichel;
  if (a == 11 && process == Process::kIonisation) return Category::kDelta;
  return Category::kShower;
}

}  // namespace

Transporter::Transporter(const SimConfig& config, const Geometry& geometry)
    : config_(config), geometry_(&geometry), density_(config.argon.density_g_cm3) {
  const Box& a = geometry.active_box();
  const double m = config.transport.world_margin_cm;
  for (int i = 0; i < 3; ++i) {
    world_.lo[i] = a.lo[i] - m;
    world_.hi[i] = a.hi[i] + m;
  }
}

bool Transporter::InWorld(const double p[3]) const { return world_.Contains(p[0], p[1], p[2]); }

void Transporter::Run(const Primary& primary, Rng& rng, std::vector<TruthParticle>* particles,
                      std::vector<larserve::sim::Deposit>* deposits) const {
  Context ctx{&rng, particles, deposits, {}};
  TruthParticle tp;
  tp.id = static_cast<int32_t>(particles->size());
  tp.parent = -1;
  tp.pdg = primary.pdg;
  tp.process = Process::kPrimary;
  tp.category = Categorize(primary.pdg, Process::kPrimary, 0);
  tp.t_ns = static_cast<float>(primary.t_ns);
  const double mass = MassMeV(primary.pdg);
  const double p = std::sqrt(primary.kinetic_mev * (primary.kinetic_mev + 2 * mass));
  Track track;
  track.pdg = primary.pdg;
  for (int i = 0; i < 3; ++i) {
    track.pos[i] = primary.pos[i];
    track.dir[i] = primary.dir[i];
  }
  Normalize(track.dir);
  for (int i = 0; i < 3; ++i) {
    tp.start[i] = tp.end[i] = static_cast<float>(track.pos[i]);
    tp.momentum[i] = static_cast<float>(p * track.dir[i]);
  }
  tp.kinetic_mev = static_cast<float>(primary.kinetic_mev);
  particles->push_back(tp);
  track.ke = primary.kinetic_mev;
  track.t = primary.t_ns;
  track.truth_id = tp.id;
  track.owns = true;
  ctx.stack.push_back(track);

  while (!ctx.stack.empty()) {
    Track t = ctx.stack.back();
    ctx.stack.pop_back();
    if (t.pdg == pdg::kElectron || t.pdg == pdg::kPositron) {
      TransportElectron(t, ctx);
    } else if (t.pdg == pdg::kGamma) {
      TransportPhoton(t, ctx);
    } else if (IsHeavyCharged(t.pdg)) {
      TransportCharged(t, ctx);
    } else if (t.pdg == pdg::kPiZero) {
      // pi0 -> gamma gamma at once (c tau = 25 nm): isotropic in the rest frame, boosted.
      const double m = MassMeV(pdg::kPiZero);
      const double e = t.ke + m;
      const double pmag = std::sqrt(std::max(0.0, e * e - m * m));
      double d[3];
      IsotropicDirection(*ctx.rng, d);
      const double beta = pmag / e, gamma = e / m;
      for (int sign : {1, -1}) {
        // Rest-frame photon along +-d; boost along t.dir.
        const double er = m / 2;
        double pr[3] = {sign * er * d[0], sign * er * d[1], sign * er * d[2]};
        const double pl = pr[0] * t.dir[0] + pr[1] * t.dir[1] + pr[2] * t.dir[2];
        const double el = gamma * (er + beta * pl);
        const double add = gamma * (pl + beta * er) - pl;
        double pd[3] = {pr[0] + add * t.dir[0], pr[1] + add * t.dir[1], pr[2] + add * t.dir[2]};
        Normalize(pd);
        NewSecondary(t, pdg::kGamma, t.pos, pd, el, t.t, Process::kDecay, ctx);
      }
    }
    // Neutrons and unknown species are not transported (see docs/simulation.md).
    if (t.owns) {
      TruthParticle& own = (*ctx.particles)[t.truth_id];
      for (int i = 0; i < 3; ++i) own.end[i] = static_cast<float>(t.pos[i]);
    }
  }
}

int Transporter::NewSecondary(const Track& parent, int pdg_code, const double pos[3],
                              const double dir[3], double kinetic, double t_ns, Process process,
                              Context& ctx) const {
  if (kinetic <= 0) return -1;
  Track t;
  t.pdg = pdg_code;
  for (int i = 0; i < 3; ++i) {
    t.pos[i] = pos[i];
    t.dir[i] = dir[i];
  }
  Normalize(t.dir);
  t.ke = kinetic;
  t.t = t_ns;
  const bool folded = IsEm(parent.pdg) && IsEm(pdg_code);
  if (folded) {
    t.truth_id = parent.truth_id;
    t.owns = false;
  } else {
    TruthParticle tp;
    tp.id = static_cast<int32_t>(ctx.particles->size());
    tp.parent = parent.truth_id;
    tp.pdg = pdg_code;
    tp.process = process;
    tp.category = Categorize(pdg_code, process, parent.pdg);
    tp.t_ns = static_cast<float>(t_ns);
    const double m = MassMeV(pdg_code);
    const double p = std::sqrt(kinetic * (kinetic + 2 * m));
    for (int i = 0; i < 3; ++i) {
      tp.start[i] = tp.end[i] = static_cast<float>(pos[i]);
      tp.momentum[i] = static_cast<float>(p * t.dir[i]);
    }
    tp.kinetic_mev = static_cast<float>(kinetic);
    ctx.particles->push_back(tp);
    t.truth_id = tp.id;
    t.owns = true;
  }
  ctx.stack.push_back(t);
  return t.truth_id;
}

void Transporter::Deposit(const Track& track, const double from[3], const double to[3],
                          double energy, double dedx, double t0, double t1, Context& ctx) const {
  if (energy <= 0) return;
  const double dx = to[0] - from[0], dy = to[1] - from[1], dz = to[2] - from[2];
  const double len = std::sqrt(dx * dx + dy * dy + dz * dz);
  const double spacing = config_.transport.deposit_spacing_mm / 10.0;
  const int n = std::max(1, static_cast<int>(std::ceil(len / spacing)));
  const double r = lar::RecombinationFactor(dedx, config_.argon.efield_kv_cm, density_,
                                            config_.argon.recomb_a, config_.argon.recomb_b);
  const double e_each = energy / n;
  const double q_each = e_each * 1e6 / config_.argon.w_ion_ev * r;
  const Box& active = geometry_->active_box();
  for (int i = 0; i < n; ++i) {
    const double f = (i + 0.5) / n;
    const double x = from[0] + f * dx, y = from[1] + f * dy, z = from[2] + f * dz;
    if (!active.Contains(x, y, z)) continue;
    ctx.deposits->push_back({static_cast<float>(x), static_cast<float>(y), static_cast<float>(z),
                             static_cast<float>(t0 + f * (t1 - t0)), static_cast<float>(e_each),
                             static_cast<float>(q_each), track.truth_id});
  }
}

void Transporter::LocalDeposit(const Track& track, double energy, Context& ctx) const {
  if (energy <= 0) return;
  // A stopping particle or absorbed photon: all energy at one point, with the dE/dx of a
  // slow electron for recombination (heavily ionising, so recombination is stronger).
  const double dedx = lar::ElectronCollisionDedx(std::max(energy, 0.01), density_);
  Deposit(track, track.pos, track.pos, energy, dedx, track.t, track.t, ctx);
}

void Transporter::ContinuousStep(Track& track, double s, double dedx, double xi, double p,
                                 double beta, Context& ctx) const {
  Rng& rng = *ctx.rng;
  const double t_kin = track.ke;
  // Restricted loss with Moyal fluctuations of width xi; the Moyal mean is mode + xi (gamma_E +
  // ln 2), so the mean loss stays dedx * s. No step loses more than a delta ray below the cut.
  const double mean = dedx * s;
  double de = mean + xi * (lar::SampleMoyal(rng) - 1.2704);
  de = std::clamp(de, 0.0, std::min(t_kin, mean + config_.transport.delta_cut_mev));
  if (mean >= t_kin) {  // stops inside this step: shorten it to the remaining range
    s = s * t_kin / mean;
    de = t_kin;
  }
  double end[3];
  for (int i = 0; i < 3; ++i) end[i] = track.pos[i] + s * track.dir[i];
  const double t1 = track.t + s / (beta * lar::kSpeedOfLightCmPerNs);
  Deposit(track, track.pos, end, de, de / std::max(s, 1e-6), track.t, t1, ctx);
  for (int i = 0; i < 3; ++i) track.pos[i] = end[i];
  track.t = t1;
  track.ke -= de;
  const double theta0 = lar::HighlandTheta0(p, beta, s, density_);
  if (theta0 > 0) {
    const double tx = rng.Normal() * theta0, ty = rng.Normal() * theta0;
    RotateUz(track.dir, std::cos(std::min(kPi, std::sqrt(tx * tx + ty * ty))), std::atan2(ty, tx));
  }
}

void Transporter::TransportCharged(Track& track, Context& ctx) const {
  Rng& rng = *ctx.rng;
  const auto& tc = config_.transport;
  const double mass = MassMeV(track.pdg);
  const double max_step = tc.max_step_mm / 10.0;
  const bool hadron = std::abs(track.pdg) == 211 || track.pdg == pdg::kProton;
  const double had_rate =
      (tc.hadronic_interactions && hadron) ? density_ / lar::kNuclearInteractionLengthGcm2 : 0.0;
  for (int step = 0; step < kMaxStepsPerTrack; ++step) {
    if (!InWorld(track.pos)) return;  // escaped: no decay inside
    if (track.ke <= tc.hadron_cut_mev) {
      LocalDeposit(track, track.ke, ctx);
      track.ke = 0;
      AtRest(track, ctx);
      return;
    }
    const double t_kin = track.ke;
    const double gamma = 1.0 + t_kin / mass;
    const double beta = std::sqrt(std::max(1e-12, 1.0 - 1.0 / (gamma * gamma)));
    const double p = std::sqrt(t_kin * (t_kin + 2 * mass));
    const double dedx =
        std::max(lar::BetheRestrictedDedx(mass, t_kin, tc.delta_cut_mev, density_), 0.5);
    const double delta_rate = lar::DeltaRayRate(mass, t_kin, tc.delta_cut_mev, density_);
    const double rate = delta_rate + had_rate;
    const double s_int = rate > 0 ? rng.Exponential(1.0 / rate) : 1e30;
    const double s_loss = std::max(0.2 * t_kin / dedx, 0.02);
    double s = std::min({max_step, s_int, s_loss});
    const bool interact = s == s_int;
    const double xi = 0.5 * lar::kK * lar::kZoverA * density_ * s / (beta * beta);
    ContinuousStep(track, s, dedx, xi, p, beta, ctx);
    if (!interact || track.ke <= tc.hadron_cut_mev) continue;
    if (rng.Uniform() * rate < delta_rate) {
      double td = lar::SampleDeltaEnergy(mass, track.ke, tc.delta_cut_mev, rng);
      td = std::min(td, track.ke - tc.hadron_cut_mev);
      if (td <= 0) continue;
      const double e_inc = track.ke + mass;
      const double p_inc = std::sqrt(track.ke * (track.ke + 2 * mass));
      const double pd = std::sqrt(td * (td + 2 * kElectronMass));
      const double cos_theta = std::min(1.0, td / pd * (e_inc + kElectronMass) / p_inc);
      double d[3] = {track.dir[0], track.dir[1], track.dir[2]};
      RotateUz(d, cos_theta, 2 * kPi * rng.Uniform());
      NewSecondary(track, pdg::kElectron, track.pos, d, td, track.t, Process::kIonisation, ctx);
      track.ke -= td;
    } else {
      bool survives = true;
      Hadronic(track, ctx, &survives);
      if (!survives) return;
    }
  }
}

void Transporter::AtRest(const Track& track, Context& ctx) const {
  Rng& rng = *ctx.rng;
  double d[3];
  switch (track.pdg) {
    case pdg::kMuPlus: {
      IsotropicDirection(rng, d);
      const double e = lar::SampleMichelEnergy(rng);
      NewSecondary(track, pdg::kPositron, track.pos, d, e - kElectronMass,
                   track.t + rng.Exponential(lar::kMuPlusLifetimeNs), Process::kDecay, ctx);
      break;
    }
    case pdg::kMuMinus: {
      const double t = track.t + rng.Exponential(lar::kMuMinusArgonLifetimeNs);
      if (rng.Uniform() < config_.cosmics.mu_minus_capture_fraction) {
        // mu- 40Ar -> nu 40Cl*: de-excitation gammas (a few MeV in all); the neutrons that
        // usually follow are not transported. Occasionally a proton.
        const int n_gamma = 1 + static_cast<int>(rng.Poisson(1.0));
        const double e_total = rng.Uniform(2.0, 8.0);
        for (int i = 0; i < n_gamma; ++i) {
          IsotropicDirection(rng, d);
          NewSecondary(track, pdg::kGamma, track.pos, d, e_total / n_gamma, t, Process::kCapture,
                       ctx);
        }
        if (rng.Uniform() < 0.1) {
          IsotropicDirection(rng, d);
          NewSecondary(track, pdg::kProton, track.pos, d, std::min(rng.Exponential(15.0), 60.0), t,
                       Process::kCapture, ctx);
        }
      } else {
        IsotropicDirection(rng, d);
        const double e = lar::SampleMichelEnergy(rng);
        NewSecondary(track, pdg::kElectron, track.pos, d, e - kElectronMass, t, Process::kDecay,
                     ctx);
      }
      break;
    }
    case pdg::kPiPlus: {
      IsotropicDirection(rng, d);
      NewSecondary(track, pdg::kMuPlus, track.pos, d, lar::kPiPlusRestMuonKineticMeV,
                   track.t + rng.Exponential(kPiPlusLifetimeNs), Process::kDecay, ctx);
      break;
    }
    case pdg::kPiMinus: {
      // Nuclear absorption: mostly neutrons (not transported) and a few protons.
      const int n_p = static_cast<int>(rng.Poisson(1.0));
      for (int i = 0; i < n_p; ++i) {
        IsotropicDirection(rng, d);
        NewSecondary(track, pdg::kProton, track.pos, d, std::min(rng.Exponential(20.0), 80.0),
                     track.t, Process::kCapture, ctx);
      }
      break;
    }
    default:
      break;
  }
}

void Transporter::Hadronic(Track& track, Context& ctx, bool* survives) const {
  // A deliberately simple model (docs/simulation.md): it makes vertices with proton and pion
  // daughters and pi0 showers, not accurate multiplicities or spectra.
  Rng& rng = *ctx.rng;
  const double t_kin = track.ke;
  const double cut = config_.transport.hadron_cut_mev;
  double d[3];
  auto forward_dir = [&](double* out) {
    for (int i = 0; i < 3; ++i) out[i] = track.dir[i];
    const double u = rng.Uniform();
    RotateUz(out, 1.0 - 2.0 * u * u, 2 * kPi * rng.Uniform());
  };
  if (rng.Uniform() < 0.3) {  // quasi-elastic: knock out one proton, continue
    const double tp = t_kin * rng.Uniform(0.05, 0.4);
    forward_dir(d);
    if (tp > cut)
      NewSecondary(track, pdg::kProton, track.pos, d, tp, track.t, Process::kHadronic, ctx);
    track.ke = t_kin - tp - 8.0;  // ~8 MeV nucleon separation energy
    RotateUz(track.dir, std::cos(std::fabs(rng.Normal()) * 0.3), 2 * kPi * rng.Uniform());
    *survives = track.ke > cut;
    return;
  }
  *survives = false;
  const double available = t_kin * rng.Uniform(0.4, 0.9);  // the rest: neutrons, nuclear binding
  std::vector<int> products;
  const int n_p = 1 + static_cast<int>(rng.Poisson(0.8));
  for (int i = 0; i < n_p; ++i) products.push_back(pdg::kProton);
  const bool pion = std::abs(track.pdg) == 211;
  if (pion && rng.Uniform() < 0.5) products.push_back(track.pdg);  // leading pion
  const int n_pic = static_cast<int>(rng.Poisson(std::max(0.0, (t_kin - 200.0) / 1000.0)));
  for (int i = 0; i < n_pic; ++i)
    products.push_back(rng.Uniform() < 0.5 ? pdg::kPiPlus : pdg::kPiMinus);
  if (t_kin > 200 && rng.Uniform() < (pion ? 0.3 : 0.15)) products.push_back(pdg::kPiZero);
  std::vector<double> w(products.size());
  double sum = 0;
  for (auto& x : w) sum += (x = rng.Exponential(1.0));
  for (std::size_t i = 0; i < products.size(); ++i) {
    const double share = available * w[i] / sum;
    forward_dir(d);
    if (share > cut)
      NewSecondary(track, products[i], track.pos, d, share, track.t, Process::kHadronic, ctx);
  }
}

void Transporter::TransportElectron(Track& track, Context& ctx) const {
  Rng& rng = *ctx.rng;
  const auto& tc = config_.transport;
  const double max_step = tc.electron_max_step_mm / 10.0;
  const bool electron = track.pdg == pdg::kElectron;
  for (int step = 0; step < kMaxStepsPerTrack; ++step) {
    if (!InWorld(track.pos)) return;
    if (track.ke <= tc.electron_cut_mev) {
      LocalDeposit(track, track.ke, ctx);
      track.ke = 0;
      if (!electron) {  // positron annihilation at rest: two back-to-back 511 keV photons
        double d[3];
        IsotropicDirection(rng, d);
        NewSecondary(track, pdg::kGamma, track.pos, d, kElectronMass, track.t,
                     Process::kAnnihilation, ctx);
        for (double& c : d) c = -c;
        NewSecondary(track, pdg::kGamma, track.pos, d, kElectronMass, track.t,
                     Process::kAnnihilation, ctx);
      }
      return;
    }
    const double t_kin = track.ke;
    const double e_tot = t_kin + kElectronMass;
    const double p = std::sqrt(t_kin * (t_kin + 2 * kElectronMass));
    const double beta = p / e_tot;
    const double dedx_col = lar::ElectronCollisionDedx(t_kin, density_);
    const double tmax = electron ? 0.5 * t_kin : t_kin;
    const double kfac = 0.5 * lar::kK * lar::kZoverA * density_ / (beta * beta);
    double delta_rate = 0, delta_loss = 0;
    if (tmax > tc.delta_cut_mev) {
      delta_rate = kfac * (1.0 / tc.delta_cut_mev - 1.0 / tmax);
      delta_loss = kfac * std::log(tmax / tc.delta_cut_mev);
    }
    const double dedx = std::max(dedx_col - delta_loss, 0.5 * dedx_col) +
                        lar::BremsSoftLoss(t_kin, tc.brems_cut_mev, density_);
    const double brems_rate = lar::BremsRate(t_kin, tc.brems_cut_mev, density_);
    const double rate = delta_rate + brems_rate;
    const double s_int = rate > 0 ? rng.Exponential(1.0 / rate) : 1e30;
    const double s_loss = std::max(0.2 * t_kin / dedx, 0.01);
    double s = std::min({max_step, s_int, s_loss});
    const bool interact = s == s_int;
    ContinuousStep(track, s, dedx, kfac * s, p, beta, ctx);
    if (!interact || track.ke <= tc.electron_cut_mev) continue;
    double d[3] = {track.dir[0], track.dir[1], track.dir[2]};
    if (rng.Uniform() * rate < brems_rate) {
      double k = lar::SampleBremsEnergy(track.ke, tc.brems_cut_mev, rng);
      k = std::min(k, 0.999 * track.ke);
      const double theta = SampleTsaiU(rng) * kElectronMass / (track.ke + kElectronMass);
      RotateUz(d, std::cos(std::min(theta, kPi)), 2 * kPi * rng.Uniform());
      NewSecondary(track, pdg::kGamma, track.pos, d, k, track.t, Process::kBrems, ctx);
      track.ke -= k;
    } else {
      const double tmax_now = electron ? 0.5 * track.ke : track.ke;
      if (tmax_now <= tc.delta_cut_mev) continue;
      const double inv =
          1.0 / tc.delta_cut_mev - rng.Uniform() * (1.0 / tc.delta_cut_mev - 1.0 / tmax_now);
      const double td = 1.0 / inv;
      // Moller kinematics for the knock-on direction.
      const double c =
          std::sqrt(td * (track.ke + 2 * kElectronMass) / (track.ke * (td + 2 * kElectronMass)));
      RotateUz(d, std::min(1.0, c), 2 * kPi * rng.Uniform());
      NewSecondary(track, pdg::kElectron, track.pos, d, td, track.t, Process::kIonisation, ctx);
      track.ke -= td;
    }
  }
}

void Transporter::TransportPhoton(Track& track, Context& ctx) const {
  Rng& rng = *ctx.rng;
  const auto& tc = config_.transport;
  for (int step = 0; step < kMaxStepsPerTrack; ++step) {
    const double e = track.ke;
    if (e <= tc.photon_cut_mev) {
      if (InWorld(track.pos)) LocalDeposit(track, e, ctx);
      track.ke = 0;
      return;
    }
    const double mu = lar::PhotonAttenuation(e, density_);
    const double s = rng.Exponential(1.0 / mu);
    for (int i = 0; i < 3; ++i) track.pos[i] += s * track.dir[i];
    track.t += s / lar::kSpeedOfLightCmPerNs;
    if (!InWorld(track.pos)) return;
    const double u = rng.Uniform();
    const double f_pair = lar::PairFraction(e);
    const double f_pe = lar::PhotoelectricFraction(e);
    double d[3] = {track.dir[0], track.dir[1], track.dir[2]};
    if (u < f_pair) {
      const double x = lar::SamplePairFraction(e, rng);
      const double phi = 2 * kPi * rng.Uniform();
      const double t_minus = x * e - kElectronMass, t_plus = (1 - x) * e - kElectronMass;
      double d2[3] = {track.dir[0], track.dir[1], track.dir[2]};
      RotateUz(d,
               std::cos(std::min(
                   kPi, SampleTsaiU(rng) * kElectronMass / std::max(x * e, kElectronMass))),
               phi);
      RotateUz(d2,
               std::cos(std::min(
                   kPi, SampleTsaiU(rng) * kElectronMass / std::max((1 - x) * e, kElectronMass))),
               phi + kPi);
      NewSecondary(track, pdg::kElectron, track.pos, d, t_minus, track.t, Process::kConversion,
                   ctx);
      NewSecondary(track, pdg::kPositron, track.pos, d2, t_plus, track.t, Process::kConversion,
                   ctx);
      track.ke = 0;
      return;
    }
    if (u < f_pair + f_pe) {
      IsotropicDirection(rng, d);
      NewSecondary(track, pdg::kElectron, track.pos, d, e, track.t, Process::kPhotoelectric, ctx);
      track.ke = 0;
      return;
    }
    double eps, cos_theta;
    lar::SampleCompton(e, rng, &eps, &cos_theta);
    const double phi = 2 * kPi * rng.Uniform();
    double new_dir[3] = {track.dir[0], track.dir[1], track.dir[2]};
    RotateUz(new_dir, cos_theta, phi);
    const double e_new = eps * e;
    const double te = e - e_new;
    // Electron momentum = incoming photon momentum - scattered photon momentum.
    double pe[3];
    for (int i = 0; i < 3; ++i) pe[i] = e * track.dir[i] - e_new * new_dir[i];
    NewSecondary(track, pdg::kElectron, track.pos, pe, te, track.t, Process::kCompton, ctx);
    for (int i = 0; i < 3; ++i) track.dir[i] = new_dir[i];
    track.ke = e_new;
  }
}

}  // namespace larserve::sim
