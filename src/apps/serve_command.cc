// `larserve serve`: the inference server over a Triton-layout model repository, speaking the
// KServe v2 / Triton protocols (gRPC and HTTP/REST), with Prometheus metrics. Runs until SIGINT
// or SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>

#include "commands.h"
#include "larserve/serve/grpc_server.h"
#include "larserve/serve/http_server.h"
#include "larserve/serve/metrics.h"
#include "larserve/serve/model_repository.h"
#include "larserve/serve/shared_memory.h"

namespace larserve::apps {
namespace {

struct ServeArgs {
  std::string repository;
  std::string host = "127.0.0.1";
  int grpc_port = 8001;     // -1: no gRPC frontend
  int http_port = 8000;     // -1: no HTTP frontend
  int metrics_port = 8002;  // -1: no metrics endpoint
  int http_threads = 0;
  std::string model_control_mode = "none";
  int threads = 0;
  int max_message_mb = 64;
  // HTTP only by default: on the GPU machine's 16 cores a one-patch inference ran at 215 us on
  // gRPC's threads (a different core, cold caches, each time) against 132-165 us on the instance
  // thread, outweighing the hand-off saved (docs/perf/server.md).
  std::string run_inline = "http";
  // Instances (and an HTTP worker) poll for this long before sleeping: one-patch latency through
  // the server fell by 65-160 us on the development VM (docs/perf/server.md).
  int busy_wait_us = 1000;
  // On SIGINT / SIGTERM, how long requests in flight and open streams may take (Triton's flag).
  int exit_timeout_secs = 30;
};

int RunServe(const ServeArgs& a) {
  if (a.model_control_mode != "none" && a.model_control_mode != "explicit") {
    return Fail("serve", "--model-control-mode must be none or explicit, got '" +
                             a.model_control_mode + "'");
  }
  bool inline_grpc = false, inline_http = false;
  if (a.run_inline != "none") {
    std::stringstream list(a.run_inline);
    for (std::string item; std::getline(list, item, ',');) {
      if (item == "grpc") {
        inline_grpc = true;
      } else if (item == "http") {
        inline_http = true;
      } else {
        return Fail("serve", "--run-inline takes grpc, http, both comma-separated, or none; got '" +
                                 a.run_inline + "'");
      }
    }
  }
  // Block the stop signals before any thread starts, so that gRPC's and the schedulers' threads
  // inherit the mask and this thread alone receives them (sigwait below).
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  serve::RepositoryOptions ro;
  ro.load_all_at_start = a.model_control_mode == "none";
  ro.threads = a.threads;
  ro.busy_wait_us = a.busy_wait_us;
  auto repository = serve::ModelRepository::Open(a.repository, ro);
  if (!repository.ok()) return Fail("serve", repository.status().message());
  for (const auto& e : (*repository)->Index()) {
    std::fprintf(stderr, "larserve serve: model %s version %s: %s%s%s\n", e.name.c_str(),
                 e.version.empty() ? "-" : e.version.c_str(),
                 std::string(serve::ModelStateName(e.state)).c_str(), e.reason.empty() ? "" : ": ",
                 e.reason.c_str());
  }
  // Tests and scripts read the ports from the "listening on" lines (chosen by the system for
  // port 0); the gRPC line comes first.
  // Shared memory regions registered through either frontend serve both (as in Triton).
  auto shared_memory = std::make_shared<serve::SharedMemoryManager>();
  std::unique_ptr<serve::GrpcServer> grpc;
  if (a.grpc_port >= 0) {
    serve::GrpcServerOptions go;
    go.host = a.host;
    go.port = a.grpc_port;
    go.max_message_bytes = a.max_message_mb << 20;
    go.shared_memory = shared_memory;
    go.run_inline = inline_grpc;
    go.exit_timeout = std::chrono::seconds(a.exit_timeout_secs);
    auto started = serve::GrpcServer::Start(repository->get(), go);
    if (!started.ok()) return Fail("serve", started.status().message());
    grpc = std::move(started).value();
    std::printf("larserve serve: gRPC listening on %s:%d\n", a.host.c_str(), grpc->port());
  }
  std::unique_ptr<serve::HttpServer> http;
  if (a.http_port >= 0) {
    serve::HttpServerOptions ho;
    ho.host = a.host;
    ho.port = a.http_port;
    ho.max_request_bytes = static_cast<std::size_t>(a.max_message_mb) << 20;
    ho.threads = a.http_threads;
    ho.shared_memory = shared_memory;
    ho.run_inline = inline_http;
    ho.busy_wait_us = a.busy_wait_us;
    auto started = serve::HttpServer::Start(repository->get(), ho);
    if (!started.ok()) return Fail("serve", started.status().message());
    http = std::move(started).value();
    std::printf("larserve serve: HTTP listening on %s:%d\n", a.host.c_str(), http->port());
  }
  std::unique_ptr<serve::MetricsServer> metrics;
  if (a.metrics_port >= 0) {
    serve::MetricsServerOptions mo;
    mo.host = a.host;
    mo.port = a.metrics_port;
    auto started = serve::MetricsServer::Start(repository->get(), mo);
    if (!started.ok()) return Fail("serve", started.status().message());
    metrics = std::move(started).value();
    std::printf("larserve serve: metrics listening on %s:%d/metrics\n", a.host.c_str(),
                metrics->port());
  }
  if (!grpc && !http) std::fprintf(stderr, "larserve serve: warning: no frontend enabled\n");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "larserve serve: signal %d, shutting down\n", sig);
  // Frontends first (their requests in flight finish), then the repository stops the schedulers.
  if (grpc) grpc->Shutdown();
  if (http) http->Shutdown();
  if (metrics) metrics->Shutdown();
  return 0;
}

}  // namespace

