// `larserve build` and `larserve exec`: the trtexec of larserve.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

#include <nlohmann/json.hpp>

#include "commands.h"
#include "larserve/core/rng.h"
#include "larserve/core/thread_pool.h"
#include "larserve/core/timer.h"
#include "larserve/graph/onnx_import.h"
#include "larserve/io/npy.h"
#include "larserve/io/patch_file.h"
#include "larserve/runtime/backend.h"
#include "larserve/runtime/calibration.h"
#include "larserve/runtime/engine.h"

namespace larserve::apps {
namespace {

struct BuildArgs {
  std::string model;
  std::string output;
  std::string batch;               // MIN:OPT:MAX
  std::vector<std::string> calib;  // .npy batches of the model's input
  std::string calib_cache;
  int64_t calib_patches = 4096;
  std::string calib_method = "entropy";
  double calib_percentile = 99.99;
  std::string backend;  // "": DefaultBackend()
  std::string device;   // cpu | cuda: the backend by device (TensorRT's spelling)
  std::string precision = "fp32";
  std::string timing_cache;
  int threads = 0;
  int min_segment_size = 1;
  bool verbose = false;
  bool json = false;
};

void PrintReport(const runtime::BuildReport& r, bool verbose) {
  std::printf("optimiser: %d nodes -> %d nodes in %.1f ms\n", r.nodes_before, r.nodes_after,
              r.seconds * 1e3);
  for (const auto& p : r.passes) {
    std::printf("  pass %-22s %4d rewrite%s  %7.2f ms\n", p.pass.c_str(), p.rewrites,
                p.rewrites == 1 ? " " : "s", p.milliseconds);
    if (verbose) {
      for (const auto& line : p.log) std::printf("      %s\n", line.c_str());
    }
  }
  if (!r.tactics.empty()) {
    std::printf("tactics: %zu node%s with alternatives\n", r.tactics.size(),
                r.tactics.size() == 1 ? "" : "s");
    for (const auto& t : r.tactics) {
      std::printf("  %-48s %-16s (%s)", t.node.c_str(), t.entry.chosen.c_str(),
                  std::string(runtime::TacticSourceName(t.source)).c_str());
      if (verbose) {
        for (const auto& c : t.entry.timings) std::printf("  %s %.3f ms", c.tactic.c_str(), c.ms);
      }
      std::printf("\n");
    }
  }
  std::printf("segments: %zu\n", r.segments.size());
  for (std::size_t s = 0; s < r.segments.size(); ++s) {
    const auto& seg = r.segments[s];
    std::printf("  segment %zu: backend %s, %zu node%s\n", s, seg.backend.c_str(), seg.nodes.size(),
                seg.nodes.size() == 1 ? "" : "s");
    if (verbose) {
      for (std::size_t k = 0; k < seg.nodes.size(); ++k) {
        std::printf("      %-48s %s\n", seg.nodes[k].c_str(),
                    k < seg.tactics.size() ? seg.tactics[k].c_str() : "");
      }
    }
  }
}

// The backend `build` and `exec` use when none is named: the optimised CPU backend when this
// build has it (as `serve` does), else the reference one.
std::string DefaultBackend() { return runtime::FindBackend("cpu") ? "cpu" : "reference"; }

StatusOr<runtime::BuildOptions> MakeOptions(const std::string& backend,
                                            const std::string& precision, int min_seg,
                                            int threads) {
  runtime::BuildOptions o;
  o.backend = backend.empty() ? DefaultBackend() : backend;
  ASSIGN_OR_RETURN(o.precision, runtime::PrecisionFromName(precision));
  o.min_segment_size = min_seg;
  o.threads = threads;
  return o;
}

// INT8 ranges: computed from --calib batches (and written to --calib-cache if given), or read
// from --calib-cache. Calibration runs the optimised graph in fp32 on the reference backend.
// HDF5 files start with this signature (at offset 0 for files we write).
bool IsHdf5File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char sig[8] = {0};
  in.read(sig, sizeof(sig));
  return in.gcount() == 8 && std::memcmp(sig, "\x89HDF\r\n\x1a\n", 8) == 0;
}

StatusOr<std::shared_ptr<const runtime::CalibrationTable>> Calibration(const BuildArgs& a,
                                                                       const graph::Graph& g) {
  if (a.calib.empty()) {
    if (a.calib_cache.empty()) {
      // A QDQ model states its own ranges (fold-qdq reads them from its QuantizeLinear nodes).
      for (const auto& node : g.nodes) {
        if (node.op_type == "QuantizeLinear" && node.domain.empty())
          return std::shared_ptr<const runtime::CalibrationTable>();
      }
      return InvalidArgument(
          "precision int8 needs calibration data (--calib FILE.npy ...), a calibration "
          "cache (--calib-cache FILE) or a model with QuantizeLinear/DequantizeLinear nodes");
    }
    ASSIGN_OR_RETURN(runtime::CalibrationTable t, runtime::CalibrationTable::Load(a.calib_cache));
    return std::make_shared<const runtime::CalibrationTable>(std::move(t));
  }
  if (g.inputs.size() != 1) {
    return Unimplemented("calibration from .npy files supports single-input models; this one has " +
                         std::to_string(g.inputs.size()) + " inputs");
  }
  runtime::CalibrationOptions co;
  ASSIGN_OR_RETURN(co.method, runtime::CalibrationMethodFromName(a.calib_method));
  co.percentile = a.calib_percentile;
  std::vector<std::vector<Tensor>> batches;
  for (const auto& f : a.calib) {
    if (!IsHdf5File(f)) {
      ASSIGN_OR_RETURN(Tensor t, io::ReadNpy(f));
      batches.push_back({std::move(t)});
      continue;
    }
    // A patch file (`larserve patches`): its first --calib-patches patches, in batches.
    ASSIGN_OR_RETURN(auto reader, io::PatchFileReader::Open(f));
    const io::PatchFileInfo& info = reader->info();
    const int64_t n = std::min<int64_t>(reader->num_patches(), a.calib_patches);
    if (n == 0) return InvalidArgument("calibration patch file '" + f + "' holds no patches");
    constexpr int64_t kBatch = 512;
    std::vector<float> pixels;
    std::vector<io::PatchRecord> records;
    for (int64_t b0 = 0; b0 < n; b0 += kBatch) {
      const int64_t bn = std::min(kBatch, n - b0);
      RETURN_IF_ERROR(reader->Read(b0, b0 + bn, &pixels, &records));
      ASSIGN_OR_RETURN(Tensor t, Tensor::Create(DType::kFloat32,
                                                Shape{bn, info.patch_wires, info.patch_drifts, 1}));
      std::copy(pixels.begin(), pixels.end(), t.Span<float>().begin());
      batches.push_back({std::move(t)});
    }
  }
  ASSIGN_OR_RETURN(runtime::CalibrationTable t, runtime::Calibrate(g, batches, co));
  if (!a.calib_cache.empty()) RETURN_IF_ERROR(t.Save(a.calib_cache));
  return std::make_shared<const runtime::CalibrationTable>(std::move(t));
}

int RunBuild(const BuildArgs& a) {
  std::string backend = a.backend;
  if (a.device == "cpu") {
    backend = "cpu";
  } else if (a.device == "cuda") {
    return Fail("build",
                "--device cuda: this build of larserve has no CUDA backend yet; use "
                "--device cpu");
  } else if (!a.device.empty()) {
    return Fail("build", "--device must be cpu or cuda, got '" + a.device + "'");
  }
  auto options = MakeOptions(backend, a.precision, a.min_segment_size, a.threads);
  if (!options.ok()) return Fail("build", options.status().message());
  if (!a.timing_cache.empty()) {
    auto cache = runtime::TimingCache::Load(a.timing_cache);
    if (!cache.ok()) return Fail("build", cache.status().message());
    options->timing_cache = std::make_shared<runtime::TimingCache>(std::move(cache).value());
  }
  if (!a.batch.empty()) {
    long long lo = 0, opt = 0, hi = 0;
    char tail = 0;
    if (std::sscanf(a.batch.c_str(), "%lld:%lld:%lld%c", &lo, &opt, &hi, &tail) != 3) {
      return Fail("build", "--batch must be MIN:OPT:MAX (integers), got '" + a.batch + "'");
    }
    options->batch_min = lo;
    options->batch_opt = opt;
    options->batch_max = hi;
  }
  runtime::BuildReport report;
  StatusOr<std::unique_ptr<runtime::Engine>> engine = Internal("not built");
  if (options->precision == runtime::Precision::kInt8) {
    auto g = graph::ImportOnnxFile(a.model);
    if (!g.ok()) return Fail("build", g.status().message());
    auto table = Calibration(a, *g);
    if (!table.ok()) return Fail("build", table.status().message());
    options->calibration = *table;
    engine = runtime::Engine::Build(std::move(g).value(), *options, &report);
  } else {
    engine = runtime::LoadModelOrPlan(a.model, *options, &report);
  }
  if (!engine.ok()) return Fail("build", engine.status().message());
  if (Status s = (*engine)->SavePlan(a.output); !s.ok()) return Fail("build", s.message());
  if (options->timing_cache) {
    if (Status s = options->timing_cache->Save(a.timing_cache); !s.ok())
      return Fail("build", s.message());
  }
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["plan"] = a.output;
    j["nodes_before"] = report.nodes_before;
    j["nodes_after"] = report.nodes_after;
    j["build_seconds"] = report.seconds;
    for (const auto& p : report.passes) {
      j["passes"].push_back(
          {{"pass", p.pass}, {"rewrites", p.rewrites}, {"ms", p.milliseconds}, {"log", p.log}});
    }
    for (const auto& s : report.segments)
      j["segments"].push_back({{"backend", s.backend}, {"nodes", s.nodes}, {"tactics", s.tactics}});
    j["tactic_choices"] = nlohmann::json::array();
    for (const auto& t : report.tactics) {
      nlohmann::json timings = nlohmann::json::array();
      for (const auto& c : t.entry.timings) timings.push_back({{"tactic", c.tactic}, {"ms", c.ms}});
      j["tactic_choices"].push_back({{"node", t.node},
                                     {"chosen", t.entry.chosen},
                                     {"source", runtime::TacticSourceName(t.source)},
                                     {"timings", timings}});
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    PrintReport(report, a.verbose);
    std::printf("larserve build: wrote %s (backend %s, precision %s)\n", a.output.c_str(),
                options->backend.c_str(), a.precision.c_str());
  }
  return 0;
}

struct ExecArgs {
  std::string model;
  int64_t batch = 0;  // 0: the plan's OPT batch, else 1
  int threads = 1;
  int intra_threads = 0;
  double seconds = 3.0;
  int warmup = 2;
  int64_t interval_us = 0;  // pause between runs
  bool ftz = false;         // flush denormals to zero, as the server's instance threads
  bool profile = false;
  bool json = false;
  std::string backend;  // "": DefaultBackend()
  std::string precision = "fp32";
  uint64_t seed = 1;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5));
  return v[i];
}

