#include "larserve/serve/model_repository.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <optional>
#include <set>
#include <thread>

#include "larserve/core/logging.h"
#include "larserve/core/rng.h"
#include "larserve/runtime/backend.h"
#include "larserve/serve/model_config.h"

namespace larserve::serve {
namespace {

namespace fs = std::filesystem;

constexpr char kConfigFile[] = "config.pbtxt";
constexpr char kTimingCacheFile[] = ".larserve_timing.cache";

// Triton's rule for version directories: a decimal number not starting with 0; anything else in
// the model directory is ignored.
std::optional<int64_t> ParseVersionDir(std::string_view name) {
  if (name.empty() || name[0] == '0') return std::nullopt;
  int64_t v = 0;
  const auto r = std::from_chars(name.data(), name.data() + name.size(), v);
  if (r.ec != std::errc() || r.ptr != name.data() + name.size() || v < 1) return std::nullopt;
  return v;
}

// A model name is a directory directly under the repository: no path tricks, no hidden files.
Status CheckModelName(std::string_view name) {
  if (name.empty()) return InvalidArgument("empty model name");
  if (name[0] == '.' || name.find('/') != std::string_view::npos ||
      name.find('\\') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return InvalidArgument("'" + std::string(name) +
                           "' is not a model name (a directory directly under the repository)");
  }
  return Status::Ok();
}

// The versions found on disk, ascending.
std::vector<int64_t> ScanVersions(const fs::path& model_dir) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (fs::directory_iterator it(model_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    if (auto v = ParseVersionDir(it->path().filename().string())) versions.push_back(*v);
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

// The model file of a version directory: default_model_filename if set, else by platform:
// ONNX Runtime models are model.onnx, TensorRT models model.plan, and without a platform a
// plan is preferred (it loads without optimising or tuning) over an ONNX file.
StatusOr<std::string> FindModelFile(const inference::ModelConfig& c, const fs::path& dir) {
  std::vector<std::string> candidates;
  if (!c.default_model_filename().empty()) {
    candidates = {c.default_model_filename()};
  } else if (c.platform() == "onnxruntime_onnx" || c.backend() == "onnxruntime") {
    candidates = {"model.onnx"};
  } else if (c.platform() == "tensorrt_plan" || c.backend() == "tensorrt") {
    candidates = {"model.plan"};
  } else {
    candidates = {"model.plan", "model.onnx"};
  }
  std::error_code ec;
  for (const auto& f : candidates) {
    if (fs::is_regular_file(dir / f, ec)) return (dir / f).string();
  }
  std::string names;
  for (const auto& f : candidates) names += (names.empty() ? "" : " or ") + f;
  return NotFound("no " + names + " in " + dir.string());
}

std::string JoinVersions(const std::vector<int64_t>& versions) {
  std::string s;
  for (int64_t v : versions) s += (s.empty() ? "" : ", ") + std::to_string(v);
  return s;
}

void FillRandom(Tensor& t, Rng& rng) {
  const int64_t n = t.num_elements();
  switch (t.dtype()) {
    case DType::kFloat32:
      for (float& x : t.Span<float>()) x = static_cast<float>(rng.Uniform());
      break;
    case DType::kFloat64:
      for (double& x : t.Span<double>()) x = rng.Uniform();
      break;
    case DType::kFloat16:
      // Bit patterns of [0.5, 1): exponent 14, random mantissa.
      for (uint16_t& x : t.Span<uint16_t>()) x = 0x3800 | (rng.NextU64() & 0x3ff);
      break;
    case DType::kBFloat16:
      for (uint16_t& x : t.Span<uint16_t>()) x = 0x3f00 | (rng.NextU64() & 0x7f);
      break;
    case DType::kBool:
      for (uint8_t& x : t.Span<uint8_t>()) x = rng.NextU64() & 1;
      break;
    default: {
      // Integers: small non-negative values, valid as indices for most models.
      auto* bytes = static_cast<uint8_t*>(t.data());
      const std::size_t size = DTypeSize(t.dtype());
      std::memset(bytes, 0, static_cast<std::size_t>(n) * size);
      for (int64_t i = 0; i < n; ++i) bytes[i * size] = static_cast<uint8_t>(rng.NextU64() & 3);
      break;
    }
  }
}

}  // namespace

std::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kUnavailable:
      return "UNAVAILABLE";
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kReady:
      return "READY";
    case ModelState::kUnloading:
      return "UNLOADING";
  }
  return "UNAVAILABLE";
}

ModelRepository::ModelRepository(std::string root, RepositoryOptions options)
    : root_(std::move(root)), options_(std::move(options)) {}

ModelRepository::~ModelRepository() {
  std::lock_guard lifecycle(lifecycle_mutex_);
  std::vector<ModelHandle> running;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, entry] : models_) {
      for (auto& [v, ve] : entry.versions) {
        if (ve.model) running.push_back(std::move(ve.model));
      }
    }
    models_.clear();
  }
  for (const auto& m : running) m->scheduler->Stop();
}

StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Open(const std::string& dir,
                                                                 RepositoryOptions options) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return NotFound("model repository " + dir + " does not exist");
  if (!fs::is_directory(dir, ec)) {
    return InvalidArgument("model repository " + dir + " is not a directory");
  }
  const std::string root = fs::absolute(dir, ec).lexically_normal().string();
  std::unique_ptr<ModelRepository> repo(new ModelRepository(ec ? dir : root, std::move(options)));

  repo->backend_ = repo->options_.backend;
  if (repo->backend_.empty()) repo->backend_ = runtime::FindBackend("cpu") ? "cpu" : "reference";
  if (!runtime::FindBackend(repo->backend_)) {
    std::string names;
    for (auto n : runtime::BackendNames()) names += (names.empty() ? "" : ", ") + std::string(n);
    return InvalidArgument("unknown backend '" + repo->backend_ + "' (this build has: " + names +
                           ")");
  }
  if (repo->options_.threads < 0) {
    return InvalidArgument("threads must be >= 0 (0 = all cores), not " +
                           std::to_string(repo->options_.threads));
  }

  if (repo->options_.use_timing_cache) {
    repo->timing_cache_path_ = repo->options_.timing_cache_path.empty()
                                   ? (fs::path(repo->root_) / kTimingCacheFile).string()
                                   : repo->options_.timing_cache_path;
    auto cache = runtime::TimingCache::Load(repo->timing_cache_path_);
    if (cache.ok()) {
      repo->timing_cache_ = std::make_shared<runtime::TimingCache>(std::move(cache).value());
    } else {
      // A cache only saves tuning time: a bad one must not keep models from loading.
      LARSERVE_LOG(kWarning) << "model repository: ignoring the timing cache (replaced at the "
                                "next save): "
                             << cache.status().message();
      repo->timing_cache_ = std::make_shared<runtime::TimingCache>();
    }
  }

  {
    // Every model directory appears in the index, loaded or not.
    std::lock_guard lock(repo->mutex_);
    for (const auto& name : repo->ScanModelNames()) {
      repo->models_[name].reason = "not loaded";
    }
  }
  if (repo->options_.load_all_at_start) {
    for (const auto& name : repo->ScanModelNames()) {
      if (Status s = repo->Load(name); !s.ok()) {
        LARSERVE_LOG(kWarning) << "model repository: " << s.message();
      }
    }
  }
  return repo;
}

std::vector<std::string> ModelRepository::ScanModelNames() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (!it->is_directory(ec2)) continue;
    std::string name = it->path().filename().string();
    if (CheckModelName(name).ok()) names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

void ModelRepository::SetModelState(const std::string& name, ModelState state, std::string reason) {
  std::lock_guard lock(mutex_);
  ModelEntry& e = models_[name];
  e.state = state;
  e.reason = std::move(reason);
}

