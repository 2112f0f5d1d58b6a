#pragma once
// Configuration of the simulation. Every default is a ProtoDUNE-SP value (FACTS.md sections
// 3-4, sources named beside each field) or, where marked "ours", a choice of this project.
// A JSON file (`larserve sim --config FILE`) overrides any subset; unknown keys and impossible
// values are rejected with the key's full name.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "larserve/core/status.h"

namespace larserve::sim {

struct DetectorConfig {
  int apas = 1;                  // ProtoDUNE-SP has 6; 1..3 in one row, 4..12 (even) in two rows
  int n_ticks = 6000;            // readout window, 2 MHz sampling -> 3 ms
  double tick_us = 0.5;          // 2 MHz ADC
  int trigger_tick = 500;        // pre-trigger: t = 0 (beam) arrives at this tick (ours)
  double drift_length_cm = 360;  // per side
  double apa_height_cm = 598.4;  // active wire height (~6 m)
  double apa_width_cm = 230.0;   // = 480 collection wires x 4.792 mm
  std::array<double, 3> wire_pitch_mm{4.669, 4.669, 4.792};
  std::array<double, 3> wire_angle_deg{35.7, -35.7, 0.0};  // from vertical, U V W
  int induction_channels = 800;  // per APA per induction plane (wires wrap both faces)
  int collection_wires_per_face = 480;
  double plane_spacing_mm = 4.8;
};

struct ArgonConfig {
  double density_g_cm3 = 1.39;
  double efield_kv_cm = 0.5;
  double drift_speed_mm_us = 1.6;       // 1.56-1.6 at 500 V/cm
  double electron_lifetime_ms = 35.0;   // 10-35 ms in simulation configs
  double diffusion_long_cm2_s = 6.2;    // LArSoft ProtoDUNE default
  double diffusion_trans_cm2_s = 16.3;  // LArSoft ProtoDUNE default
  double w_ion_ev = 23.6;
  double recomb_a = 0.930;  // Modified Box, ArgoNeuT
  double recomb_b = 0.212;  // (kV/cm)(g/cm^2)/MeV
};

struct ReadoutConfig {
  // Time-domain sigma of the Gaussian low-pass filter of signal processing. Wire-Cell's
  // ProtoDUNE "Gaus" filters have frequency sigma ~0.12 MHz -> 1/(2 pi 0.12 MHz) = 1.33 us.
  double filter_sigma_us = 1.33;
  // Noise after deconvolution, as equivalent noise charge (electrons) of a hit: the RMS of the
  // noise summed over the hit window (+-2.5 filter sigma). FACTS: ~1000 e after deconvolution.
  std::array<double, 3> noise_enc_electrons{1000, 1000, 1000};
  bool noise = true;
  double electrons_per_adc = 180;    // FACTS: ~180 e per ADC count; unit of the stored signal
  double roi_threshold_sigma = 4.0;  // ROI: |signal| above this many per-tick noise RMS (ours)
  int roi_pad_ticks = 12;            // ticks kept before and after a threshold crossing (ours)
  double truth_min_electrons = 100;  // truth pixels stored above this charge (ours)
};

struct CosmicConfig {
  bool enabled = true;
  double rate_hz_per_m2 = 167;  // PDG: ~1 muon / cm^2 / min through a horizontal surface
  double min_momentum_gev = 0.2;
  double max_momentum_gev = 1000;
  double mu_plus_fraction = 0.555;          // sea-level charge ratio mu+/mu- ~ 1.25
  double mu_minus_capture_fraction = 0.75;  // FACTS: mu- stopping in argon mostly captured
  double generation_margin_cm = 600;        // generation plane extends this far beyond the detector
};

struct BeamConfig {
  bool enabled = true;
  int particles_per_event = 1;
  std::vector<std::string> species{"e-", "gamma", "pi+", "proton", "mu+"};
  std::vector<double> weights{1, 1, 1, 1, 1};
  double momentum_gev = 1.0;
  double momentum_spread = 0.05;                        // relative Gaussian sigma
  std::array<double, 3> position_cm{-100, 400, -5};     // world coordinates, upstream of z = 0
  std::array<double, 3> direction{-0.18, -0.20, 0.96};  // ProtoDUNE-SP beam line (approx.)
  double position_spread_cm = 3;
  double angular_spread_deg = 1;
  double time_us = 0;
};

struct TransportConfig {
  double max_step_mm = 3.0;           // heavy charged particles (ours)
  double electron_max_step_mm = 2.0;  // e+- (ours)
  double deposit_spacing_mm = 1.0;    // charge points along a step (ours)
  double delta_cut_mev = 1.0;         // knock-on electrons above this are explicit
  double brems_cut_mev = 0.2;         // bremsstrahlung photons above this are explicit
  double electron_cut_mev = 0.5;      // e+- below this deposit locally (range ~ 2 mm)
  double photon_cut_mev = 0.03;       // photons below this are absorbed locally
  double hadron_cut_mev = 1.0;        // hadrons and muons below this stop
  bool hadronic_interactions = true;
  double world_margin_cm = 20;
};

struct SimConfig {
  DetectorConfig detector;
  ArgonConfig argon;
  ReadoutConfig readout;
  CosmicConfig cosmics;
  BeamConfig beam;
  TransportConfig transport;

  // Overrides fields from a JSON document; rejects unknown keys and wrong types.
  Status MergeJson(const std::string& json_text);
  // Checks every value; the message names the key and the allowed range.
  Status Validate() const;
  std::string ToJson() const;  // complete, pretty-printed
};

StatusOr<SimConfig> LoadSimConfig(const std::string& path);

}  // namespace larserve::sim
