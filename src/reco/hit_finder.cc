#include "larserve/reco/hit_finder.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "larserve/reco/plane_image.h"

namespace larserve::reco {
namespace {

const double kSqrt2Pi = std::sqrt(2.0 * std::numbers::pi);

struct Gaussian {
  double amplitude, mean, sigma;
};

// Moments of the positive part of s[a, b): the Gaussian with the same area, mean and RMS.
Gaussian Moments(const float* s, int a, int b) {
  double w = 0, wx = 0, peak = 0;
  for (int i = a; i < b; ++i) {
    const double v = std::max(0.0f, s[i]);
    w += v;
    wx += v * i;
    peak = std::max(peak, static_cast<double>(s[i]));
  }
  if (w <= 0) return {peak, 0.5 * (a + b - 1), 0.5 * (b - a)};
  const double mean = wx / w;
  double var = 0;
  for (int i = a; i < b; ++i) {
    const double v = std::max(0.0f, s[i]);
    var += v * (i - mean) * (i - mean);
  }
  return {peak, mean, std::sqrt(var / w)};
}

// Solves the n x n system A x = b in place (Gaussian elimination, partial pivoting).
// Returns false if A is singular.
bool Solve(std::vector<double>& a, std::vector<double>& b, int n) {
  for (int c = 0; c < n; ++c) {
    int piv = c;
    for (int r = c + 1; r < n; ++r) {
      if (std::fabs(a[r * n + c]) > std::fabs(a[piv * n + c])) piv = r;
    }
    if (std::fabs(a[piv * n + c]) < 1e-300) return false;
    if (piv != c) {
      for (int k = 0; k < n; ++k) std::swap(a[c * n + k], a[piv * n + k]);
      std::swap(b[c], b[piv]);
    }
    for (int r = c + 1; r < n; ++r) {
      const double f = a[r * n + c] / a[c * n + c];
      if (f == 0) continue;
      for (int k = c; k < n; ++k) a[r * n + k] -= f * a[c * n + k];
      b[r] -= f * b[c];
    }
  }
  for (int c = n - 1; c >= 0; --c) {
    double v = b[c];
    for (int k = c + 1; k < n; ++k) v -= a[c * n + k] * b[k];
    b[c] = v / a[c * n + c];
  }
  return true;
}

double SumSquares(const float* s, int lo, int hi, const std::vector<Gaussian>& g) {
  double chi2 = 0;
  for (int i = lo; i < hi; ++i) {
    double f = 0;
    for (const Gaussian& k : g) {
      const double d = (i - k.mean) / k.sigma;
      f += k.amplitude * std::exp(-0.5 * d * d);
    }
    const double r = s[i] - f;
    chi2 += r * r;
  }
  return chi2;
}

// Levenberg-Marquardt fit of a sum of Gaussians to s[lo, hi). Returns the sum of squared
// residuals of the result (starting values in *g are refined in place).
double FitGaussians(const float* s, int lo, int hi, std::vector<Gaussian>* g, int max_iterations,
                    double min_sigma) {
  const int k = static_cast<int>(g->size());
  const int np = 3 * k;
  std::vector<double> jac(np), h(np * np), grad(np), step(np);
  double chi2 = SumSquares(s, lo, hi, *g);
  double lambda = 1e-3;
  for (int iter = 0; iter < max_iterations; ++iter) {
    std::fill(h.begin(), h.end(), 0.0);
    std::fill(grad.begin(), grad.end(), 0.0);
    for (int i = lo; i < hi; ++i) {
      double f = 0;
      for (int j = 0; j < k; ++j) {
        const Gaussian& q = (*g)[j];
        const double d = i - q.mean;
        const double e = std::exp(-0.5 * d * d / (q.sigma * q.sigma));
        f += q.amplitude * e;
        jac[3 * j] = e;
        jac[3 * j + 1] = q.amplitude * e * d / (q.sigma * q.sigma);
        jac[3 * j + 2] = q.amplitude * e * d * d / (q.sigma * q.sigma * q.sigma);
      }
      const double r = s[i] - f;
      for (int a = 0; a < np; ++a) {
        grad[a] += jac[a] * r;
        for (int b = a; b < np; ++b) h[a * np + b] += jac[a] * jac[b];
      }
    }
    for (int a = 0; a < np; ++a) {
      for (int b = 0; b < a; ++b) h[a * np + b] = h[b * np + a];
    }
    bool improved = false;
    while (lambda < 1e10) {
      std::vector<double> m = h;
      for (int a = 0; a < np; ++a) m[a * np + a] += lambda * std::max(h[a * np + a], 1e-12);
      step = grad;
      if (!Solve(m, step, np)) {
        lambda *= 10;
        continue;
      }
      std::vector<Gaussian> trial = *g;
      bool valid = true;
      for (int j = 0; j < k; ++j) {
        trial[j].amplitude += step[3 * j];
        trial[j].mean += step[3 * j + 1];
        trial[j].sigma += step[3 * j + 2];
        if (!(trial[j].amplitude > 0) || !(trial[j].sigma >= min_sigma)) valid = false;
      }
      const double trial_chi2 = valid ? SumSquares(s, lo, hi, trial) : chi2;
      if (valid && trial_chi2 < chi2) {
        const double gain = chi2 - trial_chi2;
        *g = trial;
        chi2 = trial_chi2;
        lambda = std::max(lambda * 0.1, 1e-9);
        improved = true;
        if (gain < 1e-7 * (chi2 + 1e-12)) return chi2;  // converged
        break;
      }
      lambda *= 10;
    }
    if (!improved) break;  // no step lowers chi2: at the minimum (or stuck)
  }
  return chi2;
}

// Three-point log-parabola estimate of the Gaussian through s[m-1], s[m], s[m+1] (Caruana's
// method); false if the three samples are not a positive, strictly concave-in-log peak.
bool LogParabola(const float* s, int m, Gaussian* out) {
  if (!(s[m - 1] > 0 && s[m] > 0 && s[m + 1] > 0)) return false;
  const double l = std::log(s[m - 1]), c = std::log(s[m]), r = std::log(s[m + 1]);
  const double curvature = l + r - 2 * c;  // = -1 / sigma^2 for a Gaussian
  if (!(curvature < 0)) return false;
  const double delta = 0.5 * (l - r) / curvature;
  if (std::fabs(delta) > 1.0) return false;
  out->mean = m + delta;
  out->sigma = std::sqrt(-1.0 / curvature);
  out->amplitude = std::exp(c - 0.25 * (l - r) * delta);  // the vertex of the parabola
  return true;
}

class PlaneHitFinder {
 public:
  PlaneHitFinder(const sim::PlaneData& plane, const HitFinderConfig& config)
      : plane_(plane),
        config_(config),
        threshold_(HitThresholdAdc(plane, config)),
        floor_(config.edge_fraction * threshold_),
        noise_(plane.noise_rms_adc > 0 ? plane.noise_rms_adc : 1.0f) {}

