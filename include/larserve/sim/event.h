#pragma once
// In-memory form of one simulated event: truth particles, and per APA and plane the signal in
// regions of interest (as LArSoft's recob::Wire) with the truth of every pixel that received
// charge. The events file (io/event_file.h) stores exactly this.
#include <cstdint>
#include <vector>

#include "larserve/sim/particle.h"

namespace larserve::sim {

struct Primary {
  int pdg = 0;
  double pos[3] = {0, 0, 0};  // cm
  double dir[3] = {0, 0, 1};  // unit vector
  double kinetic_mev = 0;
  double t_ns = 0;  // relative to the trigger
};

struct TruthParticle {
  int32_t id = 0;       // index in SimEvent::particles
  int32_t parent = -1;  // -1 for primaries
  int32_t pdg = 0;
  Process process = Process::kPrimary;
  Category category = Category::kNone;
  float t_ns = 0;
  float start[3] = {0, 0, 0};
  float end[3] = {0, 0, 0};
  float momentum[3] = {0, 0, 0};  // MeV/c at creation
  float kinetic_mev = 0;          // at creation
  float edep_mev = 0;   // energy deposited in the active volume (incl. folded EM daughters)
  float electrons = 0;  // ionisation electrons reaching the wires (after lifetime)
};

// A point of energy loss, in the order the transport made them.
struct Deposit {
  float x, y, z;  // cm
  float t_ns;
  float energy_mev;
  float electrons;   // after recombination, before drift
  int32_t truth_id;  // the saved particle the charge is attributed to
};

struct PlaneData {
  int apa = 0;
  int plane = 0;
  int n_channels = 0;
  int n_ticks = 0;
  float noise_rms_adc = 0;  // per-tick RMS of the noise in the stored signal
  // Regions of interest: ROI r covers ticks [roi_start[r], roi_start[r] + roi_length[r]) of
  // channel roi_channel[r]; its samples are signal[roi_offset[r] ...]. ADC-equivalent units.
  std::vector<int32_t> roi_channel, roi_start, roi_length;
  std::vector<int64_t> roi_offset;
  std::vector<float> signal;
  // Truth pixels (charge above readout.truth_min_electrons), sorted by (channel, tick).
  std::vector<uint16_t> truth_channel, truth_tick;
  std::vector<int32_t> truth_id;    // dominant particle
  std::vector<float> truth_charge;  // all particles, electrons at the wires
};

struct SimEvent {
  int64_t index = 0;
  uint64_t seed = 0;  // the per-event seed derived from the run seed and index
  std::vector<TruthParticle> particles;
  std::vector<PlaneData> planes;  // n_apas * 3, index apa * 3 + plane
  // Summary
  int64_t n_deposits = 0;
  double deposited_mev = 0;  // in the active volume
  double electrons_at_wires = 0;
  int n_cosmics = 0;
  int n_beam = 0;
};

}  // namespace larserve::sim
