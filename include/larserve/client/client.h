#pragma once
// larserve::client: the KServe v2 (Triton) gRPC client for reconstruction jobs. It speaks
// inference.GRPCInferenceService, so it works against `larserve serve` and against Triton.
//
// What it does that LArSoft's NuSonic TritonClient does not (FACTS.md section 5):
//   - the deadline is really applied: every RPC carries it as its gRPC deadline, and it is also
//     sent as Triton's "timeout" request parameter so that a server whose queue policy allows
//     the override drops a queued request its client has given up on;
//   - failed RPCs are retried with exponential back-off and full jitter, not re-sent at once;
//   - several servers, round robin, with fail-over: a server whose RPC failed with UNAVAILABLE
//     or DEADLINE_EXCEEDED is skipped for `cool_down`, then tried again;
//   - inputs larger than the server's max_batch_size are split into several requests (sent
//     concurrently) and the outputs concatenated in order, instead of being capped;
//   - optional gzip/deflate compression, several channels per server (one channel, one TCP
//     connection, is a known bottleneck), and a local fallback: when no server answered after
//     the retries, the request runs in-process on a runtime::Engine built from the model file.
//
// Retry policy (decided here, see docs/design.md):
//   - retried: UNAVAILABLE (server down or unreachable, model not ready, or the server's queue
//     policy refused the request: larserve and Triton report a full queue and an expired queue
//     timeout as UNAVAILABLE) and DEADLINE_EXCEEDED (a slow or overloaded server: another may
//     answer in time). Inference is a pure function of its inputs, so re-sending a request the
//     server may already have run is safe.
//   - not retried: RESOURCE_EXHAUSTED (from gRPC itself it means a message larger than a
//     configured limit, which a re-send does not change; our servers do not use it for queue
//     pressure), and every other code (bad requests, unknown models, internal errors): a re-send
//     gives the same answer. CANCELLED (the client is being destroyed) is not retried either.
//   - attempts: `retry.max_attempts` RPCs per request in all; before attempt k+1 the client waits
//     a uniformly random time in [0, min(max_backoff, initial_backoff * multiplier^(k-1))].
//   - the local fallback is taken only when the last attempt failed with a retried code (the
//     servers could not answer); a request the server refused for its content is not re-run
//     locally, it would be refused there too.
//
// Threading: one Client is meant to be shared by every reconstruction thread of a process:
// Infer, InferAsync, GetModelInfo and Stats may be called concurrently from any thread.
// InferAsync's callback runs on one of the client's threads (gRPC's callback threads, the
// back-off timer thread or a local-fallback worker), or on the calling thread when the request
// is refused before anything is sent; it must not block for long and must not destroy the
// Client. The first call (any thread) reads the model's configuration from a server with a
// blocking ModelConfig RPC, once; later calls do not block before sending.
//
// Ownership: the Client owns its channels, its timer thread and its fallback engine. Destroy it
// only when no thread is inside one of its methods; the destructor cancels the RPCs and back-off
// waits still in flight, and returns after every pending callback has run (with CANCELLED where
// the request did not complete). Input tensors are shared with the client (Tensor handles) until
// the callback has run; their data must not change before then.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"