  std::vector<Hit> Run() {
    for (std::size_t r = 0; r < plane_.roi_channel.size(); ++r) {
      Roi(plane_.roi_channel[r], plane_.roi_start[r], plane_.signal.data() + plane_.roi_offset[r],
          plane_.roi_length[r]);
    }
    std::stable_sort(hits_.begin(), hits_.end(), [](const Hit& a, const Hit& b) {
      return a.wire != b.wire ? a.wire < b.wire : a.peak_tick < b.peak_tick;
    });
    return std::move(hits_);
  }

 private:
  void Roi(int wire, int t0, const float* s, int n) {
    // Pulse trains: above-threshold runs extended down both slopes (while falling and above the
    // edge level), touching ones merged.
    int train_lo = -1, train_hi = -1;
    int i = 0;
    while (i < n) {
      if (s[i] <= threshold_) {
        ++i;
        continue;
      }
      int lo = i;
      while (i < n && s[i] > threshold_) ++i;
      int hi = i;
      while (lo > 0 && s[lo - 1] > floor_ && s[lo - 1] <= s[lo]) --lo;
      while (hi < n && s[hi] > floor_ && s[hi] <= s[hi - 1]) ++hi;
      if (train_lo >= 0 && lo <= train_hi) {
        train_hi = std::max(train_hi, hi);
      } else {
        if (train_lo >= 0) Train(wire, t0, s, train_lo, train_hi);
        train_lo = lo;
        train_hi = hi;
      }
      i = std::max(i, hi);
    }
    if (train_lo >= 0) Train(wire, t0, s, train_lo, train_hi);
  }

