#include "larserve/serve/scheduler.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#if defined(__linux__)
#include <sys/prctl.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <pmmintrin.h>  // _MM_SET_DENORMALS_ZERO_MODE (SSE3 header; the register is SSE's)
#include <xmmintrin.h>
#endif

#include "larserve/core/logging.h"
#include "larserve/core/thread_pool.h"

namespace larserve::serve {
namespace {

using runtime::TensorSpec;

// Longest delay or timeout taken as given (about 35 years): beyond it, time_point arithmetic on
// steady_clock could overflow.
constexpr uint64_t kMaxDurationUs = uint64_t{1} << 50;

uint64_t NsBetween(Clock::time_point from, Clock::time_point to) {
  if (to <= from) return 0;
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count());
}

void Add(DurationStat& stat, uint64_t ns) {
  ++stat.count;
  stat.ns += ns;
}

std::string DimsString(const std::vector<int64_t>& dims) { return Shape(dims).ToString(); }

std::string NameList(const std::vector<TensorSpec>& specs) {
  std::string s;
  for (const auto& spec : specs) s += (s.empty() ? "'" : ", '") + spec.name + "'";
  return s;
}

int FindSpec(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (std::size_t k = 0; k < specs.size(); ++k) {
    if (specs[k].name == name) return static_cast<int>(k);
  }
  return -1;
}

// A request waiting in the queue, with what Enqueue worked out so the instances need not redo it.
struct Pending {
  InferRequest request;  // inputs reordered into the engine's input order by Enqueue
  ResponseCallback done;
  int64_t batch = 1;                                      // rows this request adds to a batch
  Clock::time_point deadline = Clock::time_point::max();  // REJECT timeout; max = none
  // When Enqueue queued it (after validation), as Triton's queue start: the queue statistic,
  // max_queue_delay and the queue timeout count from here.
  Clock::time_point queued_at;
};

// FIFO on a power-of-two ring of slots that are reused, so a steady stream of requests costs no
// allocation (std::deque allocates and frees a block every few elements).
template <typename T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  T& operator[](std::size_t i) { return slots_[(head_ + i) & (slots_.size() - 1)]; }
  void push_back(T&& value) {
    if (size_ == slots_.size()) Grow();
    (*this)[size_] = std::move(value);
    ++size_;
  }
  T pop_front() { return take_at(0); }
  // Removes element i, keeping the order of the others: the ones before it move back one slot.
  T take_at(std::size_t i) {
    T value = std::move((*this)[i]);
    for (std::size_t j = i; j > 0; --j) (*this)[j] = std::move((*this)[j - 1]);
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
    return value;
  }

 private:
  void Grow() {
    std::vector<T> bigger(std::max<std::size_t>(16, slots_.size() * 2));
    for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move((*this)[i]);
    slots_ = std::move(bigger);
    head_ = 0;
  }
  std::vector<T> slots_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace

struct Scheduler::Impl {
  // One model instance: a thread with its own execution context and reused scratch state.
  struct Instance {
    std::unique_ptr<runtime::ExecutionContext> context;
    std::thread thread;
    std::vector<Pending> batch;     // the requests being executed
    std::vector<Pending> rejected;  // timed out in the queue, failed outside the lock
    std::vector<Tensor> run_inputs, run_outputs;
    std::vector<Tensor> scratch;  // per input: bytes the batch's inputs are concatenated into
    std::vector<InferResponse> responses;
    // Guarded by Impl::mu. The thread waits on cv while idle, listed in Impl::idle; a caller of
    // Enqueue that runs a request on the instance's context itself claims it (see RunInline).
    std::condition_variable cv;
    bool listed = false;
    bool claimed = false;
  };

  std::shared_ptr<const runtime::Engine> engine;
  SchedulerConfig config;
  bool batched = false;            // max_batch_size > 0: inputs and outputs lead with the batch
  bool variable_dims = false;      // an input has a free dimension after the batch dimension
  int64_t max_preferred = 0;       // largest preferred batch size (max_batch_size if none)
  std::vector<int64_t> preferred;  // sorted, unique

  std::mutex mu;  // guards queue, stopping, idle, claims and the instances' flags
  RingQueue<Pending> queue;
  bool stopping = false;
  std::atomic<bool> stop_polling{false};  // stopping, for instances busy waiting outside mu
  // Instances whose thread waits for work, each woken by its own condition variable so a wake-up
  // is never spent on an instance that cannot take the work. The most recently idle is last
  // and is taken first: its caches are the warmest.
  std::vector<Instance*> idle;
  int started = 0;  // instance threads that have listed themselves idle
  std::condition_variable started_cv;
  int claims = 0;                     // instances claimed by callers (RunInline)
  std::condition_variable claims_cv;  // Stop waits here for claims to end
  std::vector<std::unique_ptr<Instance>> instances;