void RegisterServe(CLI::App& app, RunFn* run) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve the models of a Triton-layout model repository over the KServe v2 / Triton gRPC and "
      "HTTP/REST protocols, with Prometheus metrics (tested with NVIDIA's tritonclient, "
      "unmodified, and curl). Stops on SIGINT or SIGTERM.");
  cmd->add_option("--model-repository", a->repository,
                  "directory of <model>/config.pbtxt and <model>/<version>/model.onnx|plan")
      ->required();
  cmd->add_option("--host", a->host, "address to listen on (default loopback only)");
  cmd->add_option("--grpc-port", a->grpc_port, "gRPC port (0: any free port, printed; -1: off)")
      ->check(CLI::Range(-1, 65535));
  cmd->add_option("--http-port", a->http_port,
                  "HTTP/REST port (0: any free port, printed; -1: off)")
      ->check(CLI::Range(-1, 65535));
  cmd->add_option("--metrics-port", a->metrics_port,
                  "Prometheus metrics port, GET /metrics (0: any free port, printed; -1: off)")
      ->check(CLI::Range(-1, 65535));
  cmd->add_option("--http-threads", a->http_threads,
                  "most HTTP workers, i.e. connections served at once, started as connections "
                  "arrive (0: 1024)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--model-control-mode", a->model_control_mode,
                  "none: load every model at start; explicit: only on RepositoryModelLoad");
  cmd->add_option("--threads", a->threads,
                  "intra-op threads of each model instance (0 = the cores, less a quarter on "
                  "machines of 8 or more, divided among the model's instances)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--run-inline", a->run_inline,
                  "with --busy-wait-us 0: frontends whose threads run a lone small request "
                  "themselves when an instance is idle, saving two thread hand-offs (grpc, http, "
                  "grpc,http or none; gRPC's threads change cores between calls, so its requests "
                  "go to the instance)")
      ->capture_default_str();
  cmd->add_option("--busy-wait-us", a->busy_wait_us,
                  "after its last batch, one instance per model (and one HTTP worker waiting for "
                  "a response) polls for work this long before sleeping: lone requests then skip "
                  "a thread wake-up and find the model in a warm core's caches, at the cost of up "
                  "to one core per model while requests keep coming; with it on, nothing runs "
                  "inline (--run-inline applies with 0 only); 0: never poll")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--exit-timeout-secs", a->exit_timeout_secs,
                  "on SIGINT or SIGTERM, how long requests in flight and open gRPC streams may "
                  "take before they are cancelled (as Triton's flag)")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  cmd->add_option("--max-message-mb", a->max_message_mb,
                  "largest gRPC message accepted or sent, and largest HTTP request body, MiB")
      ->check(CLI::Range(1, 2047));
  cmd->callback([a, run] { *run = [a] { return RunServe(*a); }; });
}

}  // namespace larserve::apps