namespace larserve::client {

// One input (or output) tensor and its name in the model.
struct NamedTensor {
  std::string name;
  Tensor tensor;  // for a batched model: [batch, ...]
};

enum class Compression : uint8_t {
  kNone = 0,
  kGzip = 1,
  kDeflate = 2,
};

struct RetryPolicy {
  int max_attempts = 4;  // RPCs per request in all (1 = no retry)
  std::chrono::milliseconds initial_backoff{50};
  double backoff_multiplier = 2.0;
  std::chrono::milliseconds max_backoff{2000};
};

struct ClientOptions {
  // "host:port" (or any gRPC target). May be empty only with a local fallback (local only).
  std::vector<std::string> servers;
  std::string model_name;
  std::string model_version;  // "" = the latest version the server has ready
  // Deadline of every RPC (each attempt gets the full deadline); 0 = none.
  std::chrono::milliseconds deadline{10000};
  RetryPolicy retry;
  // How long a server whose RPC failed with UNAVAILABLE or DEADLINE_EXCEEDED is skipped. When
  // every server is cooling down, the one that recovers first is tried anyway.
  std::chrono::milliseconds cool_down{2000};
  // Largest batch sent in one request: 0 = the model's max_batch_size from the server's
  // configuration (read once). A value here caps it further; it never exceeds the server's.
  // Requests are also kept under max_message_bytes (input bytes only).
  int64_t max_batch_size = 0;
  Compression compression = Compression::kNone;
  int max_message_bytes = 64 << 20;  // both directions; the server's limit must allow it too
  int channels_per_server = 1;       // each its own TCP connection, used in turn
  // Local fallback: the model file (ONNX or plan) to run in-process when every server failed
  // after the retries; "" = none. The engine is built once, on first use, with the cpu backend
  // (the reference backend where oneDNN is not built).
  std::string fallback_model_path;
  int fallback_threads = 1;           // concurrent local runs
  int fallback_intra_op_threads = 0;  // threads of each local run; 0 = all hardware threads
  uint64_t jitter_seed = 0;           // back-off jitter; 0 = seeded from std::random_device
};

// What the client read from the server's ModelConfig.
struct ModelInfo {
  int64_t max_batch_size = 0;  // 0: the model has no batch dimension (requests are not split)
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;  // in configuration order: the order Infer returns them
};

// Latencies from a log-spaced histogram (8 buckets per doubling): quantiles are estimates
// within about 5 % of the true value; count, total and max are exact.
struct LatencyStats {
  uint64_t count = 0;
  double total_ms = 0;
  double max_ms = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double mean_ms() const { return count == 0 ? 0.0 : total_ms / static_cast<double>(count); }
};

struct ServerStats {
  std::string address;
  uint64_t requests = 0;   // RPCs sent to it: ModelInfer attempts and ModelConfig reads
  uint64_t successes = 0;  // RPCs that returned OK
  uint64_t failures = 0;   // RPCs that returned an error
  bool cooling_down = false;
};

// Counters since the client was created.
struct ClientStats {
  uint64_t calls = 0;      // Infer and InferAsync calls
  uint64_t requests = 0;   // ModelInfer RPCs sent: one per split piece and attempt
  uint64_t retries = 0;    // ModelInfer RPCs that re-sent a failed one
  uint64_t failures = 0;   // calls that completed with an error
  uint64_t fallbacks = 0;  // requests (split pieces) answered by the local engine
  // Payload: the raw tensor bytes of every ModelInfer RPC sent (retries included) and of every
  // response received; message: the serialized protobuf sizes of the same messages (before
  // gRPC's compression).
  uint64_t raw_bytes_sent = 0;
  uint64_t raw_bytes_received = 0;
  uint64_t message_bytes_sent = 0;
  uint64_t message_bytes_received = 0;
  LatencyStats call_latency;         // per call: from the call to its result (retries, fallback)
  LatencyStats request_latency;      // per successful ModelInfer RPC
  std::vector<ServerStats> servers;  // in ClientOptions::servers order
};

// Outputs in the order asked for: the requested output names, or the model's configuration
// order when none were named.
using InferCallback = std::function<void(StatusOr<std::vector<Tensor>>)>;

class Client {
 public:
  // Validates the options and makes the channels (they connect on first use, so a client can be
  // made before its servers are up). Fails for malformed options or a missing fallback file.
  static StatusOr<std::unique_ptr<Client>> Create(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Runs the model on `inputs` (each model input once) and returns the outputs named in
  // `outputs` (empty = all). Blocks until the result is there.
  StatusOr<std::vector<Tensor>> Infer(const std::vector<NamedTensor>& inputs,
                                      const std::vector<std::string>& outputs = {});
  // The same without waiting: `done` is called exactly once with the result.
  void InferAsync(std::vector<NamedTensor> inputs, InferCallback done,
                  std::vector<std::string> outputs = {});

  // The model's batch limit and tensor names from a server (read once and kept; a failed read
  // is not repeated for cool_down). UNAVAILABLE when no server could answer.
  StatusOr<ModelInfo> GetModelInfo();

  ClientStats Stats() const;
  const ClientOptions& options() const;

 private:
  Client() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace larserve::client
