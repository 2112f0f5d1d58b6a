#include "larserve/sim/generator.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace larserve::sim {
namespace {
constexpr double kPi = std::numbers::pi;

// Slab test: does the line pos + s dir (s >= 0) cross the box? Returns the entry distance.
bool LineHitsBox(const double pos[3], const double dir[3], const Box& box, double* s_enter) {
  double t0 = 0, t1 = 1e30;
  for (int i = 0; i < 3; ++i) {
    if (std::fabs(dir[i]) < 1e-12) {
      if (pos[i] < box.lo[i] || pos[i] > box.hi[i]) return false;
      continue;
    }
    double a = (box.lo[i] - pos[i]) / dir[i];
    double b = (box.hi[i] - pos[i]) / dir[i];
    if (a > b) std::swap(a, b);
    t0 = std::max(t0, a);
    t1 = std::min(t1, b);
    if (t0 > t1) return false;
  }
  *s_enter = t0;
  return true;
}
}  // namespace

double CosmicGenerator::VerticalIntensity(double p) {
  // Reyna (2006): I_V(p) = c1 p^-(c2 + c3 y + c4 y^2 + c5 y^3), y = log10(p / GeV).
  const double y = std::log10(p);
  const double expo = 0.2455 + 1.288 * y - 0.2555 * y * y + 0.0209 * y * y * y;
  return 0.00253 * std::pow(p, -expo);
}

CosmicGenerator::CosmicGenerator(const SimConfig& config, const Geometry& geometry)
    : config_(config), active_(geometry.active_box()) {
  const auto& c = config.cosmics;
  const auto& d = config.detector;
  const double margin = c.generation_margin_cm;
  plane_y_ = active_.hi[1] + config.transport.world_margin_cm;
  x_lo_ = active_.lo[0] - margin;
  x_hi_ = active_.hi[0] + margin;
  z_lo_ = active_.lo[2] - margin;
  z_hi_ = active_.hi[2] + margin;
  // Charge deposited at time t and drift distance x arrives at t + x / v. Every muon whose
  // charge can arrive inside the readout window must be generated.
  const double tick_ns = d.tick_us * 1000.0;
  const double max_drift_ns = d.drift_length_cm * 10.0 / config.argon.drift_speed_mm_us * 1000.0;
  t_lo_ns_ = -d.trigger_tick * tick_ns - max_drift_ns;
  t_hi_ns_ = (d.n_ticks - d.trigger_tick) * tick_ns;
  const double area_m2 = (x_hi_ - x_lo_) * (z_hi_ - z_lo_) * 1e-4;
  mean_per_event_ = c.enabled ? c.rate_hz_per_m2 * area_m2 * (t_hi_ns_ - t_lo_ns_) * 1e-9 : 0.0;
  // Inverse CDF of I_V(zeta) on a log grid: integrate I(zeta) zeta d(ln zeta).
  const double lo = std::log(0.05), hi = std::log(std::max(c.max_momentum_gev, 1.0));
  const int n = 2000;
  zeta_grid_.resize(n + 1);
  zeta_cdf_.resize(n + 1);
  double acc = 0;
  for (int i = 0; i <= n; ++i) {
    const double lz = lo + (hi - lo) * i / n;
    zeta_grid_[i] = lz;
    if (i > 0) {
      const double mid = std::exp(0.5 * (lz + zeta_grid_[i - 1]));
      acc += VerticalIntensity(mid) * mid * (lz - zeta_grid_[i - 1]);
    }
    zeta_cdf_[i] = acc;
  }
  for (auto& v : zeta_cdf_) v /= acc;
}

void CosmicGenerator::SampleMomentumAndAngle(Rng& rng, double* p_gev, double* cos_theta) const {
  // With zeta = p cos(theta), the flux density cos^4(theta) I_V(p cos theta) dp dcos(theta)
  // factorises into cos^3(theta) dcos(theta) x I_V(zeta) dzeta: sample both, reject outside
  // the configured momentum range.
  const auto& c = config_.cosmics;
  for (;;) {
    const double ct = std::pow(rng.UniformPositive(), 0.25);
    const double u = rng.Uniform();
    const auto it = std::upper_bound(zeta_cdf_.begin(), zeta_cdf_.end(), u);
    const std::size_t i = std::clamp<std::size_t>(it - zeta_cdf_.begin(), 1, zeta_cdf_.size() - 1);
    const double f = (u - zeta_cdf_[i - 1]) / std::max(1e-300, zeta_cdf_[i] - zeta_cdf_[i - 1]);
    const double zeta = std::exp(zeta_grid_[i - 1] + f * (zeta_grid_[i] - zeta_grid_[i - 1]));
    const double p = zeta / ct;
    if (p >= c.min_momentum_gev && p <= c.max_momentum_gev) {
      *p_gev = p;
      *cos_theta = ct;
      return;
    }
  }
}

