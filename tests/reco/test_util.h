#pragma once
// Hand-made planes for the reco tests.
#include <cmath>
#include <vector>

#include "larserve/sim/event.h"

namespace larserve::reco::testing {

// An empty plane (no ROI, no truth).
inline sim::PlaneData MakePlane(int plane, int n_channels, int n_ticks, float noise_rms = 0.5f) {
  sim::PlaneData p;
  p.apa = 0;
  p.plane = plane;
  p.n_channels = n_channels;
  p.n_ticks = n_ticks;
  p.noise_rms_adc = noise_rms;
  return p;
}

// Appends an ROI of `values` starting at `start` on `channel` (ROIs must be added in
// (channel, tick) order).
inline void AddRoi(sim::PlaneData* p, int channel, int start, const std::vector<float>& values) {
  p->roi_channel.push_back(channel);
  p->roi_start.push_back(start);
  p->roi_length.push_back(static_cast<int32_t>(values.size()));
  p->roi_offset.push_back(static_cast<int64_t>(p->signal.size()));
  p->signal.insert(p->signal.end(), values.begin(), values.end());
}

struct Peak {
  double amplitude, mean, sigma;
};

// Sum of Gaussians sampled at ticks start .. start + length - 1.
inline std::vector<float> Gaussians(int start, int length, const std::vector<Peak>& peaks) {
  std::vector<float> v(length, 0.0f);
  for (int i = 0; i < length; ++i) {
    double s = 0;
    for (const Peak& p : peaks) {
      const double d = (start + i - p.mean) / p.sigma;
      s += p.amplitude * std::exp(-0.5 * d * d);
    }
    v[i] = static_cast<float>(s);
  }
  return v;
}

inline void AddTruth(sim::PlaneData* p, int channel, int tick, int32_t id, float charge) {
  p->truth_channel.push_back(static_cast<uint16_t>(channel));
  p->truth_tick.push_back(static_cast<uint16_t>(tick));
  p->truth_id.push_back(id);
  p->truth_charge.push_back(charge);
}

}  // namespace larserve::reco::testing