int RunExec(const ExecArgs& a) {
  auto options = MakeOptions(a.backend, a.precision, 1, a.intra_threads);
  if (!options.ok()) return Fail("exec", options.status().message());
  auto loaded = runtime::LoadModelOrPlan(a.model, *options);
  if (!loaded.ok()) return Fail("exec", loaded.status().message());
  const runtime::Engine& engine = **loaded;
  const int64_t run_batch =
      a.batch > 0 ? a.batch : std::max<int64_t>(1, engine.options().batch_opt);
  // Random inputs with the batch substituted for unknown dimensions.
  Rng rng(a.seed);
  std::vector<Tensor> inputs;
  for (const auto& spec : engine.inputs()) {
    std::vector<int64_t> dims = spec.dims;
    for (auto& d : dims) d = d < 0 ? run_batch : d;
    auto t = Tensor::Create(spec.dtype, Shape(dims));
    if (!t.ok()) return Fail("exec", t.status().message());
    if (spec.dtype == DType::kFloat32) {
      for (float& v : t->Span<float>()) v = static_cast<float>(rng.Uniform());
    }
    inputs.push_back(std::move(t).value());
  }
  const int64_t batch =
      engine.inputs().empty() || engine.inputs()[0].dims.empty()
          ? 1
          : (engine.inputs()[0].dims[0] < 0 ? run_batch : engine.inputs()[0].dims[0]);
  std::vector<std::vector<double>> latencies(a.threads);
  std::vector<std::unique_ptr<runtime::ExecutionContext>> contexts;
  for (int t = 0; t < a.threads; ++t) contexts.push_back(engine.CreateContext());
  std::atomic<bool> failed{false};
  std::string error;
  std::mutex error_mutex;
  auto worker = [&](int t) {
#if defined(__x86_64__) || defined(__i386__)
    if (a.ftz) {  // before the first run, so the OpenMP team this thread starts inherits it
      _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
      _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
    }
#endif
    std::vector<Tensor> outputs;
    for (int w = 0; w < a.warmup; ++w) {
      if (Status s = contexts[t]->Run(inputs, &outputs); !s.ok()) {
        std::lock_guard<std::mutex> lock(error_mutex);
        error = s.message();
        failed = true;
        return;
      }
    }
    contexts[t]->EnableProfiling(a.profile && t == 0);
    Timer total;
    while (total.Seconds() < a.seconds && !failed) {
      if (a.interval_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(a.interval_us));
      Timer one;
      Status s = contexts[t]->Run(inputs, &outputs);
      latencies[t].push_back(one.Seconds() * 1e3);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(error_mutex);
        error = s.message();
        failed = true;
      }
    }
  };
  Timer wall;
  std::vector<std::thread> pool;
  for (int t = 0; t < a.threads; ++t) pool.emplace_back(worker, t);
  for (auto& th : pool) th.join();
  const double elapsed = wall.Seconds();
  if (failed) return Fail("exec", error);
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  const double runs = static_cast<double>(all.size());
  const double throughput = runs * static_cast<double>(batch) / elapsed;
  nlohmann::json j;
  j["model"] = a.model;
  j["backend"] = engine.options().backend;
  j["precision"] = std::string(runtime::PrecisionName(engine.options().precision));
  j["batch"] = batch;
  j["threads"] = a.threads;
  j["intra_threads"] = a.intra_threads;
  j["run_intra_threads"] = engine.RunThreads(batch);  // what runs of this batch use
  j["interval_us"] = a.interval_us;
  j["ftz"] = a.ftz;
  j["runs"] = all.size();
  j["seconds"] = elapsed;
  j["throughput_inferences_per_s"] = throughput;
  j["latency_ms"] = {{"p50", Percentile(all, 0.5)},
                     {"p90", Percentile(all, 0.9)},
                     {"p99", Percentile(all, 0.99)},
                     {"min", all.empty() ? 0 : *std::min_element(all.begin(), all.end())}};
  const auto mem = contexts[0]->memory_stats();
  j["activation_memory_bytes"] = {{"planned_arena", mem.arena_bytes},
                                  {"without_sharing", mem.unshared_bytes}};
  std::vector<runtime::LayerTiming> prof = contexts[0]->profile();
  std::sort(prof.begin(), prof.end(),
            [](const auto& x, const auto& y) { return x.total_ms > y.total_ms; });
  double prof_total = 0;
  for (const auto& p : prof) prof_total += p.total_ms;
  if (a.profile) {
    for (const auto& p : prof) {
      j["profile"].push_back({{"node", p.node},
                              {"op", p.op_type},
                              {"backend", p.backend},
                              {"ms_per_run", p.calls ? p.total_ms / p.calls : 0.0},
                              {"percent", prof_total > 0 ? 100.0 * p.total_ms / prof_total : 0.0}});
    }
  }
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model %s: backend %s, precision %s, batch %lld, %d thread%s x %d intra-op, %.1f s\n",
              a.model.c_str(), j["backend"].get<std::string>().c_str(),
              j["precision"].get<std::string>().c_str(), static_cast<long long>(batch), a.threads,
              a.threads > 1 ? "s" : "", engine.RunThreads(batch), elapsed);
  std::printf("throughput: %.1f inferences/s (%zu runs)\n", throughput, all.size());
  std::printf("latency (ms): min %.3f  p50 %.3f  p90 %.3f  p99 %.3f\n",
              j["latency_ms"]["min"].get<double>(), j["latency_ms"]["p50"].get<double>(),
              j["latency_ms"]["p90"].get<double>(), j["latency_ms"]["p99"].get<double>());
  std::printf("activation memory per context: %.2f MB planned arena (%.2f MB without sharing)\n",
              mem.arena_bytes / 1e6, mem.unshared_bytes / 1e6);
  if (a.profile) {
    std::printf("%-40s %-12s %-10s %12s %8s\n", "layer", "op", "backend", "ms/run", "%");
    for (const auto& p : prof) {
      std::printf("%-40s %-12s %-10s %12.4f %7.1f%%\n", p.node.substr(0, 40).c_str(),
                  p.op_type.c_str(), p.backend.c_str(), p.calls ? p.total_ms / p.calls : 0.0,
                  prof_total > 0 ? 100.0 * p.total_ms / prof_total : 0.0);
    }
  }
  return 0;
}

