#pragma once
// The model repository: Triton's on-disk layout, loaded into engines and schedulers.
//
//   <repo>/<model>/config.pbtxt                 the model's configuration (serve/model_config.h)
//   <repo>/<model>/<version>/model.onnx|plan    one directory per version; numeric names not
//                                               starting with 0 (others are ignored, as Triton)
//
// Loading a model reads and validates its config, selects versions by version_policy (default
// latest 1), and for each version builds an engine (runtime::LoadModelOrPlan: an ONNX model is
// optimised and tuned with the repository's shared timing cache, a plan is loaded as built),
// checks the engine against the config, starts a Scheduler with the config's instances and
// batching, runs the config's model_warmup and marks the version READY. Any failure leaves that
// version UNAVAILABLE with the reason, which Index() shows; nothing here throws or aborts on a
// bad model. Reloading a loaded model swaps in the new versions once they are ready; if none
// of them comes up, the versions already serving stay (Triton's behaviour).
//
// Threading: every method may be called from any thread. Load and Unload are serialised (builds
// share the timing cache, which is not synchronised, and each build uses all cores anyway);
// Get and Index only take a short lock on the table, so requests are served while a model
// loads. Handles are shared: a request that holds one keeps its engine and scheduler alive
// through an Unload (capture the handle in the response callback for that). Unload stops taking
// new requests for the model, waits up to RepositoryOptions::unload_drain_timeout for the
// queued and running ones to finish, then stops the scheduler. The repository stops a
// scheduler before it lets go of its own reference, so a handle released last inside a response
// callback (on an instance thread) never makes the Scheduler join its own thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/proto/model_config.pb.h"
#include "larserve/runtime/engine.h"
#include "larserve/runtime/tactics.h"
#include "larserve/serve/scheduler.h"

namespace larserve::serve {

// Intra-op threads per instance for `threads` 0: the hardware threads, less a quarter on
// machines of 8 or more (left to the frontends and local clients), divided among the instances.
int AutoThreads(int instances);

struct RepositoryOptions {
  // true: load every model at Open (Triton's default model control mode "none"); false:
  // explicit mode, nothing is loaded until Load() (RepositoryModelLoad).
  bool load_all_at_start = true;
  // Engine backend for ONNX models: "" = "cpu" when built (oneDNN), else "reference".
  std::string backend;
  // Intra-op threads of each engine (0 = AutoThreads); a config's parameters
  // "intra_op_thread_count" overrides it for that model.
  int threads = 0;
  // SchedulerConfig::busy_wait_us of every model (serve --busy-wait-us).
  int64_t busy_wait_us = 0;
  // Tactic timings shared by every build of the repository, saved after builds that added to it.
  bool use_timing_cache = true;
  std::string timing_cache_path;  // "" = <repo>/.larserve_timing.cache
  // Run each config's model_warmup before marking a version READY.
  bool run_warmup = true;
  uint64_t warmup_seed = 0;  // random_data warm-up inputs derive from it
  std::chrono::milliseconds warmup_timeout{std::chrono::minutes(5)};
  // How long Unload (and a reload retiring old versions) waits for requests in flight.
  std::chrono::milliseconds unload_drain_timeout{std::chrono::seconds(30)};
};

enum class ModelState : uint8_t { kUnavailable, kLoading, kReady, kUnloading };
// "UNAVAILABLE", "LOADING", "READY", "UNLOADING": Triton's strings in RepositoryIndex.
std::string_view ModelStateName(ModelState state);

// One loaded, ready version of a model. Immutable; shared by the repository and the requests
// using it. The scheduler's methods are thread-safe (serve/scheduler.h).
struct LoadedModel {
  std::string name;
  int64_t version = 0;
  std::string path;  // the model file it was built from
  // The configuration as validated and completed (model_config.h); what ModelConfig returns.
  std::shared_ptr<const inference::ModelConfig> config;
  std::shared_ptr<const runtime::Engine> engine;
  std::shared_ptr<Scheduler> scheduler;
  // Tensors as clients see them (ModelMetadata): config names and types, with a leading -1
  // batch dimension when max_batch_size > 0. In config order.
  std::vector<runtime::TensorSpec> inputs, outputs;
};
using ModelHandle = std::shared_ptr<const LoadedModel>;

// One row of the repository index (RepositoryIndex): a version of a model, or the model alone
// (version "") when it was never loaded or failed before any version was reached.
struct ModelIndexEntry {
  std::string name;
  std::string version;
  ModelState state = ModelState::kUnavailable;
  std::string reason;  // why it is not READY ("" when READY)
};

class ModelRepository {
 public:
  // Opens the repository directory (it must exist) and, unless options say explicit mode,
  // loads every model in it. A model that fails to load does not fail Open: it is UNAVAILABLE
  // with its reason in Index(). Fails for a missing directory or an unknown backend.
  static StatusOr<std::unique_ptr<ModelRepository>> Open(const std::string& dir,
                                                         RepositoryOptions options = {});
  ~ModelRepository();  // stops every scheduler (queued requests fail with UNAVAILABLE)
  ModelRepository(const ModelRepository&) = delete;
  ModelRepository& operator=(const ModelRepository&) = delete;

