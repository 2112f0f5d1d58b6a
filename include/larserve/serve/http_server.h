#pragma once
// The HTTP/REST frontend: the KServe v2 / Triton HTTP protocol over a ModelRepository, on
// cpp-httplib. A thin translator (ARCHITECTURE.md), like the gRPC frontend (grpc_server.h), with
// which it shares the protocol answers: requests become serve::InferRequests for the model's
// Scheduler, and Statuses become HTTP codes (NOT_FOUND 404, UNAVAILABLE 503, UNIMPLEMENTED 501,
// INTERNAL 500, anything else 400) with the body {"error": "<message>"}.
//
// Endpoints (Triton's paths; {m} a model, [/versions/{v}] optional, empty = the latest ready):
//   GET  /v2/health/live, /v2/health/ready, /v2 (server metadata)
//   GET  /v2/models/{m}[/versions/{v}]            model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready      200 when ready, else 400 (as Triton)
//   GET  /v2/models/{m}[/versions/{v}]/config     config.pbtxt as JSON (ModelConfigToJson)
//   GET  /v2/models/{m}[/versions/{v}]/stats, /v2/models/stats   Triton's statistics JSON
//   POST /v2/models/{m}[/versions/{v}]/infer      JSON tensors, and the binary tensor extension
//   POST /v2/repository/index, /v2/repository/models/{m}/load, /v2/repository/models/{m}/unload
//   GET  /v2/systemsharedmemory[/region/{name}]/status      registered regions (JSON array)
//   POST /v2/systemsharedmemory/region/{name}/register      {"key", "offset", "byte_size"}
//   POST /v2/systemsharedmemory[/region/{name}]/unregister
//   CUDA shared memory, trace and logging endpoints answer 501.
// Inputs and requested outputs with the parameters shared_memory_region, shared_memory_byte_size
// (and shared_memory_offset) are read from and written to a registered region (shared_memory.h);
// such outputs come back as name, datatype and shape only (as Triton: NVIDIA's C++ client reads
// "binary_data_size" from any output that has parameters).
// Binary tensor extension: with the header Inference-Header-Content-Length: N, the body is N bytes
// of JSON followed by the raw (row-major, little-endian) bytes of the inputs whose parameters
// carry "binary_data_size", in the order of "inputs". Outputs asked for as binary ("parameters":
// {"binary_data": true} on the output, or {"binary_data_output": true} on the request) come back
// the same way, with "parameters": {"binary_data_size": N}. FP16 and BF16 travel only as binary
// data (JSON has no such numbers): such outputs are always sent binary.
//
// Threading: httplib's model, one worker per open connection (a keep-alive connection holds its
// worker until it closes or idles for 5 s). Workers are started as connections arrive, up to
// options.threads, so every open connection is served as long as there are fewer. An inference
// waits on its worker for the scheduler's response; the compute itself runs on the scheduler's
// instances as for gRPC. Start, port and Shutdown from one thread.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "larserve/core/status.h"
#include "larserve/serve/model_repository.h"
#include "larserve/serve/shared_memory.h"

namespace larserve::serve {

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8000;                 // 0: any free port (see HttpServer::port())
  // Largest request body (bytes, after decompression); larger ones get 413. The same limit as
  // the gRPC frontend's max_message_bytes.
  std::size_t max_request_bytes = std::size_t{64} << 20;
  // Most worker threads (connections served at once), started as connections need them; 0:
  // kDefaultHttpThreads.
  int threads = 0;
  // System shared memory regions, shared with the gRPC frontend as in Triton; null: its own.
  std::shared_ptr<SharedMemoryManager> shared_memory;
  // A lone small request may run on the connection's worker thread (Scheduler::Enqueue's
  // may_run_inline) instead of being handed to the instance thread.
  bool run_inline = true;
  // Busy waiting (serve --busy-wait-us): a worker whose request found the model's queue empty
  // polls for the response for up to this long before it sleeps, one worker at a time; the
  // wake-up of a sleeping worker cost about 60 us of a one-patch request's latency
  // (docs/perf/server.md). 0: workers sleep at once.
  int64_t busy_wait_us = 0;
};

inline constexpr std::size_t kDefaultHttpThreads = 1024;

class HttpServer {
 public:
  // Binds and starts serving `repository` (which must outlive the server). UNAVAILABLE when the
  // address cannot be bound.
  static StatusOr<std::unique_ptr<HttpServer>> Start(ModelRepository* repository,
                                                     const HttpServerOptions& options);
  ~HttpServer();  // Shutdown()
  int port() const;
  // Stops accepting connections, finishes the requests in flight, joins the workers. An idle
  // keep-alive connection holds its worker until its 5 s timeout, so this may take that long.
  void Shutdown();

 private:
  HttpServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace larserve::serve
