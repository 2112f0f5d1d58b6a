#include "larserve/client/client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "larserve/core/thread_pool.h"
#include "larserve/proto/grpc_service.grpc.pb.h"
#include "larserve/runtime/backend.h"
#include "larserve/runtime/engine.h"

namespace larserve::client {
namespace {

using Clock = std::chrono::steady_clock;
using Stub = inference::GRPCInferenceService::Stub;

bool Retryable(StatusCode code) {
  return code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded;
}

Status Cancelled(std::string message) { return {StatusCode::kCancelled, std::move(message)}; }

// gRPC's codes are ours (core/status.h); anything outside the range is UNKNOWN.
Status FromGrpc(const grpc::Status& s, const std::string& context) {
  const int code = static_cast<int>(s.error_code());
  const StatusCode c = code >= 0 && code <= static_cast<int>(StatusCode::kUnauthenticated)
                           ? static_cast<StatusCode>(code)
                           : StatusCode::kUnknown;
  return {c, context + ": " + s.error_message()};
}

// Latency histogram with 8 log-spaced buckets per doubling from 1 us: lock-free recording from
// every thread, quantiles estimated at the bucket's geometric middle.
class LatencyHistogram {
 public:
  void Record(Clock::duration d) {
    const double us = std::max(1.0, std::chrono::duration<double, std::micro>(d).count());
    const int b = std::min(kBuckets - 1, static_cast<int>(std::log2(us) * kPerDoubling));
    buckets_[b].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    const auto ns = static_cast<uint64_t>(std::chrono::nanoseconds(d).count());
    total_ns_.fetch_add(ns, std::memory_order_relaxed);
    uint64_t max = max_ns_.load(std::memory_order_relaxed);
    while (ns > max && !max_ns_.compare_exchange_weak(max, ns, std::memory_order_relaxed)) {
    }
  }

  LatencyStats Get() const {
    LatencyStats s;
    uint64_t counts[kBuckets];
    uint64_t n = 0;
    for (int b = 0; b < kBuckets; ++b) n += counts[b] = buckets_[b].load(std::memory_order_relaxed);
    s.count = count_.load(std::memory_order_relaxed);
    s.total_ms = static_cast<double>(total_ns_.load(std::memory_order_relaxed)) * 1e-6;
    s.max_ms = static_cast<double>(max_ns_.load(std::memory_order_relaxed)) * 1e-6;
    auto quantile = [&](double q) {
      if (n == 0) return 0.0;
      const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(n)));
      uint64_t seen = 0;
      for (int b = 0; b < kBuckets; ++b) {
        seen += counts[b];
        if (seen >= std::max<uint64_t>(rank, 1)) {
          const double us = std::exp2((b + 0.5) / kPerDoubling);
          return std::min(us * 1e-3, s.max_ms);
        }
      }
      return s.max_ms;
    };
    s.p50_ms = quantile(0.50);
    s.p99_ms = quantile(0.99);
    return s;
  }

 private:
  static constexpr int kPerDoubling = 8;
  static constexpr int kBuckets = 36 * kPerDoubling;  // up to 2^36 us (19 hours)
  std::atomic<uint64_t> buckets_[kBuckets] = {};
  std::atomic<uint64_t> count_{0}, total_ns_{0}, max_ns_{0};
};

// Runs tasks at given times on one thread: the back-off waits between attempts, so that no
// gRPC or caller thread sleeps. Stop runs the pending tasks at once with cancelled = true, and a
// task scheduled after Stop runs on the caller's thread, cancelled.
class DelayQueue {
 public:
  using Task = std::function<void(bool cancelled)>;

  DelayQueue() : thread_([this] { Loop(); }) {}
  ~DelayQueue() { Stop(); }

  void Schedule(Clock::time_point when, Task task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_) {
        queue_.push(Entry{when, seq_++, std::move(task)});
        cv_.notify_one();
        return;
      }
    }
    task(true);
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Entry {
    Clock::time_point when;
    uint64_t seq;  // FIFO among equal times
    Task task;
    bool operator>(const Entry& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };

  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      if (queue_.empty()) {
        if (stopping_) return;
        cv_.wait(lock);
        continue;
      }
      if (!stopping_ && Clock::now() < queue_.top().when) {
        // A copy: wait_until reads its deadline again after waking, and a Schedule meanwhile
        // may have moved the queue's storage (AddressSanitizer saw the read of freed memory).
        const Clock::time_point when = queue_.top().when;
        cv_.wait_until(lock, when);
        continue;
      }
      Task task = std::move(const_cast<Entry&>(queue_.top()).task);
      queue_.pop();
      const bool cancelled = stopping_;
      lock.unlock();
      task(cancelled);
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> queue_;
  uint64_t seq_ = 0;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the members above exist
};

