#pragma once
// CNN input patches around hits, equivalent to LArSoft's PointIdAlg / DataProviderAlg
// (larreco ImagePatternAlgs) with the ProtoDUNE-SP settings of FACTS.md section 3:
//
//   DownscaleFullView: true, DownscaleFn: "mean", DriftWindow: 6
//     -> the whole view is downsampled once: drift bin i = mean of ticks [6i, 6i + 6)
//        (DataProviderAlg::downscaleMean; n_ticks / 6 bins, a partial last window is dropped
//        as in resizeView), and only then scaled (scaleAdcSamples runs on the downscaled row);
//   AdcMin -10, AdcMax 30, OutMin -5, OutMax 15 (Out* are our choice)
//     -> v = clamp(v, AdcMin, AdcMax); out = OutMin + (OutMax - OutMin) / (AdcMax - AdcMin) *
//        (v - AdcMin) (DataProviderAlg::scaleAdcSample); zero signal maps to the zero level
//        OutMin + scale * (0 - AdcMin) (fAdcZero), which is 0 with these values;
//   PatchSizeW 48, PatchSizeD 48
//     -> patchFromDownsampledView: sd = (size_t)(peak_tick / 6); wires [wire - 24, wire + 24),
//        drift bins [sd - 24, sd + 24); outside the view: the zero level.
// Not reproduced: CalibrateAmpl / CalibrateLifetime (both off: our signal is already in
// ADC-equivalent units and the simulation applies no lifetime correction), blur and noise
// augmentation (test-only options in LArSoft).
//
// A patch is stored [wire][drift] row-major: a batch is an NHWC tensor [N, 48, 48, 1] with
// H = wire and W = drift bin, the layout of the production model's `main_input`.
//
// Thread-safety: a DownsampledView is immutable after Create; FillPatches may run concurrently.
#include <cstdint>
#include <span>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/reco/plane_image.h"

namespace larserve::reco {

struct PatchConfig {
  int patch_wires = 48;    // PatchSizeW
  int patch_drifts = 48;   // PatchSizeD, in downsampled bins
  int drift_window = 6;    // DriftWindow, ticks per downsampled bin
  float adc_min = -10.0f;  // AdcMin (ProtoDUNE-SP)
  float adc_max = 30.0f;   // AdcMax (ProtoDUNE-SP)
  float out_min = -5.0f;   // OutMin (ours)
  float out_max = 15.0f;   // OutMax (ours)

  // Sizes even and 2-1024 (LArSoft's half sizes assume even), window 1-1000, adc_max > adc_min,
  // out_max != out_min, all finite.
  Status Validate() const;
  // fAdcScale and fAdcZero of DataProviderAlg, computed in float as there.
  float scale() const { return (out_max - out_min) / (adc_max - adc_min); }
  float zero_level() const { return out_min + scale() * (0.0f - adc_min); }
  // DataProviderAlg::scaleAdcSample without the (disabled) plane calibration factor.
  float ScaleAdc(float v) const {
    if (v < adc_min) {
      v = adc_min;
    } else if (v > adc_max) {
      v = adc_max;
    }
    return out_min + scale() * (v - adc_min);
  }
  int patch_size() const { return patch_wires * patch_drifts; }
};

// Centre of a patch: a wire of the plane and a tick (a hit's peak tick).
struct PatchCenter {
  int32_t wire = 0;
  float tick = 0;
};

// The downsampled, scaled image of one view (DataProviderAlg::fWireDriftData with
// DownscaleFullView), stored with a margin of zero level around it so that a patch is a gather
// of patch_wires contiguous rows of patch_drifts floats.
class DownsampledView {
 public:
  // Builds the view of wires `wires` of the image (by default the whole plane).
  static StatusOr<DownsampledView> Create(const PlaneImage& image, const PatchConfig& config);
  static StatusOr<DownsampledView> Create(const PlaneImage& image, const PatchConfig& config,
                                          WireRange wires);

  const PatchConfig& config() const { return config_; }
  WireRange wires() const { return wires_; }
  int n_drifts() const { return n_drifts_; }
  // Scaled value of (wire, drift bin); the zero level outside the view.
  float at(int wire, int drift) const;
  // LArSoft's drift bin of a tick: (size_t)(tick / drift_window), in float as there; floor for
  // negative ticks (where LArSoft's cast would be undefined).
  int DriftBin(float tick) const;

  // Writes the patch centred on (wire, tick) to out[0 .. patch_size()), [wire][drift] row-major.
  void FillPatch(int wire, float tick, float* out) const;
  // Writes centres.size() patches to out, one after the other (an [N, W, D, 1] tensor). No
  // allocation: out must hold centres.size() * patch_size() floats.
  void FillPatches(std::span<const PatchCenter> centres, float* out) const;

 private:
  DownsampledView() = default;
  PatchConfig config_;
  WireRange wires_;
  int n_drifts_ = 0;
  int margin_w_ = 0, margin_d_ = 0;  // zero-level border: half a patch on each side
  int stride_ = 0;                   // floats per padded row
  float zero_ = 0;
  std::vector<float> padded_;  // (n_wires + 2 margin_w) x (n_drifts + 2 margin_d)
};

}  // namespace larserve::reco
