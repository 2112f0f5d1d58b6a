#pragma once
// Detector response: drift of ionisation charge to the wires (electron lifetime, longitudinal
// and transverse diffusion), projection onto wrapped U/V and W channels, and the signal that
// signal processing delivers to reconstruction: charge convolved with the Gaussian filter of
// the deconvolution plus filtered noise, kept in regions of interest like LArSoft's recob::Wire.
// Truth per (channel, tick): total charge and the particle that brought the most of it.
//
// Thread-safety: immutable after construction; Digitize may run concurrently on different
// planes.
#include <cstdint>
#include <vector>

#include "larserve/sim/config.h"
#include "larserve/sim/event.h"
#include "larserve/sim/geometry.h"

namespace larserve::sim {

struct DriftedDeposit {
  float tick;        // arrival tick at the U plane, continuous (tick k covers [k, k+1))
  float sigma_tick;  // longitudinal diffusion
  float y_cm, z_local_cm;
  float sigma_t_cm;  // transverse diffusion
  float charge;      // electrons reaching the wires
  int32_t truth_id;
  uint8_t face;
};

class DetectorResponse {
 public:
  DetectorResponse(const SimConfig& config, const Geometry& geometry);

  // Drifts deposits (which must be grouped by truth_id) to their APA. Adds each deposit's
  // energy and surviving charge to its particle. Returns one list per APA, order kept.
  std::vector<std::vector<DriftedDeposit>> Drift(const std::vector<Deposit>& deposits,
                                                 std::vector<TruthParticle>* particles) const;

  PlaneData Digitize(int apa, int plane, const std::vector<DriftedDeposit>& deposits,
                     uint64_t noise_seed) const;

  // Per-tick RMS of the noise in the stored signal, ADC-equivalent units.
  double NoiseRmsAdc(int plane) const {
    return noise_tick_rms_e_[plane] / config_.readout.electrons_per_adc;
  }
  // White-noise sigma (electrons per tick, before the filter) that gives the configured ENC.
  double WhiteNoiseSigma(int plane) const { return white_sigma_e_[plane]; }
  const std::vector<float>& filter_kernel() const { return kernel_; }
  double plane_offset_ticks(int plane) const { return plane * plane_offset_ticks_; }

 private:
  SimConfig config_;
  const Geometry* geometry_;
  std::vector<float> kernel_;  // Gaussian filter taps, centred, sum 1
  double white_sigma_e_[3] = {0, 0, 0};
  double noise_tick_rms_e_[3] = {0, 0, 0};
  double plane_offset_ticks_ = 0;
};

}  // namespace larserve::sim