  std::atomic<int64_t> pending{0};
  std::atomic<int64_t> queued{0};  // queue.size(), for reading without mu (Queued)
  mutable std::mutex stats_mu;
  ModelStats stats;

  std::mutex stop_mu;  // serialises Stop so a second caller also waits for the threads

  std::string Prefix() const { return "model '" + config.model_name + "': "; }
  Status Validate(InferRequest& request, int64_t* batch) const;
  Status CheckInput(const TensorSpec& spec, const Tensor& t, std::size_t k, int64_t* batch,
                    const std::string& first_name) const;
  void Respond(ResponseCallback& done, InferResponse response) const;
  void Refuse(InferRequest& request, ResponseCallback& done, Status status, bool rejected);
  void InstanceLoop(Instance& inst);
  bool BusyWait(std::unique_lock<std::mutex>& lock, Instance& inst);
  std::size_t FormBatch(Clock::time_point now, std::vector<Pending>& rejected,
                        Clock::time_point* wake);
  bool SameShapes(Pending& a, Pending& b) const;
  void FailRejected(std::vector<Pending>& rejected);
  void Execute(Instance& inst, Clock::time_point start);
  // With mu held: takes the most recently idle instance off the idle list (nullptr if none).
  Instance* TakeIdle();
  void ListIdle(Instance& inst);
  void Unlist(Instance& inst);
  bool MayRunInline(int64_t batch) const;
  void RunInline(Instance& inst, Pending pending);
  Status Gather(Instance& inst, int64_t total);
  Status Scatter(Instance& inst, int64_t total);
};

// ---------------------------------------------------------------------------------------------
// Validation

Status Scheduler::Impl::CheckInput(const TensorSpec& spec, const Tensor& t, std::size_t k,
                                   int64_t* batch, const std::string& first_name) const {
  const auto input = [&] { return Prefix() + "input '" + spec.name + "': "; };
  if (t.empty() || (t.num_bytes() > 0 && t.data() == nullptr)) {
    return InvalidArgument(input() + "no tensor data");
  }
  if (t.dtype() != spec.dtype) {
    return InvalidArgument(input() + "expected data type " + std::string(DTypeName(spec.dtype)) +
                           ", got " + std::string(DTypeName(t.dtype())));
  }
  const auto& dims = t.shape().dims();
  bool match = dims.size() == spec.dims.size();
  for (std::size_t d = 0; match && d < dims.size(); ++d) {
    if (dims[d] < 0 || (spec.dims[d] >= 0 && dims[d] != spec.dims[d])) match = false;
  }
  if (!match) {
    return InvalidArgument(input() + "expected shape " + DimsString(spec.dims) +
                           (batched ? " (the first dimension is the batch)" : "") + ", got " +
                           t.shape().ToString());
  }
  if (!batched) return Status::Ok();
  const int64_t b = dims[0];
  const int64_t max = config.batching.max_batch_size;
  if (b < 1 || b > max) {
    return InvalidArgument(input() + "batch size " + std::to_string(b) + " is outside [1, " +
                           std::to_string(max) + "] (max_batch_size " + std::to_string(max) + ")");
  }
  if (k == 0) {
    *batch = b;
  } else if (b != *batch) {
    return InvalidArgument(input() + "batch size " + std::to_string(b) + " differs from input '" +
                           first_name + "' (" + std::to_string(*batch) +
                           "); all inputs of a request have the same batch size");
  }
  return Status::Ok();
}

Status Scheduler::Impl::Validate(InferRequest& request, int64_t* batch) const {
  const auto& specs = engine->inputs();
  auto& inputs = request.inputs;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (FindSpec(specs, inputs[i].name) < 0) {
      return InvalidArgument(Prefix() + "unexpected input '" + inputs[i].name +
                             "'; the model's inputs are " + NameList(specs));
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (inputs[j].name == inputs[i].name) {
        return InvalidArgument(Prefix() + "input '" + inputs[i].name + "' is given more than once");
      }
    }
  }
  if (inputs.size() != specs.size()) {
    for (const auto& spec : specs) {
      bool found = false;
      for (const auto& in : inputs) found = found || in.name == spec.name;
      if (!found) return InvalidArgument(Prefix() + "input '" + spec.name + "' is missing");
    }
  }
  // Names are now known, unique and complete: put them in engine order, in place, so execution
  // indexes inputs directly.
  for (std::size_t k = 0; k < specs.size(); ++k) {
    if (inputs[k].name == specs[k].name) continue;
    for (std::size_t j = k + 1; j < inputs.size(); ++j) {
      if (inputs[j].name == specs[k].name) {
        std::swap(inputs[k], inputs[j]);
        break;
      }
    }
  }
  *batch = 1;
  for (std::size_t k = 0; k < specs.size(); ++k) {
    RETURN_IF_ERROR(CheckInput(specs[k], inputs[k].tensor, k, batch, specs[0].name));
  }
  for (const auto& name : request.outputs) {
    if (FindSpec(engine->outputs(), name) < 0) {
      return InvalidArgument(Prefix() + "requested output '" + name +
                             "' does not exist; the model's outputs are " +
                             NameList(engine->outputs()));
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Responses

void Scheduler::Impl::Respond(ResponseCallback& done, InferResponse response) const {
  if (!done) return;
  // A throwing callback is a frontend bug; it must not take the instance thread (and with it
  // the server) down, nor skip the other requests of the batch.
  try {
    done(std::move(response));
  } catch (const std::exception& e) {
    LARSERVE_LOG(kError) << Prefix() << "response callback threw: " << e.what();
  } catch (...) {
    LARSERVE_LOG(kError) << Prefix() << "response callback threw";
  }
}

void Scheduler::Impl::Refuse(InferRequest& request, ResponseCallback& done, Status status,
                             bool rejected) {
  const Clock::time_point now = Clock::now();
  {
    std::lock_guard<std::mutex> lock(stats_mu);
    Add(stats.fail, NsBetween(request.arrival, now));
    if (rejected) ++stats.rejected;
  }
  Respond(done, InferResponse{std::move(request.id), std::move(status), {}});
}

void Scheduler::Impl::FailRejected(std::vector<Pending>& rejected) {
  const Clock::time_point now = Clock::now();
  {
    std::lock_guard<std::mutex> lock(stats_mu);
    for (const auto& p : rejected) Add(stats.fail, NsBetween(p.request.arrival, now));
    stats.rejected += rejected.size();
  }
  pending.fetch_sub(static_cast<int64_t>(rejected.size()), std::memory_order_relaxed);
  for (auto& p : rejected) {
    const uint64_t waited_us = NsBetween(p.queued_at, now) / 1000;
    Respond(p.done, InferResponse{std::move(p.request.id),
                                  Unavailable(Prefix() + "request timeout expired after " +
                                              std::to_string(waited_us) + " us in the queue"),
                                  {}});
  }
  rejected.clear();
}

// ---------------------------------------------------------------------------------------------
// Batch formation (Triton's DynamicBatchScheduler::GetDynamicBatch)

bool Scheduler::Impl::SameShapes(Pending& a, Pending& b) const {
  for (std::size_t k = 0; k < a.request.inputs.size(); ++k) {
    const auto& x = a.request.inputs[k].tensor.shape().dims();
    const auto& y = b.request.inputs[k].tensor.shape().dims();
    if (!std::equal(x.begin() + 1, x.end(), y.begin() + 1, y.end())) return false;
  }
  return true;
}

// Called with mu held and the queue not empty. Moves requests whose REJECT timeout expired into
// `rejected`; returns how many requests from the front make the next batch, or 0 with `wake` set
// to when the decision could change (more requests may still arrive and wake the caller sooner).
std::size_t Scheduler::Impl::FormBatch(Clock::time_point now, std::vector<Pending>& rejected,
                                       Clock::time_point* wake) {
  const BatchingConfig& b = config.batching;
  std::size_t n = 0;      // requests in the pending batch (a prefix of the queue)
  int64_t total = 0;      // their rows
  std::size_t best = 0;   // requests in the batch to send now if the delay has not expired
  bool send_now = false;  // the next request cannot join: waiting cannot grow the batch
  Clock::time_point earliest_deadline = Clock::time_point::max();
  while (n < queue.size()) {
    Pending& p = queue[n];
    if (p.deadline <= now) {
      rejected.push_back(queue.take_at(n));
      continue;
    }
    // Without a batch dimension the dynamic batcher still queues (and applies the queue policy)
    // but, as Triton's, runs one request at a time.
    if (!b.dynamic || !batched) return 1;
    if (n > 0) {
      // Beyond the largest preferred size: remember the batch so far, as Triton does, but keep
      // looking so a batch can still grow up to max_batch_size once the delay has expired.
      if (best == 0 && total + p.batch > max_preferred) best = n;
      // Never split a request; never reorder (FIFO): a request that does not fit ends the batch.
      if (total + p.batch > b.max_batch_size || (variable_dims && !SameShapes(queue[0], p))) {
        send_now = true;
        break;
      }
    }
    total += p.batch;
    ++n;
    earliest_deadline = std::min(earliest_deadline, p.deadline);
    if (std::binary_search(preferred.begin(), preferred.end(), total)) best = n;
  }
  if (n == 0) return 0;  // everything examined had timed out
  const auto delay = std::chrono::microseconds(b.max_queue_delay_us);
  const Clock::time_point oldest = queue[0].queued_at;
  const bool delay_exceeded = b.max_queue_delay_us != 0 && now - oldest >= delay;
  if (best > 0 && !delay_exceeded) return best;
  if (send_now || total >= max_preferred || delay_exceeded || b.max_queue_delay_us == 0) return n;
  *wake = std::min(oldest + delay, earliest_deadline);
  return 0;
}

void Scheduler::Impl::InstanceLoop(Instance& inst) {
  SetCurrentThreadName("lsv-instance");  // its OpenMP team inherits the name
#if defined(__linux__)
  // Timed waits (max_queue_delay, queue timeouts) end within microseconds of their deadline
  // rather than within Linux's default 50 us timer slack.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
#endif
#if defined(__x86_64__) || defined(__i386__)
  // Denormal inputs and results are taken as zero (FTZ and DAZ, as TensorFlow Serving's
  // threads do): on x86 every arithmetic operation touching a denormal takes a slow microcode
  // path, so a request of random bytes (perf_analyzer's default data) ran 15% slower, and crafted
  // inputs could slow the server far more. The intra-op (OpenMP) threads this thread starts
  // inherit the setting. Results differ only where a value falls below 1.2e-38.
  _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
  _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
  {
    std::lock_guard<std::mutex> lock(mu);
    ListIdle(inst);
    ++started;
  }
  started_cv.notify_all();
  while (true) {
    Clock::time_point start;
    {
      std::unique_lock<std::mutex> lock(mu);
      while (true) {
        if (stopping) return;  // Stop fails whatever is still queued
        if (inst.claimed || queue.empty()) {
          if (!inst.claimed) ListIdle(inst);
          if (BusyWait(lock, inst)) continue;
          inst.cv.wait(lock);
          continue;
        }
        start = Clock::now();
        Clock::time_point wake;
        const std::size_t take = FormBatch(start, inst.rejected, &wake);
        if (take > 0) {
          for (std::size_t i = 0; i < take; ++i) inst.batch.push_back(queue.pop_front());
          break;
        }
        if (!inst.rejected.empty()) break;  // answer them now rather than after the delay
        if (queue.empty()) continue;
        ListIdle(inst);  // a new request may complete the batch sooner
        inst.cv.wait_until(lock, wake);
      }
      Unlist(inst);
      queued.store(static_cast<int64_t>(queue.size()), std::memory_order_relaxed);
      // Requests left behind go to another idle instance rather than waiting for this batch.
      if (!queue.empty()) {
        if (Instance* other = TakeIdle()) other->cv.notify_one();
      }
    }
    if (!inst.rejected.empty()) FailRejected(inst.rejected);
    if (!inst.batch.empty()) Execute(inst, start);
  }
}

// With mu held (released while polling): when busy waiting is on and `inst` is the idle
// instance that the next request goes to (TakeIdle takes the last listed), polls the queue's
// size for up to busy_wait_us. True when work is queued or the scheduler stops (the caller
// looks again), false when the caller should sleep.
bool Scheduler::Impl::BusyWait(std::unique_lock<std::mutex>& lock, Instance& inst) {
  if (config.busy_wait_us <= 0 || inst.claimed || idle.empty() || idle.back() != &inst) {
    return false;
  }
  lock.unlock();
  const Clock::time_point until = Clock::now() + std::chrono::microseconds(config.busy_wait_us);
  while (queued.load(std::memory_order_relaxed) == 0 &&
         !stop_polling.load(std::memory_order_relaxed) && Clock::now() < until) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();  // lets the sibling hyperthread run, saves power
#endif
  }
  lock.lock();
  // `queued` may be stale: only the queue itself says whether there is work.
  return !queue.empty() || stopping;
}

Scheduler::Impl::Instance* Scheduler::Impl::TakeIdle() {
  if (idle.empty()) return nullptr;
  Instance* inst = idle.back();
  idle.pop_back();
  inst->listed = false;
  return inst;
}

void Scheduler::Impl::ListIdle(Instance& inst) {
  if (inst.listed) return;
  idle.push_back(&inst);
  inst.listed = true;
}

void Scheduler::Impl::Unlist(Instance& inst) {
  if (!inst.listed) return;
  idle.erase(std::find(idle.begin(), idle.end(), &inst));
  inst.listed = false;
}

// Whether a request of `batch` rows, arriving to an empty queue with an instance idle, would
// be executed alone and at once by the instance anyway, on one intra-op thread: then the
// caller may run it itself (RunInline) and save the hand-off to the instance thread and back.
// Not with a queue delay that could still grow its batch, and not for runs that use several
// intra-op threads (an OpenMP team would stay behind on the caller's thread).
bool Scheduler::Impl::MayRunInline(int64_t batch) const {
  if (config.busy_wait_us > 0) return false;  // an instance polls: handing over is faster
  const BatchingConfig& b = config.batching;
  if (b.dynamic && batched && b.max_queue_delay_us != 0 && batch < max_preferred) return false;
  return engine->RunThreads(batched ? batch : 0) == 1;
}

// Runs one request on a claimed instance's context on the caller's thread, as the instance's
// thread would (the same statistics, denormals flushed to zero), then gives the instance back:
// to its thread if requests queued meanwhile, else to the idle list.
void Scheduler::Impl::RunInline(Instance& inst, Pending pending) {
#if defined(__x86_64__) || defined(__i386__)
  const unsigned int saved_csr = _mm_getcsr();
  _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
  _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
  const Clock::time_point start = Clock::now();
  inst.batch.push_back(std::move(pending));
  Execute(inst, start);
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(saved_csr);
#endif
  std::lock_guard<std::mutex> lock(mu);
  inst.claimed = false;
  --claims;
  if (stopping) {
    claims_cv.notify_all();
  } else if (!queue.empty()) {
    inst.cv.notify_one();  // its thread, still waiting, takes the queued work
  } else {
    ListIdle(inst);
  }
}

// ---------------------------------------------------------------------------------------------
// Execution

Status Scheduler::Impl::Gather(Instance& inst, int64_t total) {
  auto& batch = inst.batch;
  const std::size_t num_inputs = engine->inputs().size();
  if (batch.size() == 1) {
    // A batch of one runs on the request's own tensors: no copy.
    for (std::size_t k = 0; k < num_inputs; ++k) {
      inst.run_inputs[k] = batch[0].request.inputs[k].tensor;
    }
    return Status::Ok();
  }
  for (std::size_t k = 0; k < num_inputs; ++k) {
    const Tensor& first = batch[0].request.inputs[k].tensor;
    std::size_t bytes = 0;
    for (const auto& p : batch) bytes += p.request.inputs[k].tensor.num_bytes();
    Tensor& buffer = inst.scratch[k];
    if (buffer.empty() || buffer.num_bytes() < bytes) {
      // Sized for the largest batch the model takes, so it is allocated once per instance.
      const std::size_t row = first.num_bytes() / static_cast<std::size_t>(first.shape()[0]);
      const std::size_t want =
          std::max(bytes, row * static_cast<std::size_t>(config.batching.max_batch_size));
      auto created = Tensor::Create(DType::kUInt8, Shape{static_cast<int64_t>(want)});
      if (!created.ok()) {
        return created.status().WithContext(Prefix() + "batching input '" +
                                            engine->inputs()[k].name + "'");
      }
      buffer = std::move(created).value();
    }
    auto* dst = static_cast<uint8_t*>(buffer.data());
    for (const auto& p : batch) {
      const Tensor& t = p.request.inputs[k].tensor;
      if (t.num_bytes() == 0) continue;
      std::memcpy(dst, t.data(), t.num_bytes());
      dst += t.num_bytes();
    }
    Shape shape = first.shape();
    shape[0] = total;
    // A view of the instance's buffer: safe because every output is copied out per request
    // (Scatter) before the buffer is reused, even one that aliases an input.
    inst.run_inputs[k] = Tensor::View(first.dtype(), std::move(shape), buffer.data());
  }
  return Status::Ok();
}

Status Scheduler::Impl::Scatter(Instance& inst, int64_t total) {
  const auto& specs = engine->outputs();
  const auto& outputs = inst.run_outputs;
  if (outputs.size() != specs.size()) {
    return Internal(Prefix() + "the engine returned " + std::to_string(outputs.size()) +
                    " outputs, expected " + std::to_string(specs.size()));
  }
  if (batched) {
    for (std::size_t o = 0; o < outputs.size(); ++o) {
      const Shape& s = outputs[o].shape();
      if (s.rank() == 0 || s[0] != total) {
        return Internal(Prefix() + "output '" + specs[o].name + "' has shape " + s.ToString() +
                        ", expected the batch (" + std::to_string(total) +
                        ") as its first dimension");
      }
    }
  }
  const bool single = inst.batch.size() == 1;
  int64_t row = 0;  // first row of the current request in the batch
  inst.responses.clear();
  for (auto& p : inst.batch) {
    InferResponse& response = inst.responses.emplace_back();
    response.id = std::move(p.request.id);
    const std::size_t count = p.request.outputs.empty() ? specs.size() : p.request.outputs.size();
    response.outputs.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t o = p.request.outputs.empty()
                                ? i
                                : static_cast<std::size_t>(FindSpec(specs, p.request.outputs[i]));
      const Tensor& out = outputs[o];
      if (single) {
        // The engine allocated this output for this run alone: hand it over without a copy.
        response.outputs.push_back({specs[o].name, out});
        continue;
      }
      const std::size_t row_bytes = out.num_bytes() / static_cast<std::size_t>(total);
      Shape shape = out.shape();
      shape[0] = p.batch;
      auto part = Tensor::Create(out.dtype(), std::move(shape));
      if (!part.ok()) {
        return part.status().WithContext(Prefix() + "splitting output '" + specs[o].name + "'");
      }
      if (part->num_bytes() > 0) {
        std::memcpy(
            part->data(),
            static_cast<const uint8_t*>(out.data()) + static_cast<std::size_t>(row) * row_bytes,
            part->num_bytes());
      }
      response.outputs.push_back({specs[o].name, std::move(part).value()});
    }
    row += p.batch;
  }
  return Status::Ok();
}

void Scheduler::Impl::Execute(Instance& inst, Clock::time_point start) {
  auto& batch = inst.batch;
  int64_t total = 0;
  for (const auto& p : batch) total += p.batch;

  Status status = Gather(inst, total);
  const Clock::time_point input_end = Clock::now();
  if (status.ok()) {
    // The runtime does not throw, but an allocation failure inside it could; it must fail this
    // batch, not terminate the server.
    try {
      status = inst.context->Run(inst.run_inputs, &inst.run_outputs);
    } catch (const std::exception& e) {
      status = Internal(std::string("exception during execution: ") + e.what());
    }
    if (!status.ok()) status = status.WithContext(Prefix() + "execution failed");
  }
  const Clock::time_point infer_end = Clock::now();
  if (status.ok()) status = Scatter(inst, total);
  const Clock::time_point end = Clock::now();
  // Release the batch's tensors now rather than when the next batch overwrites them.
  for (auto& t : inst.run_inputs) t = Tensor();
  inst.run_outputs.clear();

  const uint64_t input_ns = NsBetween(start, input_end);
  const uint64_t infer_ns = NsBetween(input_end, infer_end);
  const uint64_t output_ns = NsBetween(infer_end, end);
  const uint64_t now_ms =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  {
    std::lock_guard<std::mutex> lock(stats_mu);
    if (status.ok()) {
      for (const auto& p : batch) {
        Add(stats.success, NsBetween(p.request.arrival, end));
        Add(stats.queue, NsBetween(p.queued_at, start));
        Add(stats.compute_input, input_ns);
        Add(stats.compute_infer, infer_ns);
        Add(stats.compute_output, output_ns);
      }
      stats.inference_count += static_cast<uint64_t>(total);
      ++stats.execution_count;
      BatchStat& bs = stats.batch_stats[total];
      Add(bs.compute_input, input_ns);
      Add(bs.compute_infer, infer_ns);
      Add(bs.compute_output, output_ns);
    } else {
      for (const auto& p : batch) Add(stats.fail, NsBetween(p.request.arrival, end));
    }
    stats.last_inference_ms = now_ms;
  }
  // Completed before the callbacks run, so a client that got its response sees it counted.
  pending.fetch_sub(static_cast<int64_t>(batch.size()), std::memory_order_relaxed);

  for (std::size_t i = 0; i < batch.size(); ++i) {
    Pending& p = batch[i];
    if (status.ok()) {
      Respond(p.done, std::move(inst.responses[i]));
    } else {
      Respond(p.done, InferResponse{std::move(p.request.id), status, {}});
    }
  }
  inst.responses.clear();
  batch.clear();
}

// ---------------------------------------------------------------------------------------------
// Public API

StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(
    std::shared_ptr<const runtime::Engine> engine, SchedulerConfig config) {
  const std::string model = "model '" + config.model_name + "': ";
  if (!engine) return InvalidArgument(model + "no engine");
  BatchingConfig& b = config.batching;
  if (config.instances < 1) {
    return InvalidArgument(model + "instance count " + std::to_string(config.instances) +
                           " must be at least 1");
  }
  if (b.max_batch_size < 0) {
    return InvalidArgument(model + "max_batch_size " + std::to_string(b.max_batch_size) +
                           " is negative");
  }
  if (b.max_queue_size < 0) {
    return InvalidArgument(model + "max_queue_size " + std::to_string(b.max_queue_size) +
                           " is negative");
  }
  if (b.max_queue_delay_us > kMaxDurationUs || b.default_timeout_us > kMaxDurationUs) {
    return InvalidArgument(model + "max_queue_delay_us " + std::to_string(b.max_queue_delay_us) +
                           " or default_timeout_us " + std::to_string(b.default_timeout_us) +
                           " exceeds " + std::to_string(kMaxDurationUs));
  }
  if (!b.dynamic && !b.preferred_batch_sizes.empty()) {
    return InvalidArgument(model + "preferred batch sizes are given without dynamic batching");
  }
  for (int64_t size : b.preferred_batch_sizes) {
    if (size < 1 || size > b.max_batch_size) {
      return InvalidArgument(model + "preferred batch size " + std::to_string(size) +
                             " is outside [1, max_batch_size " + std::to_string(b.max_batch_size) +
                             "]");
    }
  }
  if (engine->inputs().empty()) return InvalidArgument(model + "the engine has no inputs");
  const bool batched = b.max_batch_size > 0;
  bool variable_dims = false;
  for (const auto& spec : engine->inputs()) {
    if (batched && (spec.dims.empty() || spec.dims[0] != -1)) {
      return InvalidArgument(model + "max_batch_size " + std::to_string(b.max_batch_size) +
                             " needs a dynamic first (batch) dimension, but input '" + spec.name +
                             "' has shape " + DimsString(spec.dims));
    }
    for (std::size_t d = batched ? 1 : 0; d < spec.dims.size(); ++d) {
      variable_dims = variable_dims || spec.dims[d] < 0;
    }
  }
  if (batched) {
    // Outputs of unknown shape (empty dims) are checked per execution instead.
    for (const auto& spec : engine->outputs()) {
      if (!spec.dims.empty() && spec.dims[0] != -1) {
        return InvalidArgument(model + "max_batch_size " + std::to_string(b.max_batch_size) +
                               " needs a dynamic first (batch) dimension, but output '" +
                               spec.name + "' has shape " + DimsString(spec.dims));
      }
    }
    const auto& options = engine->options();
    if (options.batch_max > 0 && b.max_batch_size > options.batch_max) {
      return InvalidArgument(model + "max_batch_size " + std::to_string(b.max_batch_size) +
                             " exceeds the engine's batch profile maximum " +
                             std::to_string(options.batch_max) +
                             "; rebuild the plan with a larger --batch maximum");
    }
  }

  std::unique_ptr<Scheduler> scheduler(new Scheduler());
  scheduler->impl_ = std::make_unique<Impl>();
  Impl& impl = *scheduler->impl_;
  impl.engine = std::move(engine);
  impl.config = std::move(config);
  impl.batched = batched;
  impl.variable_dims = variable_dims;
  impl.preferred = impl.config.batching.preferred_batch_sizes;
  std::sort(impl.preferred.begin(), impl.preferred.end());
  impl.preferred.erase(std::unique(impl.preferred.begin(), impl.preferred.end()),
                       impl.preferred.end());
  impl.max_preferred =
      impl.preferred.empty() ? impl.config.batching.max_batch_size : impl.preferred.back();

  const std::size_t num_inputs = impl.engine->inputs().size();
  for (int i = 0; i < impl.config.instances; ++i) {
    auto inst = std::make_unique<Impl::Instance>();
    inst->context = impl.engine->CreateContext();
    inst->run_inputs.resize(num_inputs);
    inst->scratch.resize(num_inputs);
    inst->batch.reserve(
        static_cast<std::size_t>(std::max<int64_t>(1, impl.config.batching.max_batch_size)));
    impl.instances.push_back(std::move(inst));
  }
  for (auto& inst : impl.instances) {
    try {
      Impl::Instance* p = inst.get();
      inst->thread = std::thread([&impl, p] { impl.InstanceLoop(*p); });
    } catch (const std::exception& e) {
      scheduler->Stop();
      return ResourceExhausted(model + "cannot start an instance thread: " + e.what());
    }
  }
  {
    // Ready when every instance waits for work, so the first requests can run inline.
    std::unique_lock<std::mutex> lock(impl.mu);
    impl.started_cv.wait(lock, [&impl] { return impl.started == impl.config.instances; });
  }
  return scheduler;
}

Scheduler::~Scheduler() {
  if (impl_) Stop();
}

const SchedulerConfig& Scheduler::config() const { return impl_->config; }

int64_t Scheduler::Queued() const { return impl_->queued.load(std::memory_order_relaxed); }

void Scheduler::Enqueue(InferRequest request, ResponseCallback done, bool may_run_inline) {
  Impl& impl = *impl_;
  int64_t batch = 1;
  // Validation runs on the caller's thread, outside the queue lock, so many frontend threads
  // validate in parallel and the lock is held only for the push.
  Status status = impl.Validate(request, &batch);
  if (!status.ok()) {
    impl.Refuse(request, done, std::move(status), /*rejected=*/false);
    return;
  }
  const BatchingConfig& b = impl.config.batching;
  uint64_t timeout_us = b.default_timeout_us;
  if (b.allow_timeout_override && request.timeout_us != 0 &&
      (timeout_us == 0 || request.timeout_us < timeout_us)) {
    timeout_us = std::min(request.timeout_us, kMaxDurationUs);
  }
  const Clock::time_point queued_at = Clock::now();
  Clock::time_point deadline = Clock::time_point::max();
  if (b.timeout_reject && timeout_us != 0) {
    deadline = queued_at + std::chrono::microseconds(timeout_us);
  }

  Impl::Instance* wake = nullptr;
  Impl::Instance* inline_instance = nullptr;
  const bool try_inline = may_run_inline && impl.MayRunInline(batch);
  {
    std::unique_lock<std::mutex> lock(impl.mu);
    if (impl.stopping) {
      lock.unlock();
      impl.Refuse(request, done,
                  Unavailable(impl.Prefix() + "the model is stopping and takes no new requests"),
                  /*rejected=*/false);
      return;
    }
    if (b.max_queue_size > 0 && impl.queue.size() >= static_cast<std::size_t>(b.max_queue_size)) {
      lock.unlock();
      impl.Refuse(request, done,
                  Unavailable(impl.Prefix() + "queue full (max_queue_size " +
                              std::to_string(b.max_queue_size) + ")"),
                  /*rejected=*/true);
      return;
    }
    impl.pending.fetch_add(1, std::memory_order_relaxed);
    if (try_inline && impl.queue.empty()) inline_instance = impl.TakeIdle();
    if (inline_instance) {
      inline_instance->claimed = true;
      ++impl.claims;
    } else {
      impl.queue.push_back(
          Pending{std::move(request), std::move(done), batch, deadline, queued_at});
      impl.queued.store(static_cast<int64_t>(impl.queue.size()), std::memory_order_relaxed);
      wake = impl.TakeIdle();
    }
  }
  if (wake) wake->cv.notify_one();
  if (inline_instance) {
    impl.RunInline(*inline_instance,
                   Pending{std::move(request), std::move(done), batch, deadline, queued_at});
  }
}

ModelStats Scheduler::Stats() const {
  ModelStats copy;
  {
    std::lock_guard<std::mutex> lock(impl_->stats_mu);
    copy = impl_->stats;
  }
  copy.pending = impl_->pending.load(std::memory_order_relaxed);
  return copy;
}

void Scheduler::Stop() {
  Impl& impl = *impl_;
  std::lock_guard<std::mutex> stop_lock(impl.stop_mu);
  std::vector<Pending> drained;
  {
    std::lock_guard<std::mutex> lock(impl.mu);
    if (!impl.stopping) {
      impl.stopping = true;
      impl.stop_polling.store(true, std::memory_order_relaxed);
      drained.reserve(impl.queue.size());
      while (!impl.queue.empty()) drained.push_back(impl.queue.pop_front());
      impl.queued.store(0, std::memory_order_relaxed);
    }
  }
  {
    std::unique_lock<std::mutex> lock(impl.mu);
    for (auto& inst : impl.instances) inst->cv.notify_all();
    // Callers running requests inline finish them (and their callbacks) first.
    impl.claims_cv.wait(lock, [&impl] { return impl.claims == 0; });
  }
  if (!drained.empty()) {
    const Clock::time_point now = Clock::now();
    {
      std::lock_guard<std::mutex> lock(impl.stats_mu);
      for (const auto& p : drained) Add(impl.stats.fail, NsBetween(p.request.arrival, now));
    }
    impl.pending.fetch_sub(static_cast<int64_t>(drained.size()), std::memory_order_relaxed);
    for (auto& p : drained) {
      impl.Respond(p.done, InferResponse{std::move(p.request.id),
                                         Unavailable(impl.Prefix() +
                                                     "the model was stopped before the request "
                                                     "was executed"),
                                         {}});
    }
  }
  for (auto& inst : impl.instances) {
    if (inst->thread.joinable()) inst->thread.join();
  }
}

}  // namespace larserve::serve