struct Server {
  std::string address;
  std::vector<std::unique_ptr<Stub>> stubs;  // one per channel (a stub owns its channel ref)
  std::atomic<uint64_t> next_stub{0};
  std::atomic<int64_t> down_until_ns{0};  // steady-clock time; <= now: not cooling down
  std::atomic<uint64_t> requests{0}, successes{0}, failures{0};

  Stub* NextStub() {
    return stubs[next_stub.fetch_add(1, std::memory_order_relaxed) % stubs.size()].get();
  }
};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// One output of one piece of a call: a view into a response message or a fallback tensor,
// validated.
struct Piece {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> dims;
  const char* data = nullptr;
  std::size_t bytes = 0;
};

// `pieces` (as returned) reordered into `order`; empty order: as they are.
StatusOr<std::vector<Piece>> Reorder(std::vector<Piece> pieces,
                                     const std::vector<std::string>& order,
                                     const std::string& where) {
  if (order.empty()) return pieces;
  std::vector<Piece> out;
  out.reserve(order.size());
  for (const std::string& name : order) {
    auto it =
        std::find_if(pieces.begin(), pieces.end(), [&](const Piece& p) { return p.name == name; });
    if (it == pieces.end()) return Internal(where + " did not return output '" + name + "'");
    out.push_back(std::move(*it));
  }
  return out;
}

// The outputs of a ModelInferResponse, checked (they come from outside): known datatypes,
// non-negative shapes, one raw_output_contents entry of the right size per output.
StatusOr<std::vector<Piece>> PiecesFromResponse(const inference::ModelInferResponse& resp,
                                                const std::vector<std::string>& order,
                                                const std::string& where) {
  if (resp.raw_output_contents_size() != resp.outputs_size()) {
    if (resp.raw_output_contents_size() == 0) {
      return Unimplemented(where +
                           " answered with typed output contents; this client reads "
                           "raw_output_contents only (what Triton and larserve send)");
    }
    return Internal(where + " answered with " + std::to_string(resp.raw_output_contents_size()) +
                    " raw_output_contents for " + std::to_string(resp.outputs_size()) + " outputs");
  }
  std::vector<Piece> pieces;
  pieces.reserve(static_cast<std::size_t>(resp.outputs_size()));
  for (int k = 0; k < resp.outputs_size(); ++k) {
    const auto& o = resp.outputs(k);
    const std::string what = where + ": output '" + o.name() + "'";
    auto dtype = DTypeFromName(o.datatype());
    if (!dtype.ok()) return Internal(what + " has unknown datatype '" + o.datatype() + "'");
    Piece p;
    p.name = o.name();
    p.dtype = *dtype;
    int64_t count = 1;
    for (int64_t d : o.shape()) {
      if (d < 0 || (d > 0 && count > (int64_t{1} << 50) / d)) {
        return Internal(what + " has an invalid shape");
      }
      count *= d;
      p.dims.push_back(d);
    }
    const std::string& raw = resp.raw_output_contents(k);
    p.bytes = static_cast<std::size_t>(count) * DTypeSize(p.dtype);
    if (raw.size() != p.bytes) {
      return Internal(what + " has " + std::to_string(raw.size()) + " bytes, expected " +
                      std::to_string(p.bytes) + " for its shape");
    }
    p.data = raw.data();
    pieces.push_back(std::move(p));
  }
  return Reorder(std::move(pieces), order, where);
}

// The lazily built in-process engine of the local fallback, with a pool of execution contexts
// (a context is single-threaded; the engine is shared).
class Fallback {
 public:
  Fallback(std::string path, int intra_op_threads) : path_(std::move(path)) {
    options_.backend = runtime::FindBackend("cpu") != nullptr ? "cpu" : "reference";
    options_.threads = intra_op_threads;
  }

  // Runs the engine on `inputs` (matched to the engine's inputs by name); the outputs in
  // `order` (empty: the engine's order).
  StatusOr<std::vector<NamedTensor>> Run(const std::vector<NamedTensor>& inputs,
                                         const std::vector<std::string>& order) {
    RETURN_IF_ERROR(EnsureBuilt());
    std::vector<Tensor> in;
    in.reserve(engine_->inputs().size());
    for (const runtime::TensorSpec& spec : engine_->inputs()) {
      auto it = std::find_if(inputs.begin(), inputs.end(),
                             [&](const NamedTensor& t) { return t.name == spec.name; });
      if (it == inputs.end()) {
        return InvalidArgument("local fallback '" + path_ + "': input '" + spec.name +
                               "' missing from the request");
      }
      in.push_back(it->tensor);
    }
    if (inputs.size() != in.size()) {
      return InvalidArgument("local fallback '" + path_ + "': the request has " +
                             std::to_string(inputs.size()) + " inputs, the model " +
                             std::to_string(in.size()));
    }
    std::unique_ptr<runtime::ExecutionContext> ctx = TakeContext();
    std::vector<Tensor> out;
    Status st = ctx->Run(in, &out);
    GiveBack(std::move(ctx));
    if (!st.ok()) return st.WithContext("local fallback '" + path_ + "'");
    std::vector<NamedTensor> named;
    if (order.empty()) {
      for (std::size_t k = 0; k < out.size(); ++k) {
        named.push_back({engine_->outputs()[k].name, std::move(out[k])});
      }
      return named;
    }
    for (const std::string& name : order) {
      const auto& specs = engine_->outputs();
      auto it = std::find_if(specs.begin(), specs.end(),
                             [&](const runtime::TensorSpec& s) { return s.name == name; });
      if (it == specs.end()) {
        return InvalidArgument("local fallback '" + path_ + "': the model has no output '" + name +
                               "'");
      }
      named.push_back({name, out[static_cast<std::size_t>(it - specs.begin())]});
    }
    return named;
  }

