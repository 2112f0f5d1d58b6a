// `larserve sim`: simulate events and write them to an HDF5 events file.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "larserve/core/thread_pool.h"
#include "larserve/core/timer.h"
#include "larserve/io/event_file.h"
#include "larserve/sim/simulator.h"

namespace larserve::apps {
namespace {

struct SimOptions {
  int64_t events = 1;
  uint64_t seed = 1;
  int apas = 0;  // 0 = from config (default 1)
  std::string config_path;
  std::string output;
  bool json = false;
  int threads = 1;
  int compression = 1;
  bool print_config = false;
  bool no_cosmics = false;
  bool no_beam = false;
};

int RunSim(const SimOptions& o) {
  sim::SimConfig config;
  if (!o.config_path.empty()) {
    auto loaded = sim::LoadSimConfig(o.config_path);
    if (!loaded.ok()) return Fail("sim", loaded.status().message());
    config = *loaded;
  }
  if (o.apas > 0) config.detector.apas = o.apas;
  if (o.no_cosmics) config.cosmics.enabled = false;
  if (o.no_beam) config.beam.enabled = false;
  if (o.print_config) {
    if (Status s = config.Validate(); !s.ok()) return Fail("sim", s.message());
    std::printf("%s\n", config.ToJson().c_str());
    return 0;
  }
  if (o.output.empty()) return Fail("sim", "no output file: give -o events.h5");
  auto simulator = sim::Simulator::Create(config);
  if (!simulator.ok()) return Fail("sim", simulator.status().message());
  const sim::Simulator& s = **simulator;
  io::WriterOptions wopt;
  wopt.compression_level = o.compression;
  auto writer = io::EventFileWriter::Create(o.output, config, s.geometry(), o.seed, wopt);
  if (!writer.ok()) return Fail("sim", writer.status().message());

  const bool progress = !o.json && isatty(STDERR_FILENO);
  ThreadPool pool(o.threads);
  Timer timer;
  std::array<int64_t, sim::kNumCategories> by_category{};
  std::map<std::string, int64_t> by_process;
  int64_t cosmics = 0, beam = 0, particles = 0, roi_samples = 0, truth_pixels = 0, deposits = 0;
  double deposited = 0, electrons = 0;
  // Events are simulated in batches of `threads`, each with the pool for its own inner
  // parallelism, and written in order: output does not depend on the thread count.
  const int64_t batch = std::max(1, o.threads);
  for (int64_t first = 0; first < o.events; first += batch) {
    const int64_t n = std::min(batch, o.events - first);
    std::vector<sim::SimEvent> done(n);
    pool.ParallelFor(0, n, [&](std::size_t k) {
      done[k] = s.Simulate(o.seed, first + static_cast<int64_t>(k), &pool);
    });
    for (auto& ev : done) {
      if (Status st = (*writer)->Write(ev); !st.ok()) return Fail("sim", st.message());
      cosmics += ev.n_cosmics;
      beam += ev.n_beam;
      particles += static_cast<int64_t>(ev.particles.size());
      deposits += ev.n_deposits;
      deposited += ev.deposited_mev;
      electrons += ev.electrons_at_wires;
      for (const auto& p : ev.particles) {
        ++by_category[static_cast<int>(p.category)];
        ++by_process[std::string(sim::ProcessName(p.process))];
      }
      for (const auto& pd : ev.planes) {
        roi_samples += static_cast<int64_t>(pd.signal.size());
        truth_pixels += static_cast<int64_t>(pd.truth_id.size());
      }
      ev = sim::SimEvent();
    }
    if (progress) {
      const int64_t finished = first + n;
      const double t = timer.Seconds();
      const double rate = finished / std::max(t, 1e-9);
      std::fprintf(stderr, "\r[larserve sim] %lld/%lld events  %.2f events/s  %.0f s left   ",
                   static_cast<long long>(finished), static_cast<long long>(o.events), rate,
                   (o.events - finished) / std::max(rate, 1e-9));
      std::fflush(stderr);
    }
  }
  if (Status st = (*writer)->Close(); !st.ok()) return Fail("sim", st.message());
  const double seconds = timer.Seconds();
  if (progress) std::fprintf(stderr, "\n");
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(o.output, ec);
  nlohmann::json j;
  j["events"] = o.events;
  j["seed"] = o.seed;
  j["apas"] = s.geometry().num_apas();
  j["threads"] = o.threads;
  j["output"] = o.output;
  j["file_bytes"] = ec ? 0 : static_cast<int64_t>(bytes);
  j["primaries"] = {{"cosmic_muons", cosmics}, {"beam", beam}};
  j["particles"] = particles;
  nlohmann::json cats;
  for (int c = 1; c < sim::kNumCategories; ++c) {
    cats[std::string(sim::CategoryName(static_cast<sim::Category>(c)))] = by_category[c];
  }
  j["particles_by_category"] = cats;
  j["particles_by_process"] = by_process;
  j["deposits"] = deposits;
  j["deposited_energy_gev"] = deposited / 1000.0;
  j["electrons_at_wires"] = electrons;
  j["roi_samples"] = roi_samples;
  j["truth_pixels"] = truth_pixels;
  j["seconds"] = seconds;
  j["seconds_per_event"] = seconds / std::max<int64_t>(1, o.events);
  j["peak_rss_mb"] = PeakRssBytes() / 1048576.0;
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("larserve sim: %lld events (seed %llu, %d APA%s) -> %s (%.1f MB)\n",
                static_cast<long long>(o.events), static_cast<unsigned long long>(o.seed),
                s.geometry().num_apas(), s.geometry().num_apas() > 1 ? "s" : "", o.output.c_str(),
                j["file_bytes"].get<int64_t>() / 1e6);
    std::printf("  primaries: %lld cosmic muons, %lld beam particles\n",
                static_cast<long long>(cosmics), static_cast<long long>(beam));
    std::printf("  particles: %lld (track %lld, shower %lld, michel %lld, delta ray %lld)\n",
                static_cast<long long>(particles), static_cast<long long>(by_category[1]),
                static_cast<long long>(by_category[2]), static_cast<long long>(by_category[3]),
                static_cast<long long>(by_category[4]));
    std::printf(
        "  deposited %.2f GeV, %.3g electrons at the wires; %lld ROI samples, %lld truth pixels\n",
        deposited / 1000.0, electrons, static_cast<long long>(roi_samples),
        static_cast<long long>(truth_pixels));
    std::printf("  %.2f s (%.2f s/event, %d thread%s), peak memory %.0f MB\n", seconds,
                seconds / std::max<int64_t>(1, o.events), o.threads, o.threads > 1 ? "s" : "",
                PeakRssBytes() / 1048576.0);
  }
  return 0;
}

}  // namespace

