// `larserve reco`: the EmTrackMichelId step of the reconstruction on simulated events: hits,
// patches, batched inference, per-hit scores to HDF5, per-stage timings and, when the events
// carry truth, hit-level efficiency and purity per category and plane.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.h"
#ifdef LARSERVE_HAVE_SERVE
#include "larserve/client/client.h"
#endif
#include "larserve/core/thread_pool.h"
#include "larserve/core/timer.h"
#include "larserve/io/event_file.h"
#include "larserve/io/patch_file.h"
#include "larserve/io/results_file.h"
#include "larserve/reco/event_reco.h"
#include "larserve/runtime/engine.h"

namespace larserve::apps {
namespace {

constexpr const char* kDefaultModel = "models/emtrkmichel/1/model.onnx";
// The production model's tensor names (FACTS.md section 5), which LArSoft's client expects.
constexpr const char* kInputName = "main_input";
constexpr const char* kClassOutput = "em_trk_none_netout/Softmax";
constexpr const char* kMichelOutput = "michel_netout/Sigmoid";

struct RecoArgs {
  std::string events;
  std::string output;
  std::string model = kDefaultModel;
  bool local = false;
  std::string servers;                     // HOST:PORT[,HOST:PORT...]: inference through them
  std::string model_name = "emtrkmichel";  // the model's name on the servers
  int64_t deadline_ms = 10000;
  int retries = 4;
  bool fallback = false;  // run locally (--model) when no server answers
  std::string compression = "none";
  int channels = 1;
  int in_flight = 4;  // batches of one event outstanding at once (server mode)
  std::string backend = "cpu";
  std::string precision = "fp32";
  int64_t batch = 256;
  int threads = 0;
  int64_t max_events = -1;
  float michel_threshold = 0.5f;
  std::string delta_rays = "track";
  bool json = false;
};

// Hit-level classification counts of one plane: for each class, hits truly of it, predicted
// as it, and both.
struct Counts {
  // 0 track, 1 em (shower incl. Michel), 2 none, 3 michel (score above the threshold)
  std::array<int64_t, 4> truth{}, predicted{}, both{};
  int64_t hits = 0;
};

// The 3-class target of a hit's truth (0 track, 1 em, 2 none): track -> track, shower and
// michel -> em, delta -> track or em by the chosen scheme (the size scheme by the delta ray's
// kinetic energy; reco::LabelOfTruth).
int TrueClass(const reco::HitTruth& truth, io::DeltaRays delta) {
  return static_cast<int>(reco::LabelOfTruth(truth, delta));
}

// The model's input and outputs: a [N, W, D, 1] float input and two outputs, [N, 3] class
// scores and [N, 1] Michel score (found by the production names, else by shape).
struct ModelIo {
  int class_output = -1;
  int michel_output = -1;
};

StatusOr<ModelIo> CheckModel(const runtime::Engine& engine, const reco::PatchConfig& pc) {
  if (engine.inputs().size() != 1) {
    return InvalidArgument("the model has " + std::to_string(engine.inputs().size()) +
                           " inputs; EmTrackMichelId takes one (" + kInputName + ")");
  }
  const auto& in = engine.inputs()[0];
  const std::vector<int64_t> want = {-1, pc.patch_wires, pc.patch_drifts, 1};
  bool shape_ok = in.dims.size() == 4 && in.dtype == DType::kFloat32;
  for (std::size_t k = 1; shape_ok && k < 4; ++k) shape_ok = in.dims[k] == want[k];
  if (!shape_ok) {
    return InvalidArgument("the model's input '" + in.name + "' is " + Shape(in.dims).ToString() +
                           "; patches are [N, " + std::to_string(pc.patch_wires) + ", " +
                           std::to_string(pc.patch_drifts) + ", 1] float32");
  }
  ModelIo io;
  const auto& outs = engine.outputs();
  for (std::size_t k = 0; k < outs.size(); ++k) {
    if (outs[k].name == kClassOutput) io.class_output = static_cast<int>(k);
    if (outs[k].name == kMichelOutput) io.michel_output = static_cast<int>(k);
  }
  for (std::size_t k = 0; k < outs.size(); ++k) {
    const int64_t last = outs[k].dims.empty() ? -1 : outs[k].dims.back();
    if (io.class_output < 0 && last == 3) io.class_output = static_cast<int>(k);
    if (io.michel_output < 0 && last == 1 && static_cast<int>(k) != io.class_output) {
      io.michel_output = static_cast<int>(k);
    }
  }
  if (io.class_output < 0 || io.michel_output < 0) {
    return InvalidArgument(std::string("the model needs outputs '") + kClassOutput +
                           "' [N, 3] and '" + kMichelOutput + "' [N, 1]");
  }
  return io;
}

struct Stages {
  double read = 0, hits = 0, patches = 0, inference = 0, write = 0;
};

#ifdef LARSERVE_HAVE_SERVE
// Scores of every patch of an event through the servers: batches of --batch patches, at most
// --in-flight of them outstanding, each response written into its rows.
Status InferRemote(client::Client& remote, const std::vector<float>& patches, int64_t n,
                   const reco::PatchConfig& pc, const RecoArgs& a,
                   std::vector<io::HitResult>& rows) {
  std::mutex mu;
  std::condition_variable cv;
  int outstanding = 0;
  Status first_error = Status::Ok();
  for (int64_t b0 = 0; b0 < n; b0 += a.batch) {
    const int64_t bn = std::min(a.batch, n - b0);
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return outstanding < a.in_flight; });
      if (!first_error.ok()) break;
      ++outstanding;
    }
    // The client shares the tensor until its callback: a view of `patches`, which outlives it.
    Tensor input = Tensor::View(
        DType::kFloat32, Shape{bn, pc.patch_wires, pc.patch_drifts, 1},
        const_cast<float*>(patches.data()) + static_cast<std::size_t>(b0) * pc.patch_size());
    remote.InferAsync(
        {{kInputName, input}},
        [&, b0, bn](StatusOr<std::vector<Tensor>> out) {
          Status s = out.status();
          if (s.ok() && (out->size() != 2 || out->at(0).num_elements() != bn * 3 ||
                         out->at(1).num_elements() != bn)) {
            s = Internal("the server's outputs do not have the shapes [N, 3] and [N, 1]");
          }
          if (s.ok()) {
            const float* cls = static_cast<const float*>(out->at(0).data());
            const float* mich = static_cast<const float*>(out->at(1).data());
            for (int64_t i = 0; i < bn; ++i) {
              rows[static_cast<std::size_t>(b0 + i)].scores = {cls[i * 3], cls[i * 3 + 1],
                                                               cls[i * 3 + 2], mich[i]};
            }
          }
          std::lock_guard<std::mutex> lock(mu);
          if (!s.ok() && first_error.ok()) first_error = s;
          --outstanding;
          cv.notify_all();
        },
        {kClassOutput, kMichelOutput});
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return outstanding == 0; });
  return first_error;
}