 private:
  // Built once; a failed build is not retried (it would fail the same way, and costs a build).
  Status EnsureBuilt() {
    std::lock_guard<std::mutex> lock(build_mu_);
    if (!attempted_) {
      attempted_ = true;
      auto engine = runtime::LoadModelOrPlan(path_, options_);
      if (engine.ok()) {
        engine_ = std::move(engine).value();
      } else {
        build_status_ = engine.status().WithContext("local fallback '" + path_ + "'");
      }
    }
    return build_status_;
  }

  std::unique_ptr<runtime::ExecutionContext> TakeContext() {
    {
      std::lock_guard<std::mutex> lock(pool_mu_);
      if (!idle_.empty()) {
        auto ctx = std::move(idle_.back());
        idle_.pop_back();
        return ctx;
      }
    }
    return engine_->CreateContext();
  }

  void GiveBack(std::unique_ptr<runtime::ExecutionContext> ctx) {
    std::lock_guard<std::mutex> lock(pool_mu_);
    idle_.push_back(std::move(ctx));
  }

  const std::string path_;
  runtime::BuildOptions options_;
  std::mutex build_mu_;
  bool attempted_ = false;
  Status build_status_;
  std::unique_ptr<runtime::Engine> engine_;  // set once, under build_mu_, then read-only
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<runtime::ExecutionContext>> idle_;
};

// One request of a call: the whole call, or items [begin, begin + count) of its batch.
struct Chunk {
  int64_t begin = 0;
  int64_t count = -1;  // -1: the whole inputs, not split
  inference::ModelInferRequest request;
  std::size_t raw_bytes = 0;      // input payload of `request`
  std::size_t message_bytes = 0;  // serialized size of `request`
  int attempts = 0;
  // The attempt in flight.
  std::unique_ptr<grpc::ClientContext> context;
  inference::ModelInferResponse response;
  Server* server = nullptr;
  Clock::time_point sent;
  // The result: status, and outputs viewing `response` or `fallback_outputs`.
  Status status;
  std::vector<Piece> outputs;
  std::vector<NamedTensor> fallback_outputs;
};

// One Infer or InferAsync call.
struct Call {
  std::vector<NamedTensor> inputs;
  std::vector<std::string> requested;  // output names asked for (sent to the server)
  std::vector<std::string> order;      // output order of the result; empty: as returned
  InferCallback done;
  Clock::time_point start;
  std::vector<std::unique_ptr<Chunk>> chunks;
  std::atomic<std::size_t> remaining{0};
};

// Input k of a call restricted to chunk c: shape with the chunk's batch, and the byte range.
struct InputSlice {
  std::vector<int64_t> dims;
  const char* data;
  std::size_t bytes;
};

InputSlice Slice(const NamedTensor& in, const Chunk& c) {
  const Tensor& t = in.tensor;
  std::vector<int64_t> dims = t.shape().dims();
  const char* data = static_cast<const char*>(t.data());
  if (c.count < 0) return {std::move(dims), data, t.num_bytes()};
  const std::size_t item = dims[0] == 0 ? 0 : t.num_bytes() / static_cast<std::size_t>(dims[0]);
  dims[0] = c.count;
  return {std::move(dims), data + item * static_cast<std::size_t>(c.begin),
          item * static_cast<std::size_t>(c.count)};
}

}  // namespace

struct Client::Impl {
  ClientOptions options;
  std::vector<std::unique_ptr<Server>> servers;
  std::atomic<uint64_t> next_server{0};
  std::unique_ptr<Fallback> fallback;
  std::unique_ptr<ThreadPool> fallback_pool;
  std::unique_ptr<DelayQueue> timer;

  std::mutex rng_mu;
  std::mt19937_64 rng;