  int ArgMin(const float* s, int a, int b) const {
    return static_cast<int>(std::min_element(s + a, s + b) - s);
  }

  void Train(int wire, int t0, const float* s, int lo, int hi) {
    // Peaks: local maxima above threshold (the last sample of a flat top).
    std::vector<int> peaks;
    for (int i = lo; i < hi; ++i) {
      const bool rise = i == lo || s[i] >= s[i - 1];
      const bool fall = i == hi - 1 || s[i] > s[i + 1];
      if (s[i] > threshold_ && rise && fall) peaks.push_back(i);
    }
    if (peaks.empty()) return;  // cannot happen: the train holds a sample above threshold
    // Merge peaks not separated by a deep enough dip: drop the lower of the shallowest pair.
    const float prominence = config_.min_prominence_sigma * noise_;
    std::vector<int> dips;
    while (true) {
      dips.clear();
      int worst = -1;
      float worst_depth = prominence;
      for (std::size_t k = 0; k + 1 < peaks.size(); ++k) {
        const int d = ArgMin(s, peaks[k] + 1, peaks[k + 1]);
        dips.push_back(d);
        const float depth = std::min(s[peaks[k]], s[peaks[k + 1]]) - s[d];
        if (depth < worst_depth) {
          worst_depth = depth;
          worst = static_cast<int>(k);
        }
      }
      if (worst < 0) break;
      const int drop = s[peaks[worst]] < s[peaks[worst + 1]] ? worst : worst + 1;
      peaks.erase(peaks.begin() + drop);
    }
    const int k = static_cast<int>(peaks.size());
    // Segment j = [bounds[j], bounds[j + 1]); the dip sample starts the right-hand segment.
    std::vector<int> bounds{lo};
    bounds.insert(bounds.end(), dips.begin(), dips.end());
    bounds.push_back(hi);

    if (k <= config_.max_multi_hit) {
      std::vector<Gaussian> g(k);
      for (int j = 0; j < k; ++j) {
        const int m = peaks[j];
        if (m <= lo || m >= hi - 1 || !LogParabola(s, m, &g[j])) {
          g[j] = Moments(s, bounds[j], bounds[j + 1]);
          g[j].amplitude = s[m];
        }
        g[j].sigma = std::clamp<double>(g[j].sigma, config_.min_sigma_ticks,
                                        std::max<double>(config_.min_sigma_ticks, hi - lo));
      }
      const double chi2 =
          FitGaussians(s, lo, hi, &g, config_.max_fit_iterations, config_.min_sigma_ticks);
      const int ndf = std::max(1, hi - lo - 3 * k);
      const double chi2_ndf = chi2 / (static_cast<double>(noise_) * noise_) / ndf;
      bool good = std::isfinite(chi2_ndf) && chi2_ndf <= config_.max_chi2_ndf;
      for (int j = 0; j < k && good; ++j) {
        // A peak that wandered out of its segment (beyond a tick of slack) is a failed fit.
        good = g[j].amplitude > 0 && g[j].sigma >= config_.min_sigma_ticks &&
               g[j].sigma <= config_.max_sigma_ticks && g[j].mean >= bounds[j] - 1 &&
               g[j].mean <= bounds[j + 1];
      }
      if (good) {
        for (int j = 0; j < k; ++j) {
          Hit h;
          h.wire = wire;
          h.start_tick = t0 + bounds[j];
          h.end_tick = t0 + bounds[j + 1];
          // Keep the documented invariant peak_tick in [start, end) after the slack above (0.01
          // tick: a float still resolves it at tick 65535).
          const double mean = std::clamp<double>(g[j].mean, bounds[j], bounds[j + 1] - 1e-2);
          h.peak_tick = static_cast<float>(t0 + mean);
          h.rms_ticks = static_cast<float>(g[j].sigma);
          h.amplitude = static_cast<float>(g[j].amplitude);
          h.integral = static_cast<float>(g[j].amplitude * g[j].sigma * kSqrt2Pi);
          h.summed_adc = Sum(s, bounds[j], bounds[j + 1]);
          h.chi2_ndf = static_cast<float>(chi2_ndf);
          h.multiplicity = static_cast<int16_t>(k);
          h.local_index = static_cast<int16_t>(j);
          hits_.push_back(h);
        }
        return;
      }
    }
    LongPulse(wire, t0, s, lo, hi);
  }