#endif

// Splits "a,b,c" at commas, dropping empty parts.
std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = std::min(s.find(',', start), s.size());
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

int RunReco(const RecoArgs& a) {
  if (a.local == !a.servers.empty()) {
    return Fail("reco",
                "give either --local (inference in this process) or --server HOST:PORT[,...] "
                "(inference through larserve serve or Triton)");
  }
  if (a.output.empty()) return Fail("reco", "no output file: give -o results.h5");
  auto delta_parsed = io::ParseDeltaRays(a.delta_rays);
  if (!delta_parsed.ok()) return Fail("reco", "--delta-rays: " + delta_parsed.status().message());
  const io::DeltaRays delta_rays = *delta_parsed;
  auto reader = io::EventFileReader::Open(a.events);
  if (!reader.ok()) return Fail("reco", reader.status().message());
  const int threads = a.threads > 0 ? a.threads : ThreadPool::HardwareThreads();
  runtime::BuildOptions options;
  options.backend = a.backend;
  auto precision = runtime::PrecisionFromName(a.precision);
  if (!precision.ok()) return Fail("reco", precision.status().message());
  options.precision = *precision;
  options.threads = threads;
  Timer build_timer;
  const reco::PatchConfig pc;
  std::unique_ptr<runtime::Engine> engine;
  std::unique_ptr<runtime::ExecutionContext> ctx;
  ModelIo model_io;
#ifdef LARSERVE_HAVE_SERVE
  std::unique_ptr<client::Client> remote;
#else
  // Built without the server and client (LARSERVE_BUILD_SERVE=OFF): local inference only.
  const void* remote = nullptr;
#endif
  if (a.local) {
    auto built = runtime::LoadModelOrPlan(a.model, options);
    if (!built.ok()) return Fail("reco", "model '" + a.model + "': " + built.status().message());
    engine = std::move(built).value();
    auto io = CheckModel(*engine, pc);
    if (!io.ok()) return Fail("reco", "model '" + a.model + "': " + io.status().message());
    model_io = *io;
    ctx = engine->CreateContext();
  } else {
#ifdef LARSERVE_HAVE_SERVE
    client::ClientOptions co;
    co.servers = SplitList(a.servers);
    co.model_name = a.model_name;
    co.deadline = std::chrono::milliseconds(a.deadline_ms);
    co.retry.max_attempts = a.retries;
    co.channels_per_server = a.channels;
    if (a.compression == "gzip") {
      co.compression = client::Compression::kGzip;
    } else if (a.compression != "none") {
      return Fail("reco", "--compression must be none or gzip, got '" + a.compression + "'");
    }
    if (a.fallback) {
      co.fallback_model_path = a.model;
      co.fallback_intra_op_threads = threads;
    }
    auto created = client::Client::Create(co);
    if (!created.ok()) return Fail("reco", created.status().message());
    remote = std::move(created).value();
    // Read once here so that a wrong model name or an unreachable server is reported before
    // any work; with --fallback an unreachable server is not an error (requests run locally).
    if (auto info = remote->GetModelInfo(); !info.ok()) {
      const std::string why =
          "model '" + a.model_name + "' on " + a.servers + ": " + info.status().message();
      if (!a.fallback || info.status().code() != StatusCode::kUnavailable) return Fail("reco", why);
      std::fprintf(stderr, "larserve reco: %s; falling back to %s\n", why.c_str(), a.model.c_str());
    }
    model_io = {0, 1};  // outputs are requested by name in this order
#else
    return Fail("reco", "this larserve was built without the client (LARSERVE_BUILD_SERVE=OFF)");
#endif
  }
  const double build_seconds = build_timer.Seconds();

  io::ResultsFileInfo info;
  info.source = a.events;
  info.model = a.model;
  info.has_truth = true;
  auto writer = io::ResultsFileWriter::Create(a.output, info);
  if (!writer.ok()) return Fail("reco", writer.status().message());

  ThreadPool pool(threads);
  const reco::HitFinderConfig hit_config;
  const int64_t n_events =
      a.max_events >= 0 ? std::min(a.max_events, (*reader)->num_events()) : (*reader)->num_events();
  const bool progress = !a.json && isatty(STDERR_FILENO);
  Stages t;
  int64_t total_hits = 0, events_with_truth = 0;
  std::map<int, Counts> per_plane;  // plane 0-2
  std::vector<float> patches;
  std::vector<io::HitResult> rows;
  Timer wall;
  for (int64_t e = 0; e < n_events; ++e) {
    Timer timer;
    auto event = (*reader)->ReadEvent(e);
    if (!event.ok()) return Fail("reco", event.status().message());
    t.read += timer.Seconds();

    timer = Timer();
    // Simulated events always carry truth (an event without particles is all noise).
    auto hits = reco::FindEventHits(*event, hit_config, /*match_truth=*/true, &pool);
    if (!hits.ok()) return Fail("reco", hits.status().message());
    t.hits += timer.Seconds();
    const int64_t n = hits->num_hits();
    total_hits += n;
    events_with_truth += hits->has_truth;

    timer = Timer();
    patches.resize(static_cast<std::size_t>(n) * pc.patch_size());
    if (Status s = reco::FillEventPatches(*event, *hits, pc, patches, &pool); !s.ok()) {
      return Fail("reco", s.message());
    }
    t.patches += timer.Seconds();

    // Inference in batches of --batch patches; the last batch is smaller.
    timer = Timer();
    rows.assign(static_cast<std::size_t>(n), io::HitResult());
#ifdef LARSERVE_HAVE_SERVE
    if (remote) {
      if (Status s = InferRemote(*remote, patches, n, pc, a, rows); !s.ok()) {
        return Fail("reco",
                    "inference on event " + std::to_string(event->index) + ": " + s.message());
      }
    }
#endif
    std::vector<Tensor> outputs;
    for (int64_t b0 = 0; !remote && b0 < n; b0 += a.batch) {
      const int64_t bn = std::min(a.batch, n - b0);
      const Tensor input =
          Tensor::View(DType::kFloat32, Shape{bn, pc.patch_wires, pc.patch_drifts, 1},
                       patches.data() + static_cast<std::size_t>(b0) * pc.patch_size());
      if (Status s = ctx->Run(std::span<const Tensor>(&input, 1), &outputs); !s.ok()) {
        return Fail("reco",
                    "inference on event " + std::to_string(event->index) + ": " + s.message());
      }
      const float* cls = static_cast<const float*>(outputs[model_io.class_output].data());
      const float* mich = static_cast<const float*>(outputs[model_io.michel_output].data());
      for (int64_t i = 0; i < bn; ++i) {
        auto& sc = rows[static_cast<std::size_t>(b0 + i)].scores;
        sc = {cls[i * 3], cls[i * 3 + 1], cls[i * 3 + 2], mich[i]};
      }
    }
    t.inference += timer.Seconds();

    timer = Timer();
    std::size_t r = 0;
    for (const auto& ph : hits->planes) {
      for (std::size_t h = 0; h < ph.hits.size(); ++h, ++r) {
        io::HitResult& row = rows[r];
        const reco::Hit& hit = ph.hits[h];
        row.event = event->index;
        row.apa = static_cast<int16_t>(ph.apa);
        row.plane = static_cast<uint8_t>(ph.plane);
        row.wire = hit.wire;
        row.peak_tick = hit.peak_tick;
        row.width = hit.rms_ticks;
        row.integral = hit.integral;
        if (hits->has_truth) {
          const reco::HitTruth& truth = ph.truth[h];
          row.category = static_cast<uint8_t>(truth.category);
          row.truth_id = truth.truth_id;
          row.truth_fraction = truth.fraction;
          row.truth_kinetic_mev = truth.kinetic_mev;
          Counts& c = per_plane[ph.plane];
          ++c.hits;
          const int tc = TrueClass(truth, delta_rays);
          const int pcls = static_cast<int>(
              std::max_element(row.scores.begin(), row.scores.begin() + 3) - row.scores.begin());
          ++c.truth[tc];
          ++c.predicted[pcls];
          c.both[tc] += tc == pcls;
          const bool true_michel = row.category == static_cast<uint8_t>(sim::Category::kMichel);
          const bool pred_michel = row.scores[3] > a.michel_threshold;
          c.truth[3] += true_michel;
          c.predicted[3] += pred_michel;
          c.both[3] += true_michel && pred_michel;
        }
      }
    }
    if (Status s = (*writer)->AppendEvent(rows); !s.ok()) return Fail("reco", s.message());
    t.write += timer.Seconds();
    if (progress) {
      std::fprintf(stderr, "\rlarserve reco: event %lld/%lld, %lld hits",
                   static_cast<long long>(e + 1), static_cast<long long>(n_events),
                   static_cast<long long>(total_hits));
    }
  }
  if (progress) std::fprintf(stderr, "\n");
  if (Status s = (*writer)->Close(); !s.ok()) return Fail("reco", s.message());
  const double elapsed = wall.Seconds();

  static constexpr const char* kClassNames[4] = {"track", "shower", "none", "michel"};
  static constexpr const char* kPlaneNames[3] = {"U", "V", "W"};
  auto ratio = [](int64_t a, int64_t b) -> std::optional<double> {
    if (b == 0) return std::nullopt;
    return static_cast<double>(a) / static_cast<double>(b);
  };
  const double patch_bytes = static_cast<double>(total_hits) * pc.patch_size() * sizeof(float);
  nlohmann::json j;
  j["events"] = n_events;
  j["hits"] = total_hits;
  j["model"] = a.model;
  j["backend"] = engine ? engine->options().backend : std::string("server");
  j["precision"] =
      engine ? std::string(runtime::PrecisionName(engine->options().precision)) : "server's";
  j["threads"] = threads;
  j["batch"] = a.batch;
  j["output"] = a.output;
  j["build_seconds"] = build_seconds;
  j["seconds"] = elapsed;
  j["stages_seconds"] = {{"read", t.read},
                         {"hits", t.hits},
                         {"patches", t.patches},
                         {"inference", t.inference},
                         {"write", t.write}};
  j["hits_per_second_inference"] = t.inference > 0 ? total_hits / t.inference : 0.0;
  j["patch_bytes"] = patch_bytes;
  j["mode"] = remote ? "server" : "local";
#ifdef LARSERVE_HAVE_SERVE
  if (remote) {
    const client::ClientStats cs = remote->Stats();
    j["servers"] = a.servers;
    j["client"] = {{"requests", cs.requests},
                   {"retries", cs.retries},
                   {"failures", cs.failures},
                   {"fallbacks", cs.fallbacks},
                   {"raw_bytes_sent", cs.raw_bytes_sent},
                   {"raw_bytes_received", cs.raw_bytes_received},
                   {"message_bytes_sent", cs.message_bytes_sent},
                   {"message_bytes_received", cs.message_bytes_received},
                   {"request_latency_ms_p50", cs.request_latency.p50_ms},
                   {"request_latency_ms_p99", cs.request_latency.p99_ms}};
  }
#endif
  j["michel_threshold"] = a.michel_threshold;
  j["delta_rays"] = io::DeltaRaysName(delta_rays);
  if (events_with_truth > 0) {
    for (const auto& [plane, c] : per_plane) {
      nlohmann::json p;
      p["hits"] = c.hits;
      for (int k = 0; k < 4; ++k) {
        if (k == 2) continue;  // none: not a category of interest
        const auto eff = ratio(c.both[k], c.truth[k]);
        const auto pur = ratio(c.both[k], c.predicted[k]);
        p[kClassNames[k]] = {{"true", c.truth[k]},
                             {"predicted", c.predicted[k]},
                             {"efficiency", eff ? nlohmann::json(*eff) : nlohmann::json()},
                             {"purity", pur ? nlohmann::json(*pur) : nlohmann::json()}};
      }
      j["metrics"][kPlaneNames[plane]] = p;
    }
  }
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  if (engine) {
    std::printf("larserve reco: %lld events, %lld hits, model %s (%s, %s, %d threads)\n",
                static_cast<long long>(n_events), static_cast<long long>(total_hits),
                a.model.c_str(), engine->options().backend.c_str(), a.precision.c_str(), threads);
  } else {
    std::printf("larserve reco: %lld events, %lld hits, model '%s' on %s (%d threads)\n",
                static_cast<long long>(n_events), static_cast<long long>(total_hits),
                a.model_name.c_str(), a.servers.c_str(), threads);
  }
  std::printf("  stage        seconds   per event\n");
  const double ne = std::max<double>(1, static_cast<double>(n_events));
  for (const auto& [name, s] :
       {std::pair{"read", t.read}, std::pair{"hits", t.hits}, std::pair{"patches", t.patches},
        std::pair{"inference", t.inference}, std::pair{"write", t.write}}) {
    std::printf("  %-10s %9.3f %9.4f\n", name, s, s / ne);
  }
  std::printf("  total      %9.3f %9.4f   (model build %.2f s)\n", elapsed, elapsed / ne,
              build_seconds);
  std::printf("  inference: %.0f patches/s; patches as float32 would be %.1f MB\n",
              t.inference > 0 ? total_hits / t.inference : 0.0, patch_bytes / 1e6);
#ifdef LARSERVE_HAVE_SERVE
  if (remote) {
    const client::ClientStats cs = remote->Stats();
    std::printf(
        "  client: %llu requests, %llu retries, %llu fallbacks; sent %.1f MB (messages), "
        "received %.1f MB; request latency p50 %.2f ms, p99 %.2f ms\n",
        static_cast<unsigned long long>(cs.requests), static_cast<unsigned long long>(cs.retries),
        static_cast<unsigned long long>(cs.fallbacks), cs.message_bytes_sent / 1e6,
        cs.message_bytes_received / 1e6, cs.request_latency.p50_ms, cs.request_latency.p99_ms);
  }
#endif
  if (events_with_truth > 0) {
    std::string delta_text = io::DeltaRaysName(delta_rays);
    if (delta_rays.scheme == io::DeltaRays::Scheme::kSize) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), ": track below %g MeV, em at or above",
                    static_cast<double>(delta_rays.size_mev));
      delta_text += buf;
    }
    std::printf(
        "  hit efficiency / purity in %% (Michel: score > %.2f; delta rays counted as %s)\n",
        a.michel_threshold, delta_text.c_str());
    std::printf("  plane    hits    track eff/pur    shower eff/pur    michel eff/pur\n");
    auto pct = [](std::optional<double> v) {
      if (!v) return std::string("    -");
      char buf[16];
      std::snprintf(buf, sizeof(buf), "%5.1f", *v * 100);
      return std::string(buf);
    };
    auto cell = [&](const Counts& c, int k) {
      return pct(ratio(c.both[k], c.truth[k])) + " / " + pct(ratio(c.both[k], c.predicted[k]));
    };
    for (const auto& [plane, c] : per_plane) {
      std::printf("  %-5s %7lld   %s   %s   %s\n", kPlaneNames[plane],
                  static_cast<long long>(c.hits), cell(c, 0).c_str(), cell(c, 1).c_str(),
                  cell(c, 3).c_str());
    }
  }
  std::printf("  results: %s\n", a.output.c_str());
  return 0;
}

}  // namespace