  // The model's configuration, read once.
  std::mutex info_mu;
  std::optional<ModelInfo> info;
  Status info_error;
  std::optional<Clock::time_point> info_failed_at;

  // Attempts in flight (cancelled by the destructor) and calls not yet completed.
  std::mutex active_mu;
  std::set<grpc::ClientContext*> active;
  bool shutting_down = false;  // under active_mu
  std::atomic<bool> stopping{false};
  std::mutex inflight_mu;
  std::condition_variable inflight_cv;
  uint64_t inflight = 0;

  std::atomic<uint64_t> calls{0}, requests{0}, retries{0}, failures{0}, fallbacks{0};
  std::atomic<uint64_t> raw_sent{0}, raw_received{0}, message_sent{0}, message_received{0};
  LatencyHistogram call_latency, request_latency;

  ~Impl() {
    stopping = true;
    {
      std::lock_guard<std::mutex> lock(active_mu);
      shutting_down = true;
      for (grpc::ClientContext* ctx : active) ctx->TryCancel();
    }
    if (timer) timer->Stop();  // pending back-off waits complete their calls with CANCELLED
    {
      std::unique_lock<std::mutex> lock(inflight_mu);
      inflight_cv.wait(lock, [&] { return inflight == 0; });
    }
    fallback_pool.reset();
  }

  // Round robin over the servers that are not cooling down; when all are, the one whose
  // cool-down ends first.
  Server* PickServer() {
    const std::size_t n = servers.size();
    const std::size_t start = next_server.fetch_add(1, std::memory_order_relaxed) % n;
    const int64_t now = NowNs();
    Server* earliest = nullptr;
    for (std::size_t i = 0; i < n; ++i) {
      Server* s = servers[(start + i) % n].get();
      const int64_t until = s->down_until_ns.load(std::memory_order_relaxed);
      if (until <= now) return s;
      if (!earliest || until < earliest->down_until_ns.load(std::memory_order_relaxed)) {
        earliest = s;
      }
    }
    return earliest;
  }

  void MarkDown(Server* s) {
    s->down_until_ns.store(NowNs() + std::chrono::nanoseconds(options.cool_down).count(),
                           std::memory_order_relaxed);
  }

