#pragma once
// The dense wire x tick image of one plane, built from the regions of interest of a
// sim::PlaneData (LArSoft's recob::Wire: signal inside ROIs, zero outside), and the wire ranges
// that LArSoft would treat as separate images.
//
// Everything that comes from a file is validated here (ValidatePlane) before the reco algorithms
// index into it, so they can trust ROI and truth bounds.
#include <cstdint>
#include <span>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/sim/event.h"

namespace larserve::reco {

// Checks that a plane is internally consistent: plane index 0-2, plausible size, finite
// non-negative noise, ROI arrays of equal length with every ROI inside the plane and the signal
// array, ROIs of a channel in increasing, non-overlapping tick order, finite samples. The
// message names the plane and the first offending ROI.
Status ValidatePlane(const sim::PlaneData& plane);

// Half-open range of wires (channels of a plane).
struct WireRange {
  int begin = 0;
  int end = 0;
  bool contains(int wire) const { return wire >= begin && wire < end; }
};

// The views LArSoft's DataProviderAlg makes one image of: one per TPC and plane. The two faces
// of an APA are two TPCs. Our W channels 0 .. n/2-1 and n/2 .. n-1 are the collection wires of
// face 0 and face 1 (docs/formats.md), so W is two views; U and V channels wrap around both
// faces (one channel sees both drift volumes, as raw data before disambiguation), so each is
// one view. A patch never mixes wires of two views: outside its view it is padded.
std::vector<WireRange> PlaneViews(int plane, int n_channels);

// Row-major image: at(wire, tick) = data()[wire * n_ticks + tick]. Immutable after Create.
class PlaneImage {
 public:
  // Validates the plane (ValidatePlane) and fills the image from its ROIs.
  static StatusOr<PlaneImage> Create(const sim::PlaneData& plane);

  int plane() const { return plane_; }
  int n_wires() const { return n_wires_; }
  int n_ticks() const { return n_ticks_; }
  float at(int wire, int tick) const {
    return data_[static_cast<std::size_t>(wire) * n_ticks_ + tick];
  }
  std::span<const float> wire(int w) const {
    return {data_.data() + static_cast<std::size_t>(w) * n_ticks_,
            static_cast<std::size_t>(n_ticks_)};
  }
  std::span<const float> data() const { return data_; }

 private:
  PlaneImage() = default;
  int plane_ = 0;
  int n_wires_ = 0;
  int n_ticks_ = 0;
  std::vector<float> data_;
};

}  // namespace larserve::reco
