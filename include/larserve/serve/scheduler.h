#pragma once
// The scheduler of one loaded model version: a request queue, Triton-style dynamic batching and
// a pool of instances (threads, each with its own ExecutionContext of one shared Engine), with
// the statistics Triton's ModelStatistics reports. Transport-agnostic: the gRPC and HTTP
// frontends translate their messages into InferRequests and the responses back; everything here
// is tested without any network.
//
// Threading: Enqueue, Stats and Stop may be called from any thread. Callbacks run on instance
// threads (or on the caller's thread for requests refused at once, and for requests the caller
// allowed to run inline) and must not block long; a
// callback must not call Stop or destroy the Scheduler (both join the instance threads).
// Response tensors keep their data alive (Tensor's shared ownership): they share no memory with
// the instance's buffers or with other requests' responses. Input tensors may be views of the
// caller's memory (Tensor::View), which must stay valid until `done` is called.
// Instance threads (and their intra-op threads) compute with denormals flushed to zero (x86 FTZ
// and DAZ), which avoids the slow path of denormal arithmetic.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/runtime/engine.h"

namespace larserve::serve {

using Clock = std::chrono::steady_clock;

struct NamedTensor {
  std::string name;
  Tensor tensor;  // with max_batch_size > 0: [b, ...] with b the request's batch size
};

struct InferRequest {
  std::string id;                    // echoed in the response
  std::vector<NamedTensor> inputs;   // every model input exactly once, any order
  std::vector<std::string> outputs;  // requested outputs; empty = all, in model order
  // Per-request queue timeout (Triton's "timeout" request parameter); 0 = the model's default.
  uint64_t timeout_us = 0;
  // When the frontend received the request: the success and fail durations count from here; the
  // queue duration, max_queue_delay and the queue timeout count from Enqueue (as Triton's).
  Clock::time_point arrival = Clock::now();
};

struct InferResponse {
  std::string id;
  Status status;                     // not ok: outputs empty
  std::vector<NamedTensor> outputs;  // in the order requested (model order if none requested)
};

using ResponseCallback = std::function<void(InferResponse)>;

// config.pbtxt's dynamic_batching and max_batch_size, resolved.
struct BatchingConfig {
  int64_t max_batch_size = 0;  // 0: the model takes no batch dimension; requests run one by one
  bool dynamic = false;        // dynamic_batching present
  std::vector<int64_t> preferred_batch_sizes;
  uint64_t max_queue_delay_us = 0;
  // default_queue_policy
  int64_t max_queue_size = 0;       // 0 = unbounded
  uint64_t default_timeout_us = 0;  // 0 = none
  bool timeout_reject = true;       // timeout_action REJECT (else DELAY: the request stays queued)
  // As Triton: a request's timeout_us may shorten the default, never lengthen it (with no
  // default, any request timeout applies).
  bool allow_timeout_override = false;
};

struct SchedulerConfig {
  std::string model_name;
  int64_t version = 1;
  int instances = 1;  // instance_group count (threads, one ExecutionContext each)
  BatchingConfig batching;
  // Busy waiting: after its last batch, the instance first in line for work polls the queue for
  // this long before it sleeps, so that a request arriving meanwhile starts at once on a core that
  // still holds the model in its caches. Waking a sleeping thread and refilling its caches cost
  // 40-160 us per lone request (docs/perf/server.md). One instance per model polls at a time, so
  // the cost is at most one core while requests keep arriving less than this far apart. With
  // busy waiting, requests are never run inline (Enqueue's may_run_inline is ignored): the
  // polling instance is the faster path. 0: instances sleep as soon as the queue is empty.
  int64_t busy_wait_us = 0;
};

// One {count, ns} pair of Triton's statistics.
struct DurationStat {
  uint64_t count = 0;
  uint64_t ns = 0;
};

struct BatchStat {
  DurationStat compute_input, compute_infer, compute_output;
};

// Counted as Triton's ModelStatistics: success, fail, queue and compute_* count requests (each
// request of an executed batch gets the batch's compute durations added); queue and compute_*
// cover successful requests only; fail includes requests refused at Enqueue. inference_count,
// execution_count and batch_stats count successful executions only.
struct ModelStats {
  DurationStat success, fail, queue, compute_input, compute_infer, compute_output;
  DurationStat cache_hit, cache_miss;        // always zero: no response cache
  uint64_t inference_count = 0;              // requests' batch items executed
  uint64_t execution_count = 0;              // model executions (batches)
  uint64_t last_inference_ms = 0;            // since the epoch, of the last completed request
  uint64_t rejected = 0;                     // refused by the queue policy (full queue or timeout)
  int64_t pending = 0;                       // requests queued or executing now
  std::map<int64_t, BatchStat> batch_stats;  // per executed batch size
};

class Scheduler {
 public:
  // Checks the engine's inputs and outputs against the batching configuration (a batched model
  // needs a leading dynamic dimension on every input and output) and starts the instances.
  static StatusOr<std::unique_ptr<Scheduler>> Create(std::shared_ptr<const runtime::Engine> engine,
                                                     SchedulerConfig config);
  ~Scheduler();  // Stop()

  // Validates the request against the model (input names, dtypes, shapes, batch size against
  // max_batch_size, requested output names) and queues it; `done` is called exactly once, with
  // an error status naming the model and the input if the request is refused or fails.
  // may_run_inline: the caller lets Enqueue execute the request itself, calling `done` on the
  // caller's thread before returning, when the queue is empty, an instance is idle and the
  // instance would run it alone and at once on one intra-op thread (no queue delay that could
  // grow its batch, or a batch of the largest preferred size; a small batch). That saves two
  // thread hand-offs, about as long as a one-patch inference. The caller must hold no lock
  // that `done` takes. The frontends pass their `run_inline` option (`serve --run-inline`); the
  // order of a caller's requests is kept either way, since a request runs inline only when none
  // is queued. Ignored when the config's busy_wait_us is not 0.
  void Enqueue(InferRequest request, ResponseCallback done, bool may_run_inline = false);

  ModelStats Stats() const;
  const SchedulerConfig& config() const;
  // Requests waiting in the queue for an instance (not those executing); a cheap, relaxed read.
  // A response callback may use it to decide whether to hand slow work (sending the response)
  // to another thread so that the instance can start the next batch.
  int64_t Queued() const;

  // Stops accepting requests, fails the queued ones with UNAVAILABLE, waits for running batches.
  void Stop();

 private:
  Scheduler() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace larserve::serve