  // Full jitter: uniform in [0, min(max, initial * multiplier^(attempt - 1))].
  Clock::duration Backoff(int failed_attempts) {
    const RetryPolicy& r = options.retry;
    const double cap_ms =
        std::min(static_cast<double>(r.max_backoff.count()),
                 static_cast<double>(r.initial_backoff.count()) *
                     std::pow(r.backoff_multiplier, static_cast<double>(failed_attempts - 1)));
    double ms;
    {
      std::lock_guard<std::mutex> lock(rng_mu);
      ms = std::uniform_real_distribution<double>(0.0, std::max(0.0, cap_ms))(rng);
    }
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double, std::milli>(ms));
  }

  std::string ModelPrefix() const { return "model '" + options.model_name + "'"; }

  void SetDeadline(grpc::ClientContext* ctx) const {
    if (options.deadline.count() > 0) {
      ctx->set_deadline(std::chrono::system_clock::now() + options.deadline);
    }
  }

  StatusOr<ModelInfo> ResolveModelInfo() {
    std::lock_guard<std::mutex> lock(info_mu);
    if (info) return *info;
    if (servers.empty()) return Unavailable(ModelPrefix() + ": no servers configured");
    if (info_failed_at && Clock::now() - *info_failed_at < options.cool_down) return info_error;
    Status last;
    const int attempts = options.retry.max_attempts;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      if (attempt > 1) std::this_thread::sleep_for(Backoff(attempt - 1));
      Server* s = PickServer();
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      inference::ModelConfigRequest req;
      req.set_name(options.model_name);
      req.set_version(options.model_version);
      inference::ModelConfigResponse resp;
      s->requests.fetch_add(1, std::memory_order_relaxed);
      const grpc::Status st = s->NextStub()->ModelConfig(&ctx, req, &resp);
      if (st.ok()) {
        s->successes.fetch_add(1, std::memory_order_relaxed);
        s->down_until_ns.store(0, std::memory_order_relaxed);
        const auto& c = resp.config();
        if (c.max_batch_size() < 0) {
          return Internal("server " + s->address + ": " + ModelPrefix() +
                          " has a negative max_batch_size in its configuration");
        }
        ModelInfo mi;
        mi.max_batch_size = c.max_batch_size();
        for (const auto& in : c.input()) mi.inputs.push_back(in.name());
        for (const auto& out : c.output()) mi.outputs.push_back(out.name());
        info = mi;
        return mi;
      }
      s->failures.fetch_add(1, std::memory_order_relaxed);
      last = FromGrpc(st, "server " + s->address + ": ModelConfig for " + ModelPrefix());
      if (!Retryable(last.code())) return last;
      MarkDown(s);
    }
    info_error = Status(last.code(), "no server answered after " + std::to_string(attempts) +
                                         " attempts; last: " + last.message());
    info_failed_at = Clock::now();
    return info_error;
  }

  // Starts a call: checks the inputs, splits them, sends the pieces (or runs them locally when
  // no server could even give the model's configuration).
  void Start(std::shared_ptr<Call> call) {
    {
      std::lock_guard<std::mutex> lock(inflight_mu);
      ++inflight;
    }
    calls.fetch_add(1, std::memory_order_relaxed);
    call->start = Clock::now();
    if (Status v = ValidateInputs(*call); !v.ok()) return CompleteWithError(call, v);

    auto mi = ResolveModelInfo();
    if (!mi.ok()) {
      if (!Retryable(mi.status().code()) || !fallback) return CompleteWithError(call, mi.status());
      call->order = call->requested;
      Status split = Split(*call, options.max_batch_size);
      if (!split.ok()) return CompleteWithError(call, split);
      call->remaining = call->chunks.size();
      for (std::size_t i = 0; i < call->chunks.size(); ++i) RunLocally(call, i, mi.status());
      return;
    }
    call->order = call->requested.empty() ? mi->outputs : call->requested;
    int64_t max_batch = 0;  // 0: not split
    if (mi->max_batch_size > 0) {
      max_batch = options.max_batch_size > 0 ? std::min(options.max_batch_size, mi->max_batch_size)
                                             : mi->max_batch_size;
      // Keep each request under the message limit (its input payload, with 1/16 for the rest).
      std::size_t item_bytes = 0;
      for (const NamedTensor& in : call->inputs) {
        const int64_t b = in.tensor.shape().rank() > 0 ? in.tensor.shape()[0] : 0;
        if (b > 0) item_bytes += in.tensor.num_bytes() / static_cast<std::size_t>(b);
      }
      const auto budget = static_cast<std::size_t>(options.max_message_bytes) -
                          static_cast<std::size_t>(options.max_message_bytes) / 16;
      if (item_bytes > 0) {
        max_batch = std::min<int64_t>(
            max_batch, std::max<int64_t>(1, static_cast<int64_t>(budget / item_bytes)));
      }
    }
    Status split = Split(*call, max_batch);
    if (!split.ok()) return CompleteWithError(call, split);
    for (auto& c : call->chunks) BuildRequest(*call, *c);
    call->remaining = call->chunks.size();
    for (std::size_t i = 0; i < call->chunks.size(); ++i) StartAttempt(call, i);
  }

  Status ValidateInputs(const Call& call) const {
    if (call.inputs.empty()) return InvalidArgument(ModelPrefix() + ": a request needs inputs");
    for (std::size_t k = 0; k < call.inputs.size(); ++k) {
      const NamedTensor& in = call.inputs[k];
      if (in.name.empty()) {
        return InvalidArgument(ModelPrefix() + ": input " + std::to_string(k) + " has no name");
      }
      if (in.tensor.empty()) {
        return InvalidArgument(ModelPrefix() + ": input '" + in.name + "' has no tensor");
      }
      for (std::size_t j = 0; j < k; ++j) {
        if (call.inputs[j].name == in.name) {
          return InvalidArgument(ModelPrefix() + ": input '" + in.name + "' given twice");
        }
      }
    }
    return Status::Ok();
  }

  // Fills call.chunks: one piece when max_batch is 0 or the batch fits, else pieces of at most
  // max_batch items (every input must then have the same leading dimension).
  Status Split(Call& call, int64_t max_batch) const {
    const Shape& s0 = call.inputs[0].tensor.shape();
    const int64_t batch = s0.rank() > 0 ? s0[0] : 0;
    if (max_batch <= 0 || batch <= max_batch) {
      call.chunks.push_back(std::make_unique<Chunk>());
      return Status::Ok();
    }
    for (const NamedTensor& in : call.inputs) {
      if (in.tensor.shape().rank() == 0 || in.tensor.shape()[0] != batch) {
        return InvalidArgument(ModelPrefix() + ": input '" + in.name + "' has shape " +
                               in.tensor.shape().ToString() + ", but input '" +
                               call.inputs[0].name + "' has batch " + std::to_string(batch) +
                               "; the inputs of a batch larger than " + std::to_string(max_batch) +
                               " (split into several requests) must share their first dimension");
      }
    }
    for (int64_t begin = 0; begin < batch; begin += max_batch) {
      auto c = std::make_unique<Chunk>();
      c->begin = begin;
      c->count = std::min(max_batch, batch - begin);
      call.chunks.push_back(std::move(c));
    }
    return Status::Ok();
  }

  void BuildRequest(const Call& call, Chunk& c) const {
    inference::ModelInferRequest& r = c.request;
    r.set_model_name(options.model_name);
    r.set_model_version(options.model_version);
    for (const NamedTensor& in : call.inputs) {
      InputSlice s = Slice(in, c);
      auto* t = r.add_inputs();
      t->set_name(in.name);
      t->set_datatype(std::string(DTypeName(in.tensor.dtype())));
      for (int64_t d : s.dims) t->add_shape(d);
      r.add_raw_input_contents(s.data, s.bytes);
      c.raw_bytes += s.bytes;
    }
    for (const std::string& name : call.requested) r.add_outputs()->set_name(name);
    if (options.deadline.count() > 0) {
      // Triton's queue timeout (microseconds): a server that allows the override drops the
      // request once the client has stopped waiting for it.
      (*r.mutable_parameters())["timeout"].set_int64_param(
          std::chrono::duration_cast<std::chrono::microseconds>(options.deadline).count());
    }
    c.message_bytes = r.ByteSizeLong();
  }

  void StartAttempt(const std::shared_ptr<Call>& call, std::size_t i) {
    Chunk& c = *call->chunks[i];
    c.server = PickServer();
    c.context = std::make_unique<grpc::ClientContext>();
    SetDeadline(c.context.get());
    {
      std::lock_guard<std::mutex> lock(active_mu);
      if (shutting_down) {
        c.status = Cancelled(ModelPrefix() + ": the client is being destroyed");
        // Outside the lock: completing may run the user's callback.
      } else {
        active.insert(c.context.get());
      }
    }
    if (!c.status.ok()) return FinishChunk(call, i);
    ++c.attempts;
    c.response.Clear();
    c.sent = Clock::now();
    c.server->requests.fetch_add(1, std::memory_order_relaxed);
    requests.fetch_add(1, std::memory_order_relaxed);
    raw_sent.fetch_add(c.raw_bytes, std::memory_order_relaxed);
    message_sent.fetch_add(c.message_bytes, std::memory_order_relaxed);
    c.server->NextStub()->async()->ModelInfer(
        c.context.get(), &c.request, &c.response,
        [this, call, i](grpc::Status st) { OnAttemptDone(call, i, st); });
  }

  void OnAttemptDone(const std::shared_ptr<Call>& call, std::size_t i, const grpc::Status& st) {
    Chunk& c = *call->chunks[i];
    {
      std::lock_guard<std::mutex> lock(active_mu);
      active.erase(c.context.get());
    }
    Server* s = c.server;
    const std::string where = "server " + s->address + ": " + ModelPrefix();
    if (st.ok()) {
      request_latency.Record(Clock::now() - c.sent);
      s->successes.fetch_add(1, std::memory_order_relaxed);
      s->down_until_ns.store(0, std::memory_order_relaxed);
      message_received.fetch_add(c.response.ByteSizeLong(), std::memory_order_relaxed);
      std::size_t raw = 0;
      for (const std::string& b : c.response.raw_output_contents()) raw += b.size();
      raw_received.fetch_add(raw, std::memory_order_relaxed);
      auto pieces = PiecesFromResponse(c.response, call->order, where);
      if (pieces.ok()) {
        c.outputs = std::move(pieces).value();
      } else {
        c.status = pieces.status();
      }
      return FinishChunk(call, i);
    }
    s->failures.fetch_add(1, std::memory_order_relaxed);
    Status status = FromGrpc(st, where);
    if (!Retryable(status.code())) {
      c.status = status;
      return FinishChunk(call, i);
    }
    MarkDown(s);
    if (c.attempts < options.retry.max_attempts && !stopping.load()) {
      retries.fetch_add(1, std::memory_order_relaxed);
      timer->Schedule(Clock::now() + Backoff(c.attempts), [this, call, i](bool cancelled) {
        if (cancelled) {
          call->chunks[i]->status = Cancelled(ModelPrefix() + ": the client is being destroyed");
          return FinishChunk(call, i);
        }
        StartAttempt(call, i);
      });
      return;
    }
    status = Status(status.code(), "no server answered after " + std::to_string(c.attempts) +
                                       " attempts; last: " + status.message());
    if (fallback) return RunLocally(call, i, status);
    c.status = status;
    FinishChunk(call, i);
  }

  // Runs piece i on the local engine (on a fallback worker), because of `remote` (the servers'
  // last error, kept in the message if the local run fails too).
  void RunLocally(const std::shared_ptr<Call>& call, std::size_t i, const Status& remote) {
    fallback_pool->Submit([this, call, i, remote] {
      Chunk& c = *call->chunks[i];
      if (stopping.load()) {
        c.status = Cancelled(ModelPrefix() + ": the client is being destroyed");
        return FinishChunk(call, i);
      }
      std::vector<NamedTensor> inputs;
      inputs.reserve(call->inputs.size());
      for (const NamedTensor& in : call->inputs) {
        if (c.count < 0) {
          inputs.push_back(in);
          continue;
        }
        InputSlice s = Slice(in, c);
        // The engine only reads its inputs; the view keeps the caller's data (alive in call).
        inputs.push_back(
            {in.name, Tensor::View(in.tensor.dtype(), Shape(s.dims), const_cast<char*>(s.data))});
      }
      auto out = fallback->Run(inputs, call->order);
      if (!out.ok()) {
        c.status =
            Status(out.status().code(),
                   out.status().message() + " (run locally because: " + remote.message() + ")");
        return FinishChunk(call, i);
      }
      fallbacks.fetch_add(1, std::memory_order_relaxed);
      c.fallback_outputs = std::move(out).value();
      for (const NamedTensor& t : c.fallback_outputs) {
        c.outputs.push_back({t.name, t.tensor.dtype(), t.tensor.shape().dims(),
                             static_cast<const char*>(t.tensor.data()), t.tensor.num_bytes()});
      }
      FinishChunk(call, i);
    });
  }

  void FinishChunk(const std::shared_ptr<Call>& call, std::size_t i) {
    if (call->remaining.fetch_sub(1) == 1) Complete(call);
  }

  void CompleteWithError(const std::shared_ptr<Call>& call, const Status& status) {
    Deliver(call, status);
  }

  void Complete(const std::shared_ptr<Call>& call) {
    const std::size_t n = call->chunks.size();
    for (std::size_t i = 0; i < n; ++i) {
      const Chunk& c = *call->chunks[i];
      if (c.status.ok()) continue;
      if (n == 1) return Deliver(call, c.status);
      return Deliver(
          call, c.status.WithContext("items " + std::to_string(c.begin) + ".." +
                                     std::to_string(c.begin + c.count - 1) + " (request " +
                                     std::to_string(i + 1) + " of " + std::to_string(n) + ")"));
    }
    Deliver(call, Assemble(*call));
  }

  // The pieces' outputs concatenated along the batch, in order.
  StatusOr<std::vector<Tensor>> Assemble(const Call& call) const {
    const std::vector<Piece>& first = call.chunks[0]->outputs;
    std::vector<Tensor> result;
    result.reserve(first.size());
    for (std::size_t k = 0; k < first.size(); ++k) {
      std::vector<int64_t> dims = first[k].dims;
      if (call.chunks.size() > 1) {
        if (dims.empty())
          return Internal(ModelPrefix() + ": output '" + first[k].name +
                          "' has no batch dimension to concatenate along");
        dims[0] = 0;
        for (const auto& c : call.chunks) {
          const Piece* p = c->outputs.size() == first.size() ? &c->outputs[k] : nullptr;
          if (!p || p->name != first[k].name || p->dtype != first[k].dtype ||
              p->dims.size() != first[k].dims.size() ||
              !std::equal(p->dims.begin() + 1, p->dims.end(), first[k].dims.begin() + 1)) {
            return Internal(ModelPrefix() +
                            ": the requests of one call returned outputs of "
                            "different names, types or shapes (output '" +
                            first[k].name + "')");
          }
          dims[0] += p->dims[0];
        }
      }
      ASSIGN_OR_RETURN(Tensor t, Tensor::Create(first[k].dtype, Shape(dims)));
      char* dst = static_cast<char*>(t.data());
      for (const auto& c : call.chunks) {
        const Piece& p = c->outputs[k];
        if (p.bytes > 0) std::memcpy(dst, p.data, p.bytes);
        dst += p.bytes;
      }
      result.push_back(std::move(t));
    }
    return result;
  }

  void Deliver(const std::shared_ptr<Call>& call, StatusOr<std::vector<Tensor>> result) {
    call_latency.Record(Clock::now() - call->start);
    if (!result.ok()) failures.fetch_add(1, std::memory_order_relaxed);
    call->done(std::move(result));
    std::lock_guard<std::mutex> lock(inflight_mu);
    if (--inflight == 0) inflight_cv.notify_all();
  }
};