Status ModelRepository::Load(const std::string& name) {
  RETURN_IF_ERROR(CheckModelName(name));
  std::lock_guard lifecycle(lifecycle_mutex_);
  const fs::path model_dir = fs::path(root_) / name;
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) {
    return NotFound("model '" + name + "' is not in the repository " + root_ + " (no directory " +
                    model_dir.string() + ")");
  }

  bool serving = false;  // versions of an earlier load are READY and keep serving meanwhile
  {
    std::lock_guard lock(mutex_);
    ModelEntry& e = models_[name];
    e.attempted = true;
    for (const auto& [v, ve] : e.versions) serving = serving || ve.state == ModelState::kReady;
    if (!serving) {
      e.versions.clear();
      e.state = ModelState::kLoading;
      e.reason.clear();
    }
  }
  // A failure before any version is reached: the model alone is UNAVAILABLE, unless an earlier
  // load keeps serving.
  const auto fail_model = [&](const Status& s) {
    if (!serving) SetModelState(name, ModelState::kUnavailable, s.message());
    return s;
  };

  auto parsed = ReadModelConfig((model_dir / kConfigFile).string());
  if (!parsed.ok()) return fail_model(parsed.status().WithContext("model '" + name + "'"));
  inference::ModelConfig config = std::move(parsed).value();
  if (config.name().empty()) config.set_name(name);
  if (config.name() != name) {
    return fail_model(InvalidArgument("model '" + name + "': config.pbtxt names it '" +
                                      config.name() + "'; the name must be the directory's"));
  }
  if (Status s = ValidateModelConfig(config); !s.ok()) return fail_model(s);
  CompleteModelConfig(&config);
  auto shared_config = std::make_shared<const inference::ModelConfig>(std::move(config));

  // Versions selected by the policy; a specific version with no directory is reported as such.
  const std::vector<int64_t> on_disk = ScanVersions(model_dir);
  std::vector<int64_t> selected;
  const auto& policy = shared_config->version_policy();
  if (policy.has_specific()) {
    selected.assign(policy.specific().versions().begin(), policy.specific().versions().end());
    std::sort(selected.begin(), selected.end());
  } else if (policy.has_all()) {
    selected = on_disk;
  } else {
    const std::size_t n = std::max<uint32_t>(policy.latest().num_versions(), 1);
    selected.assign(on_disk.end() - std::min(n, on_disk.size()), on_disk.end());
  }
  if (selected.empty()) {
    return fail_model(NotFound("model '" + name +
                               "' has no version directory (a numbered "
                               "directory such as " +
                               (model_dir / "1").string() + " holding the model file)"));
  }

  const std::size_t timings_before = timing_cache_ ? timing_cache_->size() : 0;
  std::map<int64_t, VersionEntry> loaded;
  std::vector<std::string> failures;
  StatusCode first_failure = StatusCode::kOk;
  for (int64_t v : selected) {
    VersionEntry& ve = loaded[v];
    const fs::path dir = model_dir / std::to_string(v);
    StatusOr<ModelHandle> m = std::binary_search(on_disk.begin(), on_disk.end(), v)
                                  ? LoadVersion(name, v, dir.string(), shared_config)
                                  : StatusOr<ModelHandle>(NotFound(
                                        "version_policy asks for version " + std::to_string(v) +
                                        " but there is no directory " + dir.string()));
    if (m.ok()) {
      ve.state = ModelState::kReady;
      ve.model = std::move(m).value();
    } else {
      ve.state = ModelState::kUnavailable;
      ve.reason = m.status().message();
      failures.push_back("version " + std::to_string(v) + ": " + ve.reason);
      if (first_failure == StatusCode::kOk) first_failure = m.status().code();
    }
  }
  if (timing_cache_ && timing_cache_->size() != timings_before) {
    if (Status s = timing_cache_->Save(timing_cache_path_); !s.ok()) {
      LARSERVE_LOG(kWarning) << "model repository: cannot save the timing cache: " << s.message();
    }
  }

  const bool any_ready = failures.size() < selected.size();
  std::vector<ModelHandle> retired;
  if (any_ready || !serving) {
    std::lock_guard lock(mutex_);
    ModelEntry& e = models_[name];
    for (auto& [v, ve] : e.versions) {
      if (ve.model) retired.push_back(std::move(ve.model));
    }
    e.versions = std::move(loaded);
    e.state = any_ready ? ModelState::kReady : ModelState::kUnavailable;
    e.reason.clear();
  }
  // Requests already holding a replaced version finish on it.
  for (const auto& m : retired) Retire(m);

  if (failures.empty()) {
    LARSERVE_LOG(kInfo) << "model repository: loaded '" << name << "' versions "
                        << JoinVersions(selected);
    return Status::Ok();
  }
  std::string message = "model '" + name + "' failed to load";
  if (!any_ready && serving) message += " (the versions loaded before keep serving)";
  for (const auto& f : failures) message += "; " + f;
  return Status(first_failure, message);
}

