#include "larserve/reco/patch_maker.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace larserve::reco {

Status PatchConfig::Validate() const {
  auto bad_size = [](int v) { return v < 2 || v > 1024 || v % 2 != 0; };
  if (bad_size(patch_wires) || bad_size(patch_drifts)) {
    return InvalidArgument("patch size " + std::to_string(patch_wires) + " x " +
                           std::to_string(patch_drifts) + " must be even and 2 to 1024");
  }
  if (drift_window < 1 || drift_window > 1000) {
    return InvalidArgument("drift window " + std::to_string(drift_window) +
                           " must be 1 to 1000 ticks");
  }
  if (!std::isfinite(adc_min) || !std::isfinite(adc_max) || !(adc_max > adc_min)) {
    return InvalidArgument("patch scaling: need finite adc_min < adc_max");
  }
  if (!std::isfinite(out_min) || !std::isfinite(out_max) || out_max == out_min) {
    return InvalidArgument("patch scaling: need finite out_min != out_max");
  }
  return Status::Ok();
}

StatusOr<DownsampledView> DownsampledView::Create(const PlaneImage& image,
                                                  const PatchConfig& config) {
  return Create(image, config, WireRange{0, image.n_wires()});
}

StatusOr<DownsampledView> DownsampledView::Create(const PlaneImage& image,
                                                  const PatchConfig& config, WireRange wires) {
  RETURN_IF_ERROR(config.Validate());
  if (wires.begin < 0 || wires.end > image.n_wires() || wires.begin >= wires.end) {
    return InvalidArgument("view wires [" + std::to_string(wires.begin) + ", " +
                           std::to_string(wires.end) + ") are not inside the plane's " +
                           std::to_string(image.n_wires()) + " wires");
  }
  DownsampledView v;
  v.config_ = config;
  v.wires_ = wires;
  const int window = config.drift_window;
  v.n_drifts_ = image.n_ticks() / window;  // resizeView: fNScaledDrifts = drifts / fDriftWindow
  v.margin_w_ = config.patch_wires / 2;
  v.margin_d_ = config.patch_drifts / 2;
  v.stride_ = v.n_drifts_ + 2 * v.margin_d_;
  v.zero_ = config.zero_level();
  const int n_wires = wires.end - wires.begin;
  v.padded_.assign(static_cast<std::size_t>(n_wires + 2 * v.margin_w_) * v.stride_, v.zero_);
  // downscaleMean: sum in tick order, times the float inverse of the window, then scale.
  const float inv = static_cast<float>(1.0 / window);  // fDriftWindowInv is a float
  for (int w = 0; w < n_wires; ++w) {
    const float* adc = image.wire(wires.begin + w).data();
    float* dst =
        v.padded_.data() + static_cast<std::size_t>(w + v.margin_w_) * v.stride_ + v.margin_d_;
    for (int i = 0, k0 = 0; i < v.n_drifts_; ++i, k0 += window) {
      float sum = 0;
      for (int k = k0; k < k0 + window; ++k) sum += adc[k];
      dst[i] = config.ScaleAdc(sum * inv);
    }
  }
  return v;
}

float DownsampledView::at(int wire, int drift) const {
  if (!wires_.contains(wire) || drift < 0 || drift >= n_drifts_) return zero_;
  return padded_[static_cast<std::size_t>(wire - wires_.begin + margin_w_) * stride_ + drift +
                 margin_d_];
}

int DownsampledView::DriftBin(float tick) const {
  const float d = tick / static_cast<float>(config_.drift_window);
  return d >= 0 ? static_cast<int>(d) : static_cast<int>(std::floor(d));
}

void DownsampledView::FillPatch(int wire, float tick, float* out) const {
  const int pw = config_.patch_wires, pd = config_.patch_drifts;
  // patchFromDownsampledView: w0 = wire - halfSizeW .. w1 = wire + halfSizeW (exclusive), the
  // same for the drift bin sd. Rows and columns outside the view are the zero level (fAdcZero).
  const int w0 = wire - pw / 2;
  const int d0 = DriftBin(tick) - pd / 2;
  // Row r of the patch is padded row (w0 + r - begin + margin_w); it lies in the padded
  // array when 0 <= w0 - begin + margin_w and w0 + pw <= end + margin_w, i.e. the centre
  // wire is inside the view. Likewise for the drift bins.
  const int pr0 = w0 - wires_.begin + margin_w_;
  const int pc0 = d0 + margin_d_;
  const int n_padded_rows = wires_.end - wires_.begin + 2 * margin_w_;
  if (pr0 >= 0 && pr0 + pw <= n_padded_rows && pc0 >= 0 && pc0 + pd <= stride_) {
    const float* src = padded_.data() + static_cast<std::size_t>(pr0) * stride_ + pc0;
    for (int r = 0; r < pw; ++r) {
      std::memcpy(out + static_cast<std::size_t>(r) * pd,
                  src + static_cast<std::size_t>(r) * stride_, pd * sizeof(float));
    }
    return;
  }
  // A centre far outside the view (not a hit of it): element by element.
  for (int r = 0; r < pw; ++r) {
    for (int c = 0; c < pd; ++c) out[r * pd + c] = at(w0 + r, d0 + c);
  }
}

void DownsampledView::FillPatches(std::span<const PatchCenter> centres, float* out) const {
  const std::size_t size = static_cast<std::size_t>(config_.patch_size());
  for (std::size_t i = 0; i < centres.size(); ++i) {
    FillPatch(centres[i].wire, centres[i].tick, out + i * size);
  }
}

}  // namespace larserve::reco