struct InferArgs {
  std::string model;
  std::vector<std::string> inputs;  // name=file.npy or file.npy (in input order)
  std::string output_dir;
  std::string backend = "reference";
  std::string precision = "fp32";
  int threads = 0;
};

// Output file name: the tensor name with characters unsafe in file names replaced.
std::string SafeFileName(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  }
  return out;
}

int RunInfer(const InferArgs& a) {
  auto options = MakeOptions(a.backend, a.precision, 1, a.threads);
  if (!options.ok()) return Fail("infer", options.status().message());
  auto engine = runtime::LoadModelOrPlan(a.model, *options);
  if (!engine.ok()) return Fail("infer", engine.status().message());
  const auto& specs = (*engine)->inputs();
  std::vector<Tensor> inputs(specs.size());
  std::vector<bool> given(specs.size(), false);
  for (std::size_t k = 0; k < a.inputs.size(); ++k) {
    std::string name, file = a.inputs[k];
    const auto eq = file.find('=');
    std::size_t slot = k;
    if (eq != std::string::npos) {
      name = file.substr(0, eq);
      file = file.substr(eq + 1);
      slot = specs.size();
      for (std::size_t s = 0; s < specs.size(); ++s) {
        if (specs[s].name == name) slot = s;
      }
      if (slot == specs.size()) return Fail("infer", "the model has no input named '" + name + "'");
    }
    if (slot >= specs.size()) return Fail("infer", "more input files than model inputs");
    auto t = io::ReadNpy(file);
    if (!t.ok()) return Fail("infer", t.status().message());
    inputs[slot] = std::move(t).value();
    given[slot] = true;
  }
  for (std::size_t s = 0; s < specs.size(); ++s) {
    if (!given[s]) return Fail("infer", "no file for input '" + specs[s].name + "'");
  }
  auto ctx = (*engine)->CreateContext();
  std::vector<Tensor> outputs;
  if (Status s = ctx->Run(inputs, &outputs); !s.ok()) return Fail("infer", s.message());
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const std::string path =
        a.output_dir + "/" + SafeFileName((*engine)->outputs()[k].name) + ".npy";
    if (Status s = io::WriteNpy(path, outputs[k]); !s.ok()) return Fail("infer", s.message());
    std::printf("%s %s -> %s\n", (*engine)->outputs()[k].name.c_str(),
                outputs[k].shape().ToString().c_str(), path.c_str());
  }
  return 0;
}

}  // namespace