void RegisterReco(CLI::App& app, RunFn* run) {
  auto a = std::make_shared<RecoArgs>();
  CLI::App* cmd = app.add_subcommand(
      "reco",
      "Classify every hit of simulated events with EmTrackMichelId: hit finding, PointIdAlg "
      "patches, batched inference; per-hit scores to HDF5, stage timings, and efficiency and "
      "purity per category and plane when the events carry truth.");
  cmd->add_option("events", a->events, "events file (larserve sim)")->required();
  cmd->add_option("-o,--output", a->output, "results file to write (HDF5, docs/formats.md)");
  cmd->add_flag("--local", a->local, "run the model in this process (our engine)");
  cmd->add_option("--server", a->servers,
                  "HOST:PORT[,HOST:PORT...]: infer through these servers (larserve serve or "
                  "Triton; round robin with fail-over)");
  cmd->add_option("--model-name", a->model_name, "the model's name on the servers");
  cmd->add_option("--deadline-ms", a->deadline_ms, "per-request deadline (0 = none)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--retries", a->retries,
                  "attempts per request (exponential back-off with jitter between them)")
      ->check(CLI::Range(1, 100));
  cmd->add_flag("--fallback", a->fallback,
                "when no server answers, run the request locally with --model");
  cmd->add_option("--compression", a->compression, "none or gzip");
  cmd->add_option("--channels", a->channels, "gRPC channels per server")->check(CLI::Range(1, 64));
  cmd->add_option("--in-flight", a->in_flight, "batches of one event outstanding at once")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--model", a->model,
                  "ONNX model or plan file (default: " + std::string(kDefaultModel) + ")");
  cmd->add_option("--backend", a->backend, "backend when building from ONNX: cpu or reference");
  cmd->add_option("--precision", a->precision, "fp32, bf16 or int8 (cpu backend)");
  cmd->add_option("--batch,-b", a->batch, "patches per inference call (LArSoft clients: 256)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--threads,-t", a->threads,
                  "threads for hit finding, patches and intra-op inference (0 = all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--events,-n", a->max_events, "process at most this many events");
  cmd->add_option("--michel-threshold", a->michel_threshold,
                  "Michel score above which a hit counts as Michel in the summary")
      ->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--delta-rays", a->delta_rays,
                  "true class of delta-ray hits in the summary: track (the original 3-class "
                  "scheme, default), em, or size:E (E in MeV, e.g. size:5: track when the delta "
                  "ray's electron had less than E MeV of kinetic energy at creation, else em); "
                  "use the scheme the model was trained with")
      ->check(DeltaRaysValidator());
  cmd->add_flag("--json", a->json, "print the summary as JSON");
  cmd->callback([a, run] { *run = [a] { return RunReco(*a); }; });
}

}  // namespace larserve::apps