int AutoThreads(int instances) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // On 8 cores or more, a quarter is left to the frontends (gRPC and HTTP threads, responses)
  // and to clients on the same node. GPU machine's 16 cores, perf_analyzer on loopback, batch
  // 256 (docs/perf/server.md): 1 x 16 engine threads gave about half the in-process throughput
  // and 2 x 8 about 0.7 (OpenMP teams waiting on preempted members), 1 x 12 and 2 x 6 all of it.
  const int engine_cores = cores >= 8 ? cores - cores / 4 : cores;
  return std::max(1, engine_cores / std::max(1, instances));
}

StatusOr<ModelHandle> ModelRepository::LoadVersion(
    const std::string& name, int64_t version, const std::string& version_dir,
    std::shared_ptr<const inference::ModelConfig> config) {
  ASSIGN_OR_RETURN(const std::string path, FindModelFile(*config, version_dir));
  ASSIGN_OR_RETURN(const EngineSettings settings, EngineSettingsFromConfig(*config));
  ASSIGN_OR_RETURN(SchedulerConfig scheduler_config, SchedulerConfigFromConfig(*config, version));
  scheduler_config.busy_wait_us = options_.busy_wait_us;

  runtime::BuildOptions options;
  options.backend = backend_;
  options.precision = settings.precision;
  options.threads = settings.threads >= 0 ? settings.threads : options_.threads;
  if (options.threads == 0) options.threads = AutoThreads(scheduler_config.instances);
  options.batch_min = settings.batch_min;
  options.batch_opt = settings.batch_opt;
  options.batch_max = settings.batch_max;
  options.timing_cache = timing_cache_;
  auto built = runtime::LoadModelOrPlan(path, options);
  if (!built.ok()) return built.status().WithContext(path);
  std::shared_ptr<const runtime::Engine> engine(std::move(built).value());

  // A plan is loaded as it was built: it must fit the configuration.
  const runtime::BuildOptions& got = engine->options();
  if (settings.precision_set && got.precision != settings.precision) {
    return FailedPrecondition(
        path + " was built for precision " + std::string(runtime::PrecisionName(got.precision)) +
        " but config.pbtxt asks for " + std::string(runtime::PrecisionName(settings.precision)) +
        "; rebuild it or change the config");
  }
  if (config->max_batch_size() > 0 && got.batch_max > 0 &&
      (got.batch_max < config->max_batch_size() || got.batch_min > 1)) {
    return FailedPrecondition(
        path + " was built for batches " + std::to_string(got.batch_min) + " to " +
        std::to_string(got.batch_max) + " but config.pbtxt has max_batch_size " +
        std::to_string(config->max_batch_size()) + "; rebuild it with --batch 1:OPT:" +
        std::to_string(config->max_batch_size()) + " or lower max_batch_size");
  }
  RETURN_IF_ERROR(CheckConfigAgainstEngine(*config, engine->inputs(), engine->outputs()));

  ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler,
                   Scheduler::Create(engine, std::move(scheduler_config)));

  auto model = std::make_shared<LoadedModel>();
  model->name = name;
  model->version = version;
  model->path = path;
  model->config = std::move(config);
  model->engine = std::move(engine);
  model->scheduler = std::move(scheduler);
  model->inputs = ConfigInputs(*model->config);
  model->outputs = ConfigOutputs(*model->config);
  if (options_.run_warmup) {
    if (Status s = RunWarmup(*model); !s.ok()) {
      model->scheduler->Stop();
      return s;
    }
  }
  return ModelHandle(std::move(model));
}

