// `larserve serve`: the inference server over a Triton-layout model repository, speaking the
// KServe v2 / Triton gRPC protocol. Runs until SIGINT or SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <cstdio>

#include "commands.h"
#include "larserve/serve/grpc_server.h"
#include "larserve/serve/model_repository.h"

namespace larserve::apps {
namespace {

struct ServeArgs {
  std::string repository;
  std::string host = "127.0.0.1";
  int grpc_port = 8001;
  std::string model_control_mode = "none";
  int threads = 0;
  int max_message_mb = 64;
};

int RunServe(const ServeArgs& a) {
  if (a.model_control_mode != "none" && a.model_control_mode != "explicit") {
    return Fail("serve", "--model-control-mode must be none or explicit, got '" +
                             a.model_control_mode + "'");
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
  auto repository = serve::ModelRepository::Open(a.repository, ro);
  if (!repository.ok()) return Fail("serve", repository.status().message());
  for (const auto& e : (*repository)->Index()) {
    std::fprintf(stderr, "larserve serve: model %s version %s: %s%s%s\n", e.name.c_str(),
                 e.version.empty() ? "-" : e.version.c_str(),
                 std::string(serve::ModelStateName(e.state)).c_str(), e.reason.empty() ? "" : ": ",
                 e.reason.c_str());
  }
  serve::GrpcServerOptions go;
  go.host = a.host;
  go.port = a.grpc_port;
  go.max_message_bytes = a.max_message_mb << 20;
  auto grpc = serve::GrpcServer::Start(repository->get(), go);
  if (!grpc.ok()) return Fail("serve", grpc.status().message());
  // Tests and scripts read the port from this line (it is chosen by the system for port 0).
  std::printf("larserve serve: gRPC listening on %s:%d\n", a.host.c_str(), (*grpc)->port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "larserve serve: signal %d, shutting down\n", sig);
  (*grpc)->Shutdown();
  return 0;
}

}  // namespace

void RegisterServe(CLI::App& app, RunFn* run) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve the models of a Triton-layout model repository over the KServe v2 / Triton gRPC "
      "protocol (tritonclient, perf_analyzer and LArSoft's NuSonic client work unchanged). "
      "Stops on SIGINT or SIGTERM.");
  cmd->add_option("--model-repository", a->repository,
                  "directory of <model>/config.pbtxt and <model>/<version>/model.onnx|plan")
      ->required();
  cmd->add_option("--host", a->host, "address to listen on (default loopback only)");
  cmd->add_option("--grpc-port", a->grpc_port, "gRPC port (0: any free port, printed)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--model-control-mode", a->model_control_mode,
                  "none: load every model at start; explicit: only on RepositoryModelLoad");
  cmd->add_option("--threads", a->threads, "intra-op threads of each model's engine (0 = all)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--max-message-mb", a->max_message_mb,
                  "largest gRPC message accepted or sent, MiB")
      ->check(CLI::Range(1, 2047));
  cmd->callback([a, run] { *run = [a] { return RunServe(*a); }; });
}

}  // namespace larserve::apps
