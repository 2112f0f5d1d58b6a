#include "larserve/core/rng.h"

#include <cmath>

namespace larserve {

int64_t Rng::Poisson(double mean) {
  if (!(mean > 0)) return 0;
  if (mean < 30) {
    const double limit = std::exp(-mean);
    int64_t k = 0;
    double p = Uniform();
    while (p > limit) {
      ++k;
      p *= Uniform();
    }
    return k;
  }
  // PTRS: transformed rejection with squeeze (W. Hormann, 1993).
  const double slam = std::sqrt(mean);
  const double loglam = std::log(mean);
  const double b = 0.931 + 2.53 * slam;
  const double a = -0.059 + 0.02483 * b;
  const double invalpha = 1.1239 + 1.1328 / (b - 3.4);
  const double vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const double u = Uniform() - 0.5;
    const double v = Uniform();
    const double us = 0.5 - std::fabs(u);
    const double k = std::floor((2 * a / us + b) * u + mean + 0.43);
    if (us >= 0.07 && v <= vr) return static_cast<int64_t>(k);
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (std::log(v) + std::log(invalpha) - std::log(a / (us * us) + b) <=
        -mean + k * loglam - std::lgamma(k + 1)) {
      return static_cast<int64_t>(k);
    }
  }
}

void Rng::FillNormal(float* out, std::size_t n) {
  std::size_t i = 0;
  for (; i + 1 < n; i += 2) {
    const float r = std::sqrt(-2.0f * std::log(static_cast<float>(UniformPositive())));
    const float phi = static_cast<float>(2.0 * std::numbers::pi) * static_cast<float>(Uniform());
    out[i] = r * std::cos(phi);
    out[i + 1] = r * std::sin(phi);
  }
  if (i < n) out[i] = static_cast<float>(Normal());
}

}  // namespace larserve