void CosmicGenerator::Generate(Rng& rng, std::vector<Primary>* out) const {
  if (!config_.cosmics.enabled) return;
  const int64_t n = rng.Poisson(mean_per_event_);
  Box target = active_;
  for (int i = 0; i < 3; ++i) {
    target.lo[i] -= 30.0;  // scattering can bring a near miss into the detector
    target.hi[i] += 30.0;
  }
  const double mass = MassMeV(pdg::kMuMinus);
  Box world = active_;
  for (int i = 0; i < 3; ++i) {
    world.lo[i] -= config_.transport.world_margin_cm;
    world.hi[i] += config_.transport.world_margin_cm;
  }
  for (int64_t i = 0; i < n; ++i) {
    double p, ct;
    SampleMomentumAndAngle(rng, &p, &ct);
    const double phi = 2 * kPi * rng.Uniform();
    const double st = std::sqrt(std::max(0.0, 1 - ct * ct));
    Primary m;
    m.pdg = rng.Uniform() < config_.cosmics.mu_plus_fraction ? pdg::kMuPlus : pdg::kMuMinus;
    m.pos[0] = rng.Uniform(x_lo_, x_hi_);
    m.pos[1] = plane_y_;
    m.pos[2] = rng.Uniform(z_lo_, z_hi_);
    m.dir[0] = st * std::cos(phi);
    m.dir[1] = -ct;
    m.dir[2] = st * std::sin(phi);
    m.t_ns = rng.Uniform(t_lo_ns_, t_hi_ns_);
    const double pmev = p * 1000.0;
    m.kinetic_mev = std::sqrt(pmev * pmev + mass * mass) - mass;
    double s_enter;
    if (!LineHitsBox(m.pos, m.dir, target, &s_enter)) continue;
    // Start just inside the world volume (the active volume plus the world margin).
    if (!LineHitsBox(m.pos, m.dir, world, &s_enter)) continue;
    const double s_start = s_enter + 0.01;
    for (int k = 0; k < 3; ++k) m.pos[k] += s_start * m.dir[k];
    m.t_ns += s_start / 29.9792458;
    out->push_back(m);
  }
}

BeamGenerator::BeamGenerator(const SimConfig& config) : config_(config) {
  double acc = 0;
  for (std::size_t i = 0; i < config.beam.species.size(); ++i) {
    pdg_.push_back(PdgFromName(config.beam.species[i]));
    acc += i < config.beam.weights.size() ? config.beam.weights[i] : 0.0;
    cumulative_.push_back(acc);
  }
}

void BeamGenerator::Generate(Rng& rng, std::vector<Primary>* out) const {
  const auto& b = config_.beam;
  if (!b.enabled || pdg_.empty() || cumulative_.back() <= 0) return;
  for (int n = 0; n < b.particles_per_event; ++n) {
    const double u = rng.Uniform() * cumulative_.back();
    const std::size_t k =
        std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin();
    Primary p;
    p.pdg = pdg_[std::min(k, pdg_.size() - 1)];
    double pmom = b.momentum_gev * 1000.0 * (1.0 + b.momentum_spread * rng.Normal());
    pmom = std::max(pmom, 1.0);
    const double mass = MassMeV(p.pdg);
    p.kinetic_mev = std::sqrt(pmom * pmom + mass * mass) - mass;
    for (int i = 0; i < 3; ++i) p.dir[i] = b.direction[i];
    const double norm = std::sqrt(p.dir[0] * p.dir[0] + p.dir[1] * p.dir[1] + p.dir[2] * p.dir[2]);
    for (double& v : p.dir) v /= norm;
    // Small-angle smearing in two orthogonal directions.
    const double sx = rng.Normal() * b.angular_spread_deg * kPi / 180.0;
    const double sy = rng.Normal() * b.angular_spread_deg * kPi / 180.0;
    double ux[3] = {p.dir[2], 0, -p.dir[0]};
    double un = std::sqrt(ux[0] * ux[0] + ux[2] * ux[2]);
    if (un < 1e-9) {
      ux[0] = 1;
      ux[2] = 0;
      un = 1;
    }
    for (double& v : ux) v /= un;
    const double uy[3] = {p.dir[1] * ux[2] - p.dir[2] * ux[1], p.dir[2] * ux[0] - p.dir[0] * ux[2],
                          p.dir[0] * ux[1] - p.dir[1] * ux[0]};
    for (int i = 0; i < 3; ++i) p.dir[i] += sx * ux[i] + sy * uy[i];
    const double n2 = std::sqrt(p.dir[0] * p.dir[0] + p.dir[1] * p.dir[1] + p.dir[2] * p.dir[2]);
    for (double& v : p.dir) v /= n2;
    for (int i = 0; i < 3; ++i) p.pos[i] = b.position_cm[i];
    p.pos[0] += rng.Normal() * b.position_spread_cm;
    p.pos[1] += rng.Normal() * b.position_spread_cm;
    p.t_ns = b.time_us * 1000.0;
    out->push_back(p);
  }
}

}  // namespace larserve::sim
