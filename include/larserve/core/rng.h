#pragma once
// Deterministic random numbers. Every stream is derived from (seed, stream ids) with SplitMix64,
// so a component gets the same numbers whatever thread runs it and in whatever order.
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <numbers>

namespace larserve {

inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Mixes a seed with stream identifiers into a new, well-separated seed.
inline uint64_t DeriveSeed(uint64_t seed, std::initializer_list<uint64_t> ids) {
  uint64_t s = seed;
  uint64_t out = SplitMix64(s);
  for (uint64_t id : ids) {
    s = out ^ (id * 0xd1b54a32d192ed03ULL + 0x8cb92ba72f3d8dd7ULL);
    out = SplitMix64(s);
  }
  return out;
}

// xoshiro256++ (Blackman & Vigna): fast, 256-bit state, passes BigCrush.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t s = seed;
    for (auto& w : state_) w = SplitMix64(s);
  }
  uint64_t NextU64() {
    const uint64_t result = Rotl(state_[0] + state_[3], 23) + state_[0];
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1]: safe for log().
  double UniformPositive() { return static_cast<double>((NextU64() >> 11) + 1) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  double Exponential(double mean) { return -mean * std::log(UniformPositive()); }
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(UniformPositive()));
    const double phi = 2.0 * std::numbers::pi * Uniform();
    spare_ = r * std::sin(phi);
    has_spare_ = true;
    return r * std::cos(phi);
  }
  double Normal(double mean, double sigma) { return mean + sigma * Normal(); }
  // Poisson by inversion for small means, normal-corrected rejection (PTRS, Hormann 1993) above.
  int64_t Poisson(double mean);
  // Fills n floats with independent standard normals (Box-Muller in pairs).
  void FillNormal(float* out, std::size_t n);

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace larserve