Status ModelRepository::RunWarmup(const LoadedModel& model) const {
  const inference::ModelConfig& c = *model.config;
  for (int w = 0; w < c.model_warmup_size(); ++w) {
    const auto& warmup = c.model_warmup(w);
    const std::string what = "model '" + model.name + "' version " + std::to_string(model.version) +
                             " warm-up '" + warmup.name() + "'";
    Rng rng(DeriveSeed(options_.warmup_seed,
                       {std::hash<std::string>{}(model.name), static_cast<uint64_t>(model.version),
                        static_cast<uint64_t>(w)}));
    InferRequest request;
    request.id = "warmup:" + warmup.name();
    const int64_t batch = std::max<int64_t>(warmup.batch_size(), 1);
    for (const auto& in : c.input()) {
      const auto& data = warmup.inputs().at(in.name());  // ValidateModelConfig checked it
      std::vector<int64_t> dims;
      if (c.max_batch_size() > 0) dims.push_back(batch);
      dims.insert(dims.end(), data.dims().begin(), data.dims().end());
      ASSIGN_OR_RETURN(const DType dtype, DTypeFromDataType(in.data_type()));
      auto tensor = Tensor::Create(dtype, Shape(std::move(dims)));
      if (!tensor.ok()) return tensor.status().WithContext(what);
      if (data.random_data()) FillRandom(tensor.value(), rng);
      request.inputs.push_back({in.name(), std::move(tensor).value()});
    }
    const uint32_t count = std::max<uint32_t>(warmup.count(), 1);
    for (uint32_t i = 0; i < count; ++i) {
      // Shared: the callback may come after a timeout gave up waiting for it.
      auto done = std::make_shared<std::promise<Status>>();
      std::future<Status> result = done->get_future();
      request.arrival = Clock::now();
      model.scheduler->Enqueue(request,
                               [done](InferResponse r) { done->set_value(std::move(r.status)); });
      if (result.wait_for(options_.warmup_timeout) != std::future_status::ready) {
        return Status(StatusCode::kDeadlineExceeded,
                      what + " did not finish within " +
                          std::to_string(options_.warmup_timeout.count()) + " ms");
      }
      if (Status s = result.get(); !s.ok()) return s.WithContext(what + " failed");
    }
  }
  return Status::Ok();
}

