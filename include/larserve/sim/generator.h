#pragma once
// Primary generators: cosmic muons at the surface and a ProtoDUNE-like test beam.
// Both are immutable after construction and draw all randomness from the Rng they are given.
#include <vector>

#include "larserve/core/rng.h"
#include "larserve/sim/config.h"
#include "larserve/sim/event.h"
#include "larserve/sim/geometry.h"

namespace larserve::sim {

// Cosmic muons through a horizontal plane above the detector, over the time window in which
// their charge can reach the readout window. Spectrum: Reyna's parametrisation of the
// sea-level muon intensity, I(p, theta) = cos^3(theta) I_V(p cos(theta)) (Reyna 2006,
// hep-ph/0604145), times cos(theta) for the flux through a horizontal surface. Muons whose
// straight line misses the active volume (plus a margin) are not transported.
class CosmicGenerator {
 public:
  CosmicGenerator(const SimConfig& config, const Geometry& geometry);
  // Appends the muons of one event.
  void Generate(Rng& rng, std::vector<Primary>* out) const;
  // Expected number of muons crossing the generation plane per event (before the line cut).
  double MeanPerEvent() const { return mean_per_event_; }
  // Samples (momentum GeV/c, cos(zenith)) from the spectrum; exposed for tests.
  void SampleMomentumAndAngle(Rng& rng, double* p_gev, double* cos_theta) const;
  // Vertical intensity I_V(p) (arbitrary normalisation).
  static double VerticalIntensity(double p_gev);

 private:
  SimConfig config_;
  Box active_;
  double plane_y_ = 0, x_lo_ = 0, x_hi_ = 0, z_lo_ = 0, z_hi_ = 0;
  double t_lo_ns_ = 0, t_hi_ns_ = 0;
  double mean_per_event_ = 0;
  std::vector<double> zeta_grid_, zeta_cdf_;  // inverse-CDF table of I_V in log(zeta)
};

class BeamGenerator {
 public:
  explicit BeamGenerator(const SimConfig& config);
  void Generate(Rng& rng, std::vector<Primary>* out) const;

 private:
  SimConfig config_;
  std::vector<int> pdg_;
  std::vector<double> cumulative_;
};

}  // namespace larserve::sim
