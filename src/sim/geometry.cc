#include "larserve/sim/geometry.h"

#include <cmath>
#include <numbers>
#include <string>

namespace larserve::sim {

std::string_view PlaneName(int plane) {
  switch (plane) {
    case kPlaneU:
      return "U";
    case kPlaneV:
      return "V";
    case kPlaneW:
      return "W";
  }
  return "?";
}

StatusOr<Geometry> Geometry::Create(const DetectorConfig& config) {
  Geometry g;
  g.config_ = config;
  g.num_apas_ = config.apas;
  g.rows_ = config.apas <= 3 ? 1 : 2;
  if (config.apas % g.rows_ != 0) {
    return InvalidArgument("detector.apas = " + std::to_string(config.apas) +
                           " cannot be arranged in two equal rows");
  }
  g.cols_ = config.apas / g.rows_;
  g.channels_ = {config.induction_channels, config.induction_channels,
                 2 * config.collection_wires_per_face};
  const double w = config.apa_width_cm;
  g.induction_spacing_cm_ = 2.0 * w / config.induction_channels;
  for (int p = 0; p < 2; ++p) {
    const double theta = config.wire_angle_deg[p] * std::numbers::pi / 180.0;
    g.tan_angle_[p] = std::tan(theta);
    // Wrapped wires: the perpendicular pitch follows from the channel count and the angle.
    const double pitch_cm = g.induction_spacing_cm_ * std::cos(theta);
    const double want = config.wire_pitch_mm[p] / 10.0;
    if (std::fabs(pitch_cm - want) > 0.02 * want) {
      return InvalidArgument("detector: " + std::to_string(config.induction_channels) +
                             " wrapped channels over 2 x " + std::to_string(w) + " cm at " +
                             std::to_string(config.wire_angle_deg[p]) + " deg give a pitch of " +
                             std::to_string(pitch_cm * 10) + " mm, not the configured " +
                             std::to_string(config.wire_pitch_mm[p]) + " mm");
    }
  }
  const double l = config.drift_length_cm;
  g.active_.lo[0] = g.apa_center_x(0) - l;
  g.active_.hi[0] = g.apa_center_x(g.num_apas_ - 1) + l;
  g.active_.lo[1] = 0;
  g.active_.hi[1] = config.apa_height_cm;
  g.active_.lo[2] = 0;
  g.active_.hi[2] = g.cols_ * w;
  return g;
}

double Geometry::apa_center_x(int apa) const {
  if (rows_ == 1) return 0.0;
  const int row = apa / cols_;
  // Two rows share the central cathode at x = 0.
  return row == 0 ? -config_.drift_length_cm : config_.drift_length_cm;
}

double Geometry::apa_z0(int apa) const { return (apa % cols_) * config_.apa_width_cm; }

std::optional<TpcPoint> Geometry::Locate(double x, double y, double z) const {
  if (!active_.Contains(x, y, z)) return std::nullopt;
  const double w = config_.apa_width_cm;
  int col = static_cast<int>(z / w);
  if (col >= cols_) col = cols_ - 1;
  const int row = (rows_ == 1 || x < 0) ? 0 : 1;
  const int apa = row * cols_ + col;
  const double xc = apa_center_x(apa);
  TpcPoint p;
  p.apa = apa;
  p.face = x < xc ? 0 : 1;
  p.drift_cm = std::fabs(x - xc);
  if (p.drift_cm > config_.drift_length_cm) return std::nullopt;
  p.y_cm = y;
  p.z_local_cm = z - col * w;
  return p;
}

double Geometry::ChannelCoordinate(int plane, int face, double y_cm, double z_local_cm) const {
  const double w = config_.apa_width_cm;
  if (plane == kPlaneW) {
    return face * config_.collection_wires_per_face + z_local_cm / PitchCm(kPlaneW);
  }
  // Unrolled frame coordinate, then follow the wire up to the head (top) of the APA.
  const double s = face == 0 ? z_local_cm : 2.0 * w - z_local_cm;
  double s0 = s + (config_.apa_height_cm - y_cm) * tan_angle_[plane];
  const double period = 2.0 * w;
  s0 = std::fmod(s0, period);
  if (s0 < 0) s0 += period;
  double c = s0 / induction_spacing_cm_;
  if (c >= channels_[plane]) c -= channels_[plane];
  return c;
}

}  // namespace larserve::sim
