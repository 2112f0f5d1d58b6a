#pragma once
// ProtoDUNE-SP-style TPC geometry: APAs with U, V (wrapped, +-35.7 deg) and W (vertical)
// wire planes, each APA with a drift volume on both faces.
//
// Coordinates (cm): x is the drift coordinate, y vertical (0 = bottom of the active volume),
// z along the beam. APA a sits in row r (x = row centre), column c (z in [c W, (c+1) W)).
// Face 0 is the drift volume at x < row centre, face 1 at x > row centre.
//
// Channels: U and V wires wrap around the two vertical edges of the APA frame, so one channel
// has wire segments on both faces; the unrolled frame coordinate s runs along the front face
// (s = z_local) and back along the rear face (s = 2W - z_local). W wires do not wrap: channel
// = face * wires_per_face + wire. Immutable after construction; safe to share between threads.
#include <array>
#include <optional>
#include <string_view>

#include "larserve/core/status.h"
#include "larserve/sim/config.h"

namespace larserve::sim {

inline constexpr int kNumPlanes = 3;
enum Plane : int { kPlaneU = 0, kPlaneV = 1, kPlaneW = 2 };
std::string_view PlaneName(int plane);  // "U", "V", "W"

struct TpcPoint {
  int apa = -1;
  int face = 0;
  double drift_cm = 0;    // distance from the point to the APA's first (U) wire plane
  double y_cm = 0;        // height in the APA
  double z_local_cm = 0;  // along the APA width, [0, W)
};

struct Box {
  double lo[3];
  double hi[3];
  bool Contains(double x, double y, double z) const {
    return x >= lo[0] && x < hi[0] && y >= lo[1] && y < hi[1] && z >= lo[2] && z < hi[2];
  }
};

class Geometry {
 public:
  static StatusOr<Geometry> Create(const DetectorConfig& config);

  int num_apas() const { return num_apas_; }
  int num_rows() const { return rows_; }
  int num_cols() const { return cols_; }
  int num_channels(int plane) const { return channels_[plane]; }
  int channels_per_apa() const { return channels_[0] + channels_[1] + channels_[2]; }
  double apa_center_x(int apa) const;
  double apa_z0(int apa) const;
  const Box& active_box() const { return active_; }
  const DetectorConfig& config() const { return config_; }

  // Where a point is, if inside the active volume.
  std::optional<TpcPoint> Locate(double x, double y, double z) const;

  // Continuous channel coordinate of a point on a plane: channel i covers [i, i+1). For U/V the
  // result is in [0, channels) and wraps; the caller handles the wrap for spreads.
  double ChannelCoordinate(int plane, int face, double y_cm, double z_local_cm) const;
  // Wire pitch in cm (perpendicular distance between neighbouring wires) of a plane.
  double PitchCm(int plane) const { return config_.wire_pitch_mm[plane] / 10.0; }

 private:
  DetectorConfig config_;
  int num_apas_ = 1, rows_ = 1, cols_ = 1;
  std::array<int, 3> channels_{};
  std::array<double, 2> tan_angle_{};  // U, V
  double induction_spacing_cm_ = 0;    // along the unrolled frame (z)
  Box active_{};
};

}  // namespace larserve::sim
