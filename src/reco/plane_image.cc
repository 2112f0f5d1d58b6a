#include "larserve/reco/plane_image.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "larserve/sim/geometry.h"

namespace larserve::reco {

Status ValidatePlane(const sim::PlaneData& p) {
  const std::string where =
      "APA " + std::to_string(p.apa) + " plane " + std::to_string(p.plane) + ": ";
  if (p.plane < 0 || p.plane >= sim::kNumPlanes) {
    return InvalidArgument(where + "plane index must be 0 (U), 1 (V) or 2 (W)");
  }
  // The truth format stores channel and tick as uint16.
  if (p.n_channels < 1 || p.n_channels > 65535 || p.n_ticks < 1 || p.n_ticks > 65535) {
    return InvalidArgument(where + "impossible size " + std::to_string(p.n_channels) + " x " +
                           std::to_string(p.n_ticks));
  }
  if (!std::isfinite(p.noise_rms_adc) || p.noise_rms_adc < 0) {
    return InvalidArgument(where + "noise_rms_adc must be finite and >= 0");
  }
  const std::size_t n = p.roi_channel.size();
  if (p.roi_start.size() != n || p.roi_length.size() != n || p.roi_offset.size() != n) {
    return InvalidArgument(where + "ROI arrays have different lengths");
  }
  int prev_channel = -1;
  int64_t prev_end = 0;
  for (std::size_t r = 0; r < n; ++r) {
    const int ch = p.roi_channel[r];
    const int64_t start = p.roi_start[r], len = p.roi_length[r], off = p.roi_offset[r];
    if (ch < 0 || ch >= p.n_channels || start < 0 || len < 0 || start + len > p.n_ticks ||
        off < 0 || off + len > static_cast<int64_t>(p.signal.size())) {
      return InvalidArgument(where + "ROI " + std::to_string(r) + " (channel " +
                             std::to_string(ch) + ", ticks " + std::to_string(start) + "+" +
                             std::to_string(len) + ", offset " + std::to_string(off) +
                             ") lies outside the plane or the signal array");
    }
    if (ch < prev_channel || (ch == prev_channel && start < prev_end)) {
      return InvalidArgument(where + "ROI " + std::to_string(r) +
                             " is out of (channel, tick) order or overlaps the previous one");
    }
    prev_channel = ch;
    prev_end = start + len;
    for (int64_t k = off; k < off + len; ++k) {
      if (!std::isfinite(p.signal[k])) {
        return InvalidArgument(where + "ROI " + std::to_string(r) + " holds a non-finite sample");
      }
    }
  }
  return Status::Ok();
}

std::vector<WireRange> PlaneViews(int plane, int n_channels) {
  if (plane == sim::kPlaneW && n_channels >= 2 && n_channels % 2 == 0) {
    return {{0, n_channels / 2}, {n_channels / 2, n_channels}};
  }
  return {{0, n_channels}};
}

StatusOr<PlaneImage> PlaneImage::Create(const sim::PlaneData& plane) {
  RETURN_IF_ERROR(ValidatePlane(plane));
  PlaneImage img;
  img.plane_ = plane.plane;
  img.n_wires_ = plane.n_channels;
  img.n_ticks_ = plane.n_ticks;
  img.data_.assign(static_cast<std::size_t>(plane.n_channels) * plane.n_ticks, 0.0f);
  for (std::size_t r = 0; r < plane.roi_channel.size(); ++r) {
    const float* src = plane.signal.data() + plane.roi_offset[r];
    float* dst = img.data_.data() + static_cast<std::size_t>(plane.roi_channel[r]) * img.n_ticks_ +
                 plane.roi_start[r];
    std::copy(src, src + plane.roi_length[r], dst);
  }
  return img;
}

}  // namespace larserve::reco