void RegisterBuild(CLI::App& app, RunFn* run) {
  auto a = std::make_shared<BuildArgs>();
  CLI::App* cmd = app.add_subcommand(
      "build",
      "Optimise an ONNX model (constant folding, identity/dropout removal, batch-norm folding, "
      "conv/gemm + bias + activation fusion, transpose/reshape clean-up), partition it across "
      "backends "
      "and write a plan file.");
  cmd->add_option("model", a->model, "ONNX model (opsets 11-17)")->required();
  cmd->add_option("-o,--output", a->output, "plan file to write")->required();
  cmd->add_option("--backend", a->backend,
                  "backend: cpu (oneDNN; the default when built, as for `serve`) or reference "
                  "(plain loops, the ground truth; the default otherwise)");
  cmd->add_option("--device", a->device, "cpu (same as --backend cpu) or cuda (not built yet)");
  cmd->add_option("--precision", a->precision, "fp32, bf16 or int8 (cpu backend)");
  cmd->add_option("--threads", a->threads,
                  "intra-op threads the plan is tuned for and runs with (0 = all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--timing-cache", a->timing_cache,
                  "file of tactic timings: read if it exists, updated after the build (tactics "
                  "are timed only with --batch)");
  cmd->add_option("--min-segment-size", a->min_segment_size,
                  "shorter runs of nodes the backend supports stay on the reference backend")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--batch", a->batch,
                  "batch profile MIN:OPT:MAX of the model's dynamic batch dimension: other batches "
                  "are refused, tactics are timed at OPT, exec runs OPT by default");
  cmd->add_option("--calib", a->calib,
                  "int8: calibration data: patch files (larserve patches, .h5) or batches of the "
                  "model's input as .npy files (numpy.save), one batch each")
      ->check(CLI::ExistingFile);
  cmd->add_option("--calib-patches", a->calib_patches,
                  "int8: patches used from each calibration patch file (default 4096)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--calib-cache", a->calib_cache,
                  "int8: calibration cache to write (with --calib) or to read (without)");
  cmd->add_option("--calib-method", a->calib_method,
                  "int8: entropy (KL, default), minmax or percentile");
  cmd->add_option("--calib-percentile", a->calib_percentile,
                  "int8: percentile for --calib-method percentile")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_flag("--verbose,-v", a->verbose,
                "print every rewrite of every pass and the nodes of every segment");
  cmd->add_flag("--json", a->json, "print the build report as JSON");
  cmd->callback([a, run] { *run = [a] { return RunBuild(*a); }; });
}

