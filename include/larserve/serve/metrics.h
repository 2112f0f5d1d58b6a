#pragma once
// Prometheus metrics of the served models, Triton's names and help texts, text exposition format
// 0.0.4, from each ready model version's Scheduler statistics (serve/scheduler.h). Every series is
// labelled {model="<name>",version="<version>"}:
//   counters nv_inference_request_success, nv_inference_request_failure (requests),
//            nv_inference_count (batch items), nv_inference_exec_count (executions),
//            nv_inference_{request,queue,compute_input,compute_infer,compute_output}_duration_us
//            (cumulative microseconds);
//   gauge    nv_inference_pending_request_count (requests queued or executing now).
// As Triton: the request duration and the queue and compute durations cover successful requests;
// count / exec_count is the mean dynamic batch. Triton's GPU utilisation and memory gauges
// (nv_gpu_*) are absent: this is a CPU-only server (no GPU backend serves models yet).
//
// Threading: FormatPrometheusMetrics is a pure function; PrometheusMetrics reads the repository's
// schedulers (thread-safe); the MetricsServer serves GET /metrics on threads of its own.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/serve/model_repository.h"
#include "larserve/serve/scheduler.h"

namespace larserve::serve {

// One model version's statistics, as sampled for the metrics.
struct ModelMetricsSample {
  std::string model;
  std::string version;
  ModelStats stats;
};

// The text exposition of `samples`: every family's # HELP and # TYPE lines, then one line per
// sample (in the order given; label values escaped as the format requires).
std::string FormatPrometheusMetrics(const std::vector<ModelMetricsSample>& samples);

// The same for every ready model version of the repository, sorted by name then version.
std::string PrometheusMetrics(const ModelRepository& repository);

// The Content-Type of the text format.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

struct MetricsServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8002;                 // 0: any free port (see MetricsServer::port())
};

// A small HTTP server answering GET /metrics (Triton's metrics port).
class MetricsServer {
 public:
  // `repository` must outlive the server. UNAVAILABLE when the address cannot be bound.
  static StatusOr<std::unique_ptr<MetricsServer>> Start(const ModelRepository* repository,
                                                        const MetricsServerOptions& options);
  ~MetricsServer();  // Shutdown()
  int port() const;
  void Shutdown();

 private:
  MetricsServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace larserve::serve