  // Loads, or reloads, the model in <repo>/<name>, re-reading its config and version
  // directories. OK when every selected version is READY; otherwise the error names each
  // version that failed and why (the index shows the same).
  Status Load(const std::string& name);
  // Unloads every version of the model (UNAVAILABLE, reason "unloaded"). Unloading a model that
  // is not loaded is not an error; a name the repository never saw is NOT_FOUND.
  Status Unload(const std::string& name);

  // Every model directory of the repository (rescanned, so models added since Open appear),
  // and every model loaded, sorted by name then version.
  std::vector<ModelIndexEntry> Index() const;

  // A READY version: version 0 = the highest-numbered READY version. NOT_FOUND for a model or
  // version the repository has not loaded, UNAVAILABLE (with the reason) when it is not ready.
  StatusOr<ModelHandle> Get(std::string_view name, int64_t version = 0) const;
  // The same with the protocol's version string: "" = the latest ready; otherwise a number.
  StatusOr<ModelHandle> Get(std::string_view name, std::string_view version) const;
  // Every READY version of one model (highest first), or of every model (by name, then version
  // highest first) for statistics.
  std::vector<ModelHandle> ReadyVersions(std::string_view name) const;
  std::vector<ModelHandle> AllReady() const;

  const std::string& root() const { return root_; }
  const RepositoryOptions& options() const { return options_; }

 private:
  struct VersionEntry {
    ModelState state = ModelState::kUnavailable;
    std::string reason;
    ModelHandle model;  // set when READY (and while UNLOADING)
  };
  struct ModelEntry {
    bool attempted = false;  // Load was called at least once (else: "not loaded")
    // Model-level state, shown when `versions` is empty (never loaded, config failed, loading).
    ModelState state = ModelState::kUnavailable;
    std::string reason;
    std::map<int64_t, VersionEntry> versions;
  };

  ModelRepository(std::string root, RepositoryOptions options);
  std::vector<std::string> ScanModelNames() const;
  // Builds one version: engine, checks, scheduler, warm-up. Called with lifecycle_mutex_ held.
  StatusOr<ModelHandle> LoadVersion(const std::string& name, int64_t version,
                                    const std::string& version_dir,
                                    std::shared_ptr<const inference::ModelConfig> config);
  Status RunWarmup(const LoadedModel& model) const;
  // Waits for the model's requests in flight (up to unload_drain_timeout), then stops it.
  void Retire(const ModelHandle& model) const;
  void SetModelState(const std::string& name, ModelState state, std::string reason);

  const std::string root_;
  const RepositoryOptions options_;
  std::string backend_;                                 // resolved options_.backend
  std::shared_ptr<runtime::TimingCache> timing_cache_;  // null when not used
  std::string timing_cache_path_;

  std::mutex lifecycle_mutex_;  // serialises Load and Unload
  mutable std::mutex mutex_;    // guards models_
  std::map<std::string, ModelEntry, std::less<>> models_;
};

}  // namespace larserve::serve
