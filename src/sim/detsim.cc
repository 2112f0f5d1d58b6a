#include "larserve/sim/detsim.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "larserve/core/rng.h"

namespace larserve::sim {
namespace {

// Standard normal CDF from a table (step 1/64 sigma over +-8 sigma), linear interpolation.
class NormalCdfTable {
 public:
  NormalCdfTable() {
    for (int i = 0; i < kSize; ++i) {
      const double x = kMin + i * kStep;
      table_[i] = 0.5 * std::erfc(-x / std::sqrt(2.0));
    }
  }
  double operator()(double x) const {
    const double f = (x - kMin) / kStep;
    if (f <= 0) return 0.0;
    if (f >= kSize - 1) return 1.0;
    const int i = static_cast<int>(f);
    const double r = f - i;
    return table_[i] + r * (table_[i + 1] - table_[i]);
  }

 private:
  static constexpr double kMin = -8.0, kStep = 1.0 / 64.0;
  static constexpr int kSize = 16 * 64 + 1;
  std::array<double, kSize> table_;
};

const NormalCdfTable& Cdf() {
  static const NormalCdfTable table;
  return table;
}

// Fractions of a Gaussian (mean, sigma) falling in unit bins; first bin index in *first.
// Narrow distributions (sigma < 0.02 bins) go to one bin.
int GaussianBins(double mean, double sigma, int* first, float* weights, int max_bins) {
  if (sigma < 0.02) {
    *first = static_cast<int>(std::floor(mean));
    weights[0] = 1.0f;
    return 1;
  }
  const int lo = static_cast<int>(std::floor(mean - 3.5 * sigma));
  int hi = static_cast<int>(std::floor(mean + 3.5 * sigma));
  hi = std::min(hi, lo + max_bins - 1);
  const auto& cdf = Cdf();
  double prev = cdf((lo - mean) / sigma);
  double total = 0;
  for (int b = lo; b <= hi; ++b) {
    const double next = cdf((b + 1 - mean) / sigma);
    weights[b - lo] = static_cast<float>(next - prev);
    total += next - prev;
    prev = next;
  }
  // Renormalise the +-3.5 sigma window so that charge is conserved.
  const float inv = total > 0 ? static_cast<float>(1.0 / total) : 0.0f;
  for (int b = 0; b <= hi - lo; ++b) weights[b] *= inv;
  *first = lo;
  return hi - lo + 1;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LARSERVE_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LARSERVE_MULTIVERSION
#endif

// out[t] = sum_k h[k] in[t + k - K], in padded with K zeros on both sides.
LARSERVE_MULTIVERSION
void Convolve(const float* in_padded, int n, const float* h, int taps, float* out) {
  for (int t = 0; t < n; ++t) out[t] = 0.0f;
  for (int k = 0; k < taps; ++k) {
    const float w = h[k];
    const float* src = in_padded + k;
    for (int t = 0; t < n; ++t) out[t] += w * src[t];
  }
}

}  // namespace

DetectorResponse::DetectorResponse(const SimConfig& config, const Geometry& geometry)
    : config_(config), geometry_(&geometry) {
  const auto& r = config.readout;
  const double sigma_ticks = r.filter_sigma_us / config.detector.tick_us;
  const int half = static_cast<int>(std::ceil(4.0 * sigma_ticks));
  kernel_.resize(2 * half + 1);
  double sum = 0;
  for (int k = -half; k <= half; ++k) {
    const double v = std::exp(-0.5 * k * k / (sigma_ticks * sigma_ticks));
    kernel_[k + half] = static_cast<float>(v);
    sum += v;
  }
  for (auto& v : kernel_) v = static_cast<float>(v / sum);
  // ENC: RMS of filtered noise summed over a hit window of +-2.5 filter sigma.
  const int wh = static_cast<int>(std::ceil(2.5 * sigma_ticks));
  double var_sum = 0, h2 = 0;
  for (int j = -half - wh; j <= half + wh; ++j) {
    double s = 0;
    for (int i = -wh; i <= wh; ++i) {
      const int k = i - j;
      if (k >= -half && k <= half) s += kernel_[k + half];
    }
    var_sum += s * s;
  }
  for (float v : kernel_) h2 += static_cast<double>(v) * v;
  for (int p = 0; p < kNumPlanes; ++p) {
    white_sigma_e_[p] = r.noise_enc_electrons[p] / std::sqrt(var_sum);
    noise_tick_rms_e_[p] = white_sigma_e_[p] * std::sqrt(h2);
  }
  plane_offset_ticks_ =
      config.detector.plane_spacing_mm / config.argon.drift_speed_mm_us / config.detector.tick_us;
}

std::vector<std::vector<DriftedDeposit>> DetectorResponse::Drift(
    const std::vector<Deposit>& deposits, std::vector<TruthParticle>* particles) const {
  const auto& a = config_.argon;
  const auto& d = config_.detector;
  std::vector<std::vector<DriftedDeposit>> out(geometry_->num_apas());
  const double v_cm_us = a.drift_speed_mm_us / 10.0;
  const double lifetime_us = a.electron_lifetime_ms * 1000.0;
  for (const Deposit& dep : deposits) {
    const auto loc = geometry_->Locate(dep.x, dep.y, dep.z);
    if (!loc) continue;
    const double t_drift_us = loc->drift_cm / v_cm_us;
    const double t_drift_s = t_drift_us * 1e-6;
    const double q = dep.electrons * std::exp(-t_drift_us / lifetime_us);
    DriftedDeposit dd;
    dd.tick = static_cast<float>(d.trigger_tick + (dep.t_ns * 1e-3 + t_drift_us) / d.tick_us);
    const double sigma_l_cm = std::sqrt(2.0 * a.diffusion_long_cm2_s * t_drift_s);
    dd.sigma_tick = static_cast<float>(sigma_l_cm / v_cm_us / d.tick_us);
    dd.sigma_t_cm = static_cast<float>(std::sqrt(2.0 * a.diffusion_trans_cm2_s * t_drift_s));
    dd.y_cm = static_cast<float>(loc->y_cm);
    dd.z_local_cm = static_cast<float>(loc->z_local_cm);
    dd.charge = static_cast<float>(q);
    dd.truth_id = dep.truth_id;
    dd.face = static_cast<uint8_t>(loc->face);
    if (dep.truth_id >= 0 && dep.truth_id < static_cast<int32_t>(particles->size())) {
      (*particles)[dep.truth_id].edep_mev += dep.energy_mev;
      (*particles)[dep.truth_id].electrons += static_cast<float>(q);
    }
    out[loc->apa].push_back(dd);
  }
  return out;
}

PlaneData DetectorResponse::Digitize(int apa, int plane,
                                     const std::vector<DriftedDeposit>& deposits,
                                     uint64_t noise_seed) const {
  const auto& r = config_.readout;
  PlaneData out;
  out.apa = apa;
  out.plane = plane;
  const int nch = geometry_->num_channels(plane);
  const int nt = config_.detector.n_ticks;
  out.n_channels = nch;
  out.n_ticks = nt;
  out.noise_rms_adc = static_cast<float>(NoiseRmsAdc(plane));
  const std::size_t npix = static_cast<std::size_t>(nch) * nt;
  std::vector<float> charge(npix, 0.0f);  // all particles
  std::vector<float> part(npix, 0.0f);    // the current particle (scratch)
  std::vector<float> best_q(npix, 0.0f);
  std::vector<int32_t> best_id(npix, -1);
  std::vector<uint32_t> touched;
  touched.reserve(1 << 16);
  const double pitch = geometry_->PitchCm(plane);
  const double offset = plane_offset_ticks(plane);
  const int wpf = config_.detector.collection_wires_per_face;

  auto fold = [&](int32_t id) {
    for (uint32_t pix : touched) {
      const float q = part[pix];
      charge[pix] += q;
      if (q > best_q[pix]) {
        best_q[pix] = q;
        best_id[pix] = id;
      }
      part[pix] = 0.0f;
    }
    touched.clear();
  };

  constexpr int kMaxBins = 64;
  float wch[kMaxBins], wtk[kMaxBins];
  int32_t current = deposits.empty() ? -1 : deposits.front().truth_id;
  for (const DriftedDeposit& d : deposits) {
    if (d.truth_id != current) {
      fold(current);
      current = d.truth_id;
    }
    const double tick = d.tick + offset;
    if (tick < -10.0 * (d.sigma_tick + 1) || tick > nt + 10.0 * (d.sigma_tick + 1)) continue;
    const double c = geometry_->ChannelCoordinate(plane, d.face, d.y_cm, d.z_local_cm);
    int c0, t0;
    const int nc = GaussianBins(c, d.sigma_t_cm / pitch, &c0, wch, kMaxBins);
    const int ntk = GaussianBins(tick, d.sigma_tick, &t0, wtk, kMaxBins);
    for (int i = 0; i < nc; ++i) {
      int ch = c0 + i;
      if (plane == kPlaneW) {
        const int lo = d.face * wpf, hi = lo + wpf - 1;  // no charge crosses to the other face
        ch = std::clamp(ch, lo, hi);
      } else {
        ch %= nch;
        if (ch < 0) ch += nch;
      }
      const float qc = d.charge * wch[i];
      float* row = part.data() + static_cast<std::size_t>(ch) * nt;
      for (int k = 0; k < ntk; ++k) {
        const int tk = t0 + k;
        if (tk < 0 || tk >= nt) continue;
        const float q = qc * wtk[k];
        if (q <= 0.0f) continue;
        if (row[tk] == 0.0f)
          touched.push_back(static_cast<uint32_t>(ch * static_cast<std::size_t>(nt) + tk));
        row[tk] += q;
      }
    }
  }
  fold(current);
  part.clear();
  part.shrink_to_fit();
  best_q.clear();
  best_q.shrink_to_fit();

  // Truth pixels, in (channel, tick) order.
  const float tmin = static_cast<float>(std::max(r.truth_min_electrons, 1e-3));
  for (int ch = 0; ch < nch; ++ch) {
    const float* row = charge.data() + static_cast<std::size_t>(ch) * nt;
    const int32_t* ids = best_id.data() + static_cast<std::size_t>(ch) * nt;
    for (int t = 0; t < nt; ++t) {
      if (row[t] >= tmin) {
        out.truth_channel.push_back(static_cast<uint16_t>(ch));
        out.truth_tick.push_back(static_cast<uint16_t>(t));
        out.truth_id.push_back(ids[t]);
        out.truth_charge.push_back(row[t]);
      }
    }
  }
  best_id.clear();
  best_id.shrink_to_fit();

  // Signal: (charge + white noise) through the Gaussian filter, in ADC-equivalent units, then
  // regions of interest around threshold crossings.
  Rng rng(noise_seed);
  const int taps = static_cast<int>(kernel_.size());
  const int half = taps / 2;
  std::vector<float> padded(nt + 2 * half, 0.0f), noise(nt), filtered(nt);
  const float white = static_cast<float>(white_sigma_e_[plane]);
  const float to_adc = static_cast<float>(1.0 / r.electrons_per_adc);
  const float threshold = static_cast<float>(r.roi_threshold_sigma * NoiseRmsAdc(plane));
  const int pad = r.roi_pad_ticks;
  for (int ch = 0; ch < nch; ++ch) {
    const float* row = charge.data() + static_cast<std::size_t>(ch) * nt;
    if (r.noise) {
      rng.FillNormal(noise.data(), nt);
      for (int t = 0; t < nt; ++t) padded[half + t] = (row[t] + white * noise[t]) * to_adc;
    } else {
      for (int t = 0; t < nt; ++t) padded[half + t] = row[t] * to_adc;
    }
    Convolve(padded.data(), nt, kernel_.data(), taps, filtered.data());
    int t = 0;
    while (t < nt) {
      if (std::fabs(filtered[t]) <= threshold) {
        ++t;
        continue;
      }
      int start = std::max(0, t - pad);
      int end = t;  // exclusive end of the crossing run, extended while crossings stay close
      int last_cross = t;
      for (int u = t; u < nt && u <= last_cross + 2 * pad; ++u) {
        if (std::fabs(filtered[u]) > threshold) last_cross = u;
      }
      end = std::min(nt, last_cross + pad + 1);
      // Merge with the previous ROI of this channel if they touch.
      if (!out.roi_channel.empty() && out.roi_channel.back() == ch &&
          out.roi_start.back() + out.roi_length.back() >= start) {
        const int prev_start = out.roi_start.back();
        const int prev_end = prev_start + out.roi_length.back();
        for (int u = prev_end; u < end; ++u) out.signal.push_back(filtered[u]);
        out.roi_length.back() = end - prev_start;
      } else {
        out.roi_channel.push_back(ch);
        out.roi_start.push_back(start);
        out.roi_length.push_back(end - start);
        out.roi_offset.push_back(static_cast<int64_t>(out.signal.size()));
        out.signal.insert(out.signal.end(), filtered.begin() + start, filtered.begin() + end);
      }
      t = end;
    }
  }
  return out;
}

}  // namespace larserve::sim
