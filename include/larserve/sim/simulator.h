#pragma once
// The event simulation: generators -> transport -> drift -> per-plane digitisation.
//
// Determinism: event `index` of a run with seed S depends only on (S, index, config): every
// random stream is derived from them (core/rng.h), so the result is bit-identical whatever the
// number of threads and whichever thread runs which part. Immutable after Create; Simulate may
// be called concurrently.
#include <memory>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/thread_pool.h"
#include "larserve/sim/config.h"
#include "larserve/sim/detsim.h"
#include "larserve/sim/event.h"
#include "larserve/sim/generator.h"
#include "larserve/sim/geometry.h"
#include "larserve/sim/transport.h"

namespace larserve::sim {

class Simulator {
 public:
  // Validates the configuration.
  static StatusOr<std::unique_ptr<Simulator>> Create(const SimConfig& config);

  // One event from the configured generators (cosmics and beam). pool may be null (serial).
  SimEvent Simulate(uint64_t run_seed, int64_t index, ThreadPool* pool) const;
  // One event from given primaries (a particle gun), with the same detector simulation.
  SimEvent SimulatePrimaries(uint64_t run_seed, int64_t index,
                             const std::vector<Primary>& primaries, ThreadPool* pool) const;

  const SimConfig& config() const { return config_; }
  const Geometry& geometry() const { return *geometry_; }
  const DetectorResponse& response() const { return *response_; }
  const CosmicGenerator& cosmics() const { return *cosmics_; }

 private:
  Simulator() = default;
  SimEvent Run(uint64_t event_seed, int64_t index, const std::vector<Primary>& primaries,
               ThreadPool* pool) const;

  SimConfig config_;
  std::unique_ptr<Geometry> geometry_;
  std::unique_ptr<Transporter> transporter_;
  std::unique_ptr<DetectorResponse> response_;
  std::unique_ptr<CosmicGenerator> cosmics_;
  std::unique_ptr<BeamGenerator> beam_;
};

// Per-event seed of event `index` in a run with seed `run_seed`.
uint64_t EventSeed(uint64_t run_seed, int64_t index);

}  // namespace larserve::sim