void RegisterSim(CLI::App& app, RunFn* run) {
  auto opts = std::make_shared<SimOptions>();
  CLI::App* cmd = app.add_subcommand("sim",
                                     "Simulate ProtoDUNE-SP-like LArTPC events (cosmic muons, beam "
                                     "particles) with per-pixel truth "
                                     "and write them to an HDF5 events file (docs/formats.md). The "
                                     "same seed gives identical files "
                                     "whatever the thread count.");
  cmd->add_option("--events,-n", opts->events, "number of events")
      ->check(CLI::Range(int64_t{1}, int64_t{10000000}));
  cmd->add_option("--seed,-s", opts->seed, "run seed (event i uses a seed derived from it)");
  cmd->add_option("--apas", opts->apas,
                  "number of APAs (1-3 in a row, 4-12 even in two rows; ProtoDUNE-SP: 6). "
                  "Overrides the config")
      ->check(CLI::Range(1, 12));
  cmd->add_option("--config", opts->config_path,
                  "JSON file overriding configuration values (see --print-config for all keys)")
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", opts->output, "output events file (.h5)");
  cmd->add_flag("--json", opts->json, "print the summary as JSON (no progress line)");
  cmd->add_option("--threads,-t", opts->threads,
                  "worker threads (events, primaries and planes in parallel)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--compression", opts->compression, "HDF5 deflate level 0-9 (0 = none)")
      ->check(CLI::Range(0, 9));
  cmd->add_flag("--no-cosmics", opts->no_cosmics, "disable cosmic muons");
  cmd->add_flag("--no-beam", opts->no_beam, "disable the beam");
  cmd->add_flag("--print-config", opts->print_config,
                "print the complete configuration as JSON and exit");
  cmd->callback([opts, run] { *run = [opts] { return RunSim(*opts); }; });
}

}  // namespace larserve::apps
