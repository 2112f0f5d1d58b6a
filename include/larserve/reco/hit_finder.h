#pragma once
// Hit finding on the signal-processed waveforms of one plane, after LArSoft's GausHitFinder
// (CandHitStandard + PeakFitterGaussian), simplified:
//
//  1. Per channel, within each ROI, a pulse is a run of samples above the threshold, extended on
//     both sides while the signal keeps falling (to the local minimum) and stays above
//     `edge_fraction` of the threshold (1 noise sigma by default: below it is noise). Pulses
//     whose extensions touch are one pulse train.
//  2. The local maxima above threshold in a pulse train are its peaks; neighbouring peaks are
//     kept apart only when the dip between them is at least `min_prominence_sigma` noise sigma
//     below the lower of the two (otherwise a noise wiggle on a slope would make a hit), and the
//     train is split at those dips.
//  3. The peaks of a train are fitted together with a sum of Gaussians (Levenberg-Marquardt,
//     started from a three-point log-parabola estimate of each peak). Trains with more than
//     `max_multi_hit` peaks, or whose fit fails or is poor (chi2/ndf above `max_chi2_ndf`,
//     residuals in units of the plane noise), are "long pulses" and are cut into hits of about
//     `long_pulse_width` ticks described by their moments, as GausHitFinder does.
//
// Our induction planes carry a unipolar (deconvolved, Gaussian-filtered) signal like the
// collection plane (sim/detsim.h), so the same algorithm and threshold apply to all planes.
//
// Units: ticks are sample indices (sample k is tick k); amplitudes in ADC-equivalent counts.
// Thread-safety: FindHits is a pure function; call it concurrently on different planes.
#include <array>
#include <cstdint>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/sim/event.h"

namespace larserve::reco {

struct HitFinderConfig {
  // Peak threshold per plane (U, V, W) in units of the plane's per-tick noise_rms_adc. Ours:
  // 5 sigma gives about one noise hit per plane per event with the default simulation.
  std::array<float, 3> threshold_sigma{5.0f, 5.0f, 5.0f};
  // Lower bound of the threshold in ADC, for planes without noise (noise_rms_adc ~ 0). Ours.
  float min_threshold_adc = 1.0f;
  // Pulses extend down their slopes while above this fraction of the threshold. Ours: 0.2 of a
  // 5 sigma threshold is 1 noise sigma; a 50-sigma Gaussian pulse then spans +-2.8 sigma_t.
  float edge_fraction = 0.2f;
  // Two peaks are separate hits only if the dip between them is this many noise sigma below
  // the lower peak. Ours.
  float min_prominence_sigma = 2.0f;
  // Peaks fitted together in one pulse train (GausHitFinder MaxMultiHit).
  int max_multi_hit = 5;
  // Width of the hits a long pulse is cut into (GausHitFinder LongPulseWidth).
  int long_pulse_width = 16;
  // Fits worse than this chi2/ndf (noise-normalised) make the train a long pulse. Ours: the
  // simulated pulses are Gaussian to a few per cent, so good fits of large pulses stay far below.
  float max_chi2_ndf = 200.0f;
  // Gaussian widths outside [min, max] ticks mean the fit failed. The filter alone gives 2.66.
  float min_sigma_ticks = 0.5f;
  float max_sigma_ticks = 100.0f;
  int max_fit_iterations = 50;

  Status Validate() const;
};

// One hit, as recob::Hit.
struct Hit {
  int32_t wire = 0;          // channel of the plane
  float peak_tick = 0;       // Gaussian mean (sub-tick), in [start_tick, end_tick)
  float rms_ticks = 0;       // Gaussian sigma
  float amplitude = 0;       // Gaussian peak height, ADC
  float integral = 0;        // Gaussian area, ADC x ticks (long pulses: summed ADC)
  float summed_adc = 0;      // sum of the samples in [start_tick, end_tick)
  int32_t start_tick = 0;    // the part of the pulse train attributed to this hit: the ticks
  int32_t end_tick = 0;      //   between the dips that separate it from its neighbours
  float chi2_ndf = -1;       // of the train's fit; -1 for long-pulse hits (not fitted)
  int16_t multiplicity = 1;  // hits of the same pulse train
  int16_t local_index = 0;   // index of this hit in its train
};

// Finds the hits of a plane, ordered by (wire, peak_tick). Validates the plane first
// (ValidatePlane) and the configuration.
StatusOr<std::vector<Hit>> FindHits(const sim::PlaneData& plane, const HitFinderConfig& config);

// The threshold (ADC) FindHits applies to a plane.
float HitThresholdAdc(const sim::PlaneData& plane, const HitFinderConfig& config);

}  // namespace larserve::reco