void RegisterExec(CLI::App& app, RunFn* run) {
  auto a = std::make_shared<ExecArgs>();
  CLI::App* cmd =
      app.add_subcommand("exec",
                         "Run a model or plan on random inputs and report throughput "
                         "(inferences/s), latency percentiles "
                         "and, with --profile, the time of every layer (like trtexec).");
  cmd->add_option("model", a->model, "ONNX model or plan file")->required();
  cmd->add_option(
         "--batch,-b", a->batch,
         "batch size for the model's unknown (batch) dimension (default: the plan's OPT, else 1)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--threads,-t", a->threads,
                  "concurrent execution contexts, one caller thread each")
      ->check(CLI::Range(1, 1024));
  cmd->add_option(
         "--intra-threads", a->intra_threads,
         "threads inside one inference for backends that parallelise an op (0 = all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--seconds,-s", a->seconds, "measurement time")->check(CLI::Range(0.01, 3600.0));
  cmd->add_option("--warmup", a->warmup, "untimed runs per thread first")
      ->check(CLI::Range(0, 100000));
  cmd->add_flag(
      "--ftz", a->ftz,
      "flush denormals to zero (x86 FTZ and DAZ), as `larserve serve` runs its instances; "
      "onnxruntime and PyTorch do not by default");
  cmd->add_option("--interval-us", a->interval_us,
                  "pause before each timed run, in microseconds (0 = back to back): the latency "
                  "of isolated requests, as a server sees them, with caches and intra-op "
                  "threads gone cold in between; the throughput then counts the pauses")
      ->check(CLI::Range(int64_t{0}, int64_t{10'000'000}));
  cmd->add_option(
      "--backend", a->backend,
      "backend when building from ONNX: cpu (oneDNN, as `larserve build`; the default when "
      "built) or reference (the plain, slow one)");
  cmd->add_option("--precision", a->precision,
                  "precision when building from ONNX: fp32 or bf16 (cpu backend)");
  cmd->add_option("--seed", a->seed, "seed of the random inputs");
  cmd->add_flag("--profile", a->profile, "per-layer timing (first thread)");
  cmd->add_flag("--json", a->json, "print the results as JSON");
  cmd->callback([a, run] { *run = [a] { return RunExec(*a); }; });
}

}  // namespace larserve::apps

namespace larserve::apps {

void RegisterInfer(CLI::App& app, RunFn* run) {
  auto a = std::make_shared<InferArgs>();
  CLI::App* cmd = app.add_subcommand("infer",
                                     "Run a model or plan once on inputs from .npy files and write "
                                     "every output as OUTPUT_NAME.npy.");
  cmd->add_option("model", a->model, "ONNX model or plan file")->required();
  cmd->add_option("--input,-i", a->inputs,
                  "input tensor: NAME=FILE.npy, or FILE.npy in input order")
      ->required();
  cmd->add_option("--output-dir,-o", a->output_dir, "directory for the output .npy files")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option(
      "--backend", a->backend,
      "backend when building from ONNX: reference (default; the plain, slow one) or cpu "
      "(oneDNN, as `larserve build --backend cpu`)");
  cmd->add_option("--precision", a->precision, "precision when building from ONNX");
  cmd->add_option("--threads", a->threads, "intra-op threads (0 = all)")
      ->check(CLI::Range(0, 1024));
  cmd->callback([a, run] { *run = [a] { return RunInfer(*a); }; });
}

}  // namespace larserve::apps
