#pragma once
// The gRPC frontend: service inference.GRPCInferenceService (proto/grpc_service.proto, Triton's
// definitions) over a ModelRepository. A thin translator (ARCHITECTURE.md): requests become
// serve::InferRequests for the model's Scheduler, responses and Statuses go back unchanged
// (our status codes are gRPC's).
//
// Built on gRPC's callback API: ModelInfer returns to gRPC at once and the response is sent when
// the batch it was in has run, from the scheduler's instance thread if no other request waits
// for the model, else from one of the frontend's responder threads so that the instance starts
// the next batch at once. No frontend thread waits for compute, and concurrent clients are
// limited by the instances, not by a thread pool. Raw input bytes are not copied: the engine
// reads them in the request message (or, alone in a batch, runs on them).
//
// System shared memory (shared_memory.h): SystemSharedMemoryRegister/Unregister/Status, and the
// tensor parameters shared_memory_region/_byte_size/_offset on inputs and requested outputs;
// outputs written to shared memory come back without data (an empty raw_output_contents).
//
// Threading: Start, Port and Shutdown from one thread; everything else runs on gRPC's threads.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "larserve/core/status.h"
#include "larserve/serve/model_repository.h"
#include "larserve/serve/shared_memory.h"

namespace larserve::serve {

struct GrpcServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8001;                 // 0: any free port (see GrpcServer::port())
  // Largest request or response message (bytes), both directions.
  int max_message_bytes = 64 << 20;
  // System shared memory regions, shared with the HTTP frontend as in Triton; null: its own.
  std::shared_ptr<SharedMemoryManager> shared_memory;
  // A lone small request may run on the gRPC thread that received it (Scheduler::Enqueue's
  // may_run_inline) instead of being handed to the instance thread. Off by default: the
  // receiving threads (gRPC's, and ModelInfer's completion-queue threads) serve every
  // connection, and the model's weights are then cold in the core's
  // caches (on a 16-core host a one-patch inference took 215 us there, 132-165 us on the
  // instance thread).
  bool run_inline = false;
  // Shutdown lets requests in flight and open streams finish for this long, then cancels them
  // (Triton's --exit-timeout-secs). Without a limit a client holding an idle ModelStreamInfer
  // stream open kept the server from ever stopping.
  std::chrono::milliseconds exit_timeout{30000};
};

class GrpcServer {
 public:
  // Binds and starts serving `repository` (which must outlive the server).
  static StatusOr<std::unique_ptr<GrpcServer>> Start(ModelRepository* repository,
                                                     const GrpcServerOptions& options);
  ~GrpcServer();  // Shutdown()
  int port() const;
  // Stops accepting calls, finishes the ones in flight, joins gRPC's threads.
  void Shutdown();

 private:
  GrpcServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace larserve::serve