  // GausHitFinder's long-pulse treatment: equal parts of about long_pulse_width ticks, each a
  // hit described by its moments and summed ADC.
  void LongPulse(int wire, int t0, const float* s, int lo, int hi) {
    const int len = hi - lo;
    const int parts = std::max(
        1, static_cast<int>(std::lround(static_cast<double>(len) / config_.long_pulse_width)));
    for (int j = 0; j < parts; ++j) {
      const int a = lo + static_cast<int>(static_cast<int64_t>(len) * j / parts);
      const int b = lo + static_cast<int>(static_cast<int64_t>(len) * (j + 1) / parts);
      const Gaussian m = Moments(s, a, b);
      Hit h;
      h.wire = wire;
      h.start_tick = t0 + a;
      h.end_tick = t0 + b;
      h.peak_tick = static_cast<float>(t0 + std::clamp<double>(m.mean, a, b - 1e-2));
      h.rms_ticks = static_cast<float>(m.sigma);
      h.amplitude = static_cast<float>(m.amplitude);
      h.summed_adc = Sum(s, a, b);
      h.integral = h.summed_adc;
      h.chi2_ndf = -1;
      h.multiplicity = static_cast<int16_t>(parts);
      h.local_index = static_cast<int16_t>(j);
      hits_.push_back(h);
    }
  }

  static float Sum(const float* s, int a, int b) {
    double sum = 0;
    for (int i = a; i < b; ++i) sum += s[i];
    return static_cast<float>(sum);
  }

  const sim::PlaneData& plane_;
  const HitFinderConfig& config_;
  const float threshold_;
  const float floor_;  // pulses extend down their slopes while above this
  const float noise_;  // noise sigma used for prominence and chi2 (1 ADC on a noiseless plane)
  std::vector<Hit> hits_;
};

}  // namespace

Status HitFinderConfig::Validate() const {
  for (int p = 0; p < 3; ++p) {
    if (!std::isfinite(threshold_sigma[p]) || threshold_sigma[p] <= 0) {
      return InvalidArgument("hit finder: threshold_sigma[" + std::to_string(p) +
                             "] must be finite and > 0");
    }
  }
  if (!std::isfinite(min_threshold_adc) || min_threshold_adc < 0) {
    return InvalidArgument("hit finder: min_threshold_adc must be finite and >= 0");
  }
  if (!(edge_fraction >= 0 && edge_fraction < 1)) {
    return InvalidArgument("hit finder: edge_fraction must be in [0, 1)");
  }
  if (!std::isfinite(min_prominence_sigma) || min_prominence_sigma < 0) {
    return InvalidArgument("hit finder: min_prominence_sigma must be finite and >= 0");
  }
  if (max_multi_hit < 1 || max_multi_hit > 20) {
    return InvalidArgument("hit finder: max_multi_hit must be 1 to 20");
  }
  if (long_pulse_width < 1) return InvalidArgument("hit finder: long_pulse_width must be >= 1");
  if (!(max_chi2_ndf > 0)) return InvalidArgument("hit finder: max_chi2_ndf must be > 0");
  if (!(min_sigma_ticks > 0) || !(max_sigma_ticks > min_sigma_ticks) ||
      !std::isfinite(max_sigma_ticks)) {
    return InvalidArgument("hit finder: need 0 < min_sigma_ticks < max_sigma_ticks");
  }
  if (max_fit_iterations < 0) return InvalidArgument("hit finder: max_fit_iterations must be >= 0");
  return Status::Ok();
}

float HitThresholdAdc(const sim::PlaneData& plane, const HitFinderConfig& config) {
  const int p = std::clamp(plane.plane, 0, 2);
  return std::max(config.min_threshold_adc, config.threshold_sigma[p] * plane.noise_rms_adc);
}

StatusOr<std::vector<Hit>> FindHits(const sim::PlaneData& plane, const HitFinderConfig& config) {
  RETURN_IF_ERROR(config.Validate());
  RETURN_IF_ERROR(ValidatePlane(plane));
  return PlaneHitFinder(plane, config).Run();
}

}  // namespace larserve::reco