StatusOr<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  const std::string where = "client for model '" + options.model_name + "'";
  if (options.model_name.empty()) return InvalidArgument("client: the model name is empty");
  if (options.servers.empty() && options.fallback_model_path.empty()) {
    return InvalidArgument(where + ": no servers and no local fallback");
  }
  for (const std::string& s : options.servers) {
    if (s.empty()) return InvalidArgument(where + ": an empty server address");
  }
  if (options.deadline.count() < 0) return InvalidArgument(where + ": negative deadline");
  const RetryPolicy& r = options.retry;
  if (r.max_attempts < 1) return InvalidArgument(where + ": retry.max_attempts must be >= 1");
  if (r.initial_backoff.count() < 0 || r.max_backoff.count() < 0 ||
      !(r.backoff_multiplier >= 1.0) || !std::isfinite(r.backoff_multiplier)) {
    return InvalidArgument(where + ": back-off times must be >= 0 and the multiplier >= 1");
  }
  if (options.cool_down.count() < 0) return InvalidArgument(where + ": negative cool_down");
  if (options.max_batch_size < 0) return InvalidArgument(where + ": negative max_batch_size");
  if (options.max_message_bytes <= 0) {
    return InvalidArgument(where + ": max_message_bytes must be positive");
  }
  if (options.channels_per_server < 1 || options.channels_per_server > 64) {
    return InvalidArgument(where + ": channels_per_server must be in 1..64");
  }
  if (options.fallback_threads < 1 || options.fallback_intra_op_threads < 0) {
    return InvalidArgument(where +
                           ": fallback_threads must be >= 1 and "
                           "fallback_intra_op_threads >= 0");
  }
  if (!options.fallback_model_path.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(options.fallback_model_path, ec)) {
      return NotFound(where + ": local fallback model '" + options.fallback_model_path +
                      "' is not a file");
    }
  }

  std::unique_ptr<Client> client(new Client());
  client->impl_ = std::make_unique<Impl>();
  Impl& impl = *client->impl_;
  impl.options = std::move(options);
  const ClientOptions& o = impl.options;
  impl.rng.seed(o.jitter_seed != 0 ? o.jitter_seed : std::random_device{}());
  for (const std::string& address : o.servers) {
    auto s = std::make_unique<Server>();
    s->address = address;
    for (int k = 0; k < o.channels_per_server; ++k) {
      grpc::ChannelArguments args;
      args.SetMaxSendMessageSize(o.max_message_bytes);
      args.SetMaxReceiveMessageSize(o.max_message_bytes);
      // gRPC shares one connection between channels with equal arguments (the global
      // subchannel pool); a local pool per channel gives each channel its own connection.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      if (o.compression == Compression::kGzip) args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
      if (o.compression == Compression::kDeflate) {
        args.SetCompressionAlgorithm(GRPC_COMPRESS_DEFLATE);
      }
      auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
      s->stubs.push_back(inference::GRPCInferenceService::NewStub(channel));
    }
    impl.servers.push_back(std::move(s));
  }
  if (!o.fallback_model_path.empty()) {
    impl.fallback = std::make_unique<Fallback>(o.fallback_model_path, o.fallback_intra_op_threads);
    // ThreadPool(n) has n - 1 workers (the caller is the n-th); fallback runs never run on the
    // caller of Submit, which may be a gRPC thread.
    impl.fallback_pool = std::make_unique<ThreadPool>(o.fallback_threads + 1);
  }
  impl.timer = std::make_unique<DelayQueue>();
  return client;
}

