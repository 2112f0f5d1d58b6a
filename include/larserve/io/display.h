#pragma once
// Event display: a wire-vs-tick picture of one plane, optionally coloured by truth category.
#include <cstdint>
#include <string>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/sim/event.h"

namespace larserve::io {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel, top row first
};

// Writes an 8-bit RGB PNG. Errors name the path.
Status WritePng(const std::string& path, const Image& image);

struct DisplayOptions {
  bool truth = false;   // colour by truth category instead of a charge colour scale
  int channel_lo = -1;  // window (inclusive lo, exclusive hi); -1 = whole plane
  int channel_hi = -1;
  int tick_lo = -1;
  int tick_hi = -1;
  int tick_downsample = 0;  // ticks per image row; 0 = choose so the image is <= ~1500 rows
  int scale = 0;            // image pixels per channel; 0 = choose (>= 1)
  float adc_max = 30.0f;    // top of the colour scale (PointIdAlg's AdcMax)
  std::string title;        // drawn in the top-left corner
};

// Renders one plane. Time runs downwards, channels left to right. With truth, each pixel takes
// the colour of its dominant particle's category (track blue, shower orange, Michel green,
// delta ray cyan) with brightness from the signal; pixels without truth charge are grey. A
// legend is drawn. Fails (InvalidArgument) on a window outside the plane.
StatusOr<Image> RenderPlane(const sim::PlaneData& plane,
                            const std::vector<sim::TruthParticle>& particles,
                            const DisplayOptions& options);

}  // namespace larserve::io
