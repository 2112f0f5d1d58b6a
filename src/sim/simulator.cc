#include "larserve/sim/simulator.h"

#include <algorithm>

#include "larserve/core/rng.h"

namespace larserve::sim {
namespace {
enum StreamId : uint64_t { kGenerator = 1, kTransport = 2, kNoise = 3 };
}

uint64_t EventSeed(uint64_t run_seed, int64_t index) {
  return DeriveSeed(run_seed, {static_cast<uint64_t>(index)});
}

StatusOr<std::unique_ptr<Simulator>> Simulator::Create(const SimConfig& config) {
  RETURN_IF_ERROR(config.Validate());
  ASSIGN_OR_RETURN(Geometry geometry, Geometry::Create(config.detector));
  std::unique_ptr<Simulator> sim(new Simulator());
  sim->config_ = config;
  sim->geometry_ = std::make_unique<Geometry>(std::move(geometry));
  sim->transporter_ = std::make_unique<Transporter>(config, *sim->geometry_);
  sim->response_ = std::make_unique<DetectorResponse>(config, *sim->geometry_);
  sim->cosmics_ = std::make_unique<CosmicGenerator>(config, *sim->geometry_);
  sim->beam_ = std::make_unique<BeamGenerator>(config);
  return sim;
}

SimEvent Simulator::Simulate(uint64_t run_seed, int64_t index, ThreadPool* pool) const {
  const uint64_t seed = EventSeed(run_seed, index);
  Rng rng(DeriveSeed(seed, {kGenerator}));
  std::vector<Primary> primaries;
  beam_->Generate(rng, &primaries);
  const int n_beam = static_cast<int>(primaries.size());
  cosmics_->Generate(rng, &primaries);
  SimEvent ev = Run(seed, index, primaries, pool);
  ev.n_beam = n_beam;
  ev.n_cosmics = static_cast<int>(primaries.size()) - n_beam;
  return ev;
}

SimEvent Simulator::SimulatePrimaries(uint64_t run_seed, int64_t index,
                                      const std::vector<Primary>& primaries,
                                      ThreadPool* pool) const {
  SimEvent ev = Run(EventSeed(run_seed, index), index, primaries, pool);
  ev.n_beam = static_cast<int>(primaries.size());
  return ev;
}

SimEvent Simulator::Run(uint64_t seed, int64_t index, const std::vector<Primary>& primaries,
                        ThreadPool* pool) const {
  SimEvent ev;
  ev.index = index;
  ev.seed = seed;
  // Transport each primary with its own random stream, then concatenate in primary order.
  struct PrimaryOutput {
    std::vector<TruthParticle> particles;
    std::vector<Deposit> deposits;
  };
  std::vector<PrimaryOutput> outputs(primaries.size());
  auto transport = [&](std::size_t i) {
    Rng rng(DeriveSeed(seed, {kTransport, static_cast<uint64_t>(i)}));
    transporter_->Run(primaries[i], rng, &outputs[i].particles, &outputs[i].deposits);
  };
  if (pool) {
    pool->ParallelFor(0, primaries.size(), transport);
  } else {
    for (std::size_t i = 0; i < primaries.size(); ++i) transport(i);
  }
  std::size_t n_particles = 0, n_deposits = 0;
  for (const auto& o : outputs) {
    n_particles += o.particles.size();
    n_deposits += o.deposits.size();
  }
  ev.particles.reserve(n_particles);
  std::vector<Deposit> deposits;
  deposits.reserve(n_deposits);
  for (auto& o : outputs) {
    const int32_t offset = static_cast<int32_t>(ev.particles.size());
    for (auto& p : o.particles) {
      p.id += offset;
      if (p.parent >= 0) p.parent += offset;
      ev.particles.push_back(p);
    }
    for (auto& d : o.deposits) {
      d.truth_id += offset;
      deposits.push_back(d);
    }
    o = PrimaryOutput();
  }
  // Digitisation folds the charge of one particle at a time: group deposits by particle.
  std::stable_sort(deposits.begin(), deposits.end(),
                   [](const Deposit& a, const Deposit& b) { return a.truth_id < b.truth_id; });
  ev.n_deposits = static_cast<int64_t>(deposits.size());
  auto per_apa = response_->Drift(deposits, &ev.particles);
  deposits.clear();
  deposits.shrink_to_fit();
  for (const auto& p : ev.particles) {
    ev.deposited_mev += p.edep_mev;
    ev.electrons_at_wires += p.electrons;
  }
  const int n_planes = geometry_->num_apas() * kNumPlanes;
  ev.planes.resize(n_planes);
  auto digitize = [&](std::size_t k) {
    const int apa = static_cast<int>(k) / kNumPlanes;
    const int plane = static_cast<int>(k) % kNumPlanes;
    ev.planes[k] = response_->Digitize(
        apa, plane, per_apa[apa],
        DeriveSeed(seed, {kNoise, static_cast<uint64_t>(apa), static_cast<uint64_t>(plane)}));
  };
  if (pool) {
    pool->ParallelFor(0, n_planes, digitize);
  } else {
    for (int k = 0; k < n_planes; ++k) digitize(k);
  }
  return ev;
}

}  // namespace larserve::sim