Client::~Client() = default;

StatusOr<std::vector<Tensor>> Client::Infer(const std::vector<NamedTensor>& inputs,
                                            const std::vector<std::string>& outputs) {
  std::promise<StatusOr<std::vector<Tensor>>> promise;
  auto future = promise.get_future();
  InferAsync(
      inputs,
      [&promise](StatusOr<std::vector<Tensor>> result) { promise.set_value(std::move(result)); },
      outputs);
  return future.get();
}

void Client::InferAsync(std::vector<NamedTensor> inputs, InferCallback done,
                        std::vector<std::string> outputs) {
  auto call = std::make_shared<Call>();
  call->inputs = std::move(inputs);
  call->requested = std::move(outputs);
  call->done = done ? std::move(done) : [](StatusOr<std::vector<Tensor>>) {};
  impl_->Start(std::move(call));
}

StatusOr<ModelInfo> Client::GetModelInfo() { return impl_->ResolveModelInfo(); }

ClientStats Client::Stats() const {
  const Impl& i = *impl_;
  ClientStats s;
  s.calls = i.calls.load();
  s.requests = i.requests.load();
  s.retries = i.retries.load();
  s.failures = i.failures.load();
  s.fallbacks = i.fallbacks.load();
  s.raw_bytes_sent = i.raw_sent.load();
  s.raw_bytes_received = i.raw_received.load();
  s.message_bytes_sent = i.message_sent.load();
  s.message_bytes_received = i.message_received.load();
  s.call_latency = i.call_latency.Get();
  s.request_latency = i.request_latency.Get();
  const int64_t now = NowNs();
  for (const auto& srv : i.servers) {
    ServerStats ss;
    ss.address = srv->address;
    ss.requests = srv->requests.load();
    ss.successes = srv->successes.load();
    ss.failures = srv->failures.load();
    ss.cooling_down = srv->down_until_ns.load() > now;
    s.servers.push_back(std::move(ss));
  }
  return s;
}

const ClientOptions& Client::options() const { return impl_->options; }

}  // namespace larserve::client