void ModelRepository::Retire(const ModelHandle& model) const {
  const auto deadline = Clock::now() + options_.unload_drain_timeout;
  while (model->scheduler->Stats().pending > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (const int64_t pending = model->scheduler->Stats().pending; pending > 0) {
    LARSERVE_LOG(kWarning) << "model repository: '" << model->name << "' version " << model->version
                           << ": " << pending
                           << " requests still in flight after the drain timeout are failed";
  }
  model->scheduler->Stop();
}

Status ModelRepository::Unload(const std::string& name) {
  RETURN_IF_ERROR(CheckModelName(name));
  std::lock_guard lifecycle(lifecycle_mutex_);
  std::vector<ModelHandle> retired;
  {
    std::lock_guard lock(mutex_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      std::error_code ec;
      if (!fs::is_directory(fs::path(root_) / name, ec)) {
        return NotFound("unknown model '" + name + "'");
      }
      return Status::Ok();
    }
    for (auto& [v, ve] : it->second.versions) {
      if (ve.model) {
        retired.push_back(ve.model);
        ve.state = ModelState::kUnloading;
        ve.reason.clear();
      }
    }
  }
  for (const auto& m : retired) Retire(m);
  {
    std::lock_guard lock(mutex_);
    ModelEntry& e = models_[name];
    if (!e.attempted) return Status::Ok();  // never loaded: stays "not loaded"
    for (auto& [v, ve] : e.versions) {
      ve.model.reset();
      ve.state = ModelState::kUnavailable;
      ve.reason = "unloaded";
    }
    e.state = ModelState::kUnavailable;
    e.reason = "unloaded";
  }
  LARSERVE_LOG(kInfo) << "model repository: unloaded '" << name << "'";
  return Status::Ok();
}

std::vector<ModelIndexEntry> ModelRepository::Index() const {
  const std::vector<std::string> on_disk = ScanModelNames();
  std::vector<ModelIndexEntry> out;
  std::lock_guard lock(mutex_);
  std::set<std::string, std::less<>> names(on_disk.begin(), on_disk.end());
  for (const auto& [name, e] : models_) names.insert(name);
  for (const auto& name : names) {
    const auto it = models_.find(name);
    if (it == models_.end()) {
      out.push_back({name, "", ModelState::kUnavailable, "not loaded"});
      continue;
    }
    const ModelEntry& e = it->second;
    if (e.versions.empty()) {
      out.push_back({name, "", e.state, e.reason});
      continue;
    }
    for (const auto& [v, ve] : e.versions) {
      out.push_back({name, std::to_string(v), ve.state, ve.reason});
    }
  }
  return out;
}

StatusOr<ModelHandle> ModelRepository::Get(std::string_view name, int64_t version) const {
  std::lock_guard lock(mutex_);
  const auto it = models_.find(name);
  if (it == models_.end() || !it->second.attempted) {
    return NotFound("unknown model '" + std::string(name) + "' (not loaded)");
  }
  const ModelEntry& e = it->second;
  const std::string model = "model '" + std::string(name) + "'";
  if (version == 0) {
    for (auto v = e.versions.rbegin(); v != e.versions.rend(); ++v) {
      if (v->second.state == ModelState::kReady) return v->second.model;
    }
    std::string why = e.versions.empty() ? std::string(ModelStateName(e.state)) +
                                               (e.reason.empty() ? "" : ": " + e.reason)
                                         : "";
    for (const auto& [v, ve] : e.versions) {
      why += (why.empty() ? "" : "; ") + std::string("version ") + std::to_string(v) + " " +
             std::string(ModelStateName(ve.state)) + (ve.reason.empty() ? "" : ": " + ve.reason);
    }
    return Unavailable(model + " has no ready version (" + why + ")");
  }
  const auto v = e.versions.find(version);
  if (v == e.versions.end()) {
    std::string versions;
    for (const auto& [n, ve] : e.versions)
      versions += (versions.empty() ? "" : ", ") + std::to_string(n);
    return NotFound(model + " has no version " + std::to_string(version) +
                    (versions.empty() ? "" : " (versions: " + versions + ")"));
  }
  if (v->second.state != ModelState::kReady) {
    return Unavailable(model + " version " + std::to_string(version) + " is " +
                       std::string(ModelStateName(v->second.state)) +
                       (v->second.reason.empty() ? "" : ": " + v->second.reason));
  }
  return v->second.model;
}

StatusOr<ModelHandle> ModelRepository::Get(std::string_view name, std::string_view version) const {
  if (version.empty()) return Get(name, int64_t{0});
  int64_t v = 0;
  const auto r = std::from_chars(version.data(), version.data() + version.size(), v);
  if (r.ec != std::errc() || r.ptr != version.data() + version.size() || v < 1) {
    return InvalidArgument("model '" + std::string(name) + "': version '" + std::string(version) +
                           "' is not a version number (1, 2, ...; empty for the latest)");
  }
  return Get(name, v);
}

std::vector<ModelHandle> ModelRepository::ReadyVersions(std::string_view name) const {
  std::vector<ModelHandle> out;
  std::lock_guard lock(mutex_);
  const auto it = models_.find(name);
  if (it == models_.end()) return out;
  for (auto v = it->second.versions.rbegin(); v != it->second.versions.rend(); ++v) {
    if (v->second.state == ModelState::kReady) out.push_back(v->second.model);
  }
  return out;
}

std::vector<ModelHandle> ModelRepository::AllReady() const {
  std::vector<ModelHandle> out;
  std::lock_guard lock(mutex_);
  for (const auto& [name, e] : models_) {
    for (auto v = e.versions.rbegin(); v != e.versions.rend(); ++v) {
      if (v->second.state == ModelState::kReady) out.push_back(v->second.model);
    }
  }
  return out;
}

}  // namespace larserve::serve
