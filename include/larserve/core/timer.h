#pragma once
#include <chrono>
#include <cstdint>

namespace larserve {

// Monotonic stopwatch.
class Timer {
 public:
  Timer() : start_(Clock::now()) {}
  void Reset() { start_ = Clock::now(); }
  double Seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  int64_t Nanoseconds() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
  }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_;
};

// Peak resident set size of this process in bytes (0 if unknown).
int64_t PeakRssBytes();

}  // namespace larserve
