// The scheduler (dynamic batcher + instances) on real engines built from small hand-made graphs,
// with no network: correctness of every response against the engine run directly, batch
// formation (full, preferred, delayed, delay 0), queue policy (full queue, timeouts), request
// validation, engine errors, Stop, and the statistics.
//
// No test asserts a duration. Where a test needs requests to pile up in the queue it holds the
// only instance inside the first request's callback (a Gate) until they are all enqueued, so the
// batches that form afterwards are deterministic.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "larserve/core/rng.h"
#include "larserve/graph/graph.h"
#include "larserve/runtime/backend.h"
#include "larserve/runtime/engine.h"
#include "larserve/serve/scheduler.h"

namespace larserve::serve {
namespace {

using graph::Graph;
using Dims = std::vector<int64_t>;

Tensor RandomTensor(const Dims& dims, Rng& rng, DType dtype = DType::kFloat32) {
  Tensor t = *Tensor::Create(dtype, Shape(dims));
  if (dtype == DType::kFloat32) {
    for (float& v : t.Span<float>()) v = static_cast<float>(rng.Normal());
  }
  return t;
}

// Builds graphs by hand, with named graph inputs and outputs.
class Builder {
 public:
  explicit Builder(std::string name) : rng_(11) {
    g_.name = std::move(name);
    g_.opset = 17;
  }
  int Input(const std::string& name, Dims dims) {
    const int id = Value(name, std::move(dims));
    g_.inputs.push_back(id);
    return id;
  }
  int Weights(const std::string& name, const Dims& dims) {
    graph::Value v;
    v.name = name;
    v.dims = dims;
    v.has_shape = true;
    v.constant = RandomTensor(dims, rng_);
    return g_.AddValue(std::move(v));
  }
  int Node(const std::string& op, std::vector<int> in, const std::string& out_name, Dims out_dims) {
    const int out = Value(out_name, std::move(out_dims));
    graph::Node n;
    n.name = op + "_" + std::to_string(g_.nodes.size());
    n.op_type = op;
    n.inputs = std::move(in);
    n.outputs = {out};
    g_.nodes.push_back(std::move(n));
    g_.values[out].producer = static_cast<int>(g_.nodes.size()) - 1;
    return out;
  }
  void Output(int v) { g_.outputs.push_back(v); }
  Graph& graph() { return g_; }

 private:
  int Value(const std::string& name, Dims dims) {
    graph::Value v;
    v.name = name;
    v.dims = std::move(dims);
    v.has_shape = true;
    return g_.AddValue(std::move(v));
  }
  Graph g_;
  Rng rng_;
};

// x [-1,16] -> Gemm(W [16,8], B [8]) -> Relu -> y [-1,8]
Graph GemmReluGraph() {
  Builder b("gemm_relu");
  const int x = b.Input("x", {-1, 16});
  const int w = b.Weights("W", {16, 8});
  const int bias = b.Weights("B", {8});
  const int h = b.Node("Gemm", {x, w, bias}, "h", {-1, 8});
  b.Output(b.Node("Relu", {h}, "y", {-1, 8}));
  return b.graph();
}

// a, b [-1,4] -> sum = a + b, prod = a * b (two inputs, two outputs)
Graph TwoOutputGraph() {
  Builder b("two");
  const int a = b.Input("a", {-1, 4});
  const int bb = b.Input("b", {-1, 4});
  b.Output(b.Node("Add", {a, bb}, "sum", {-1, 4}));
  b.Output(b.Node("Mul", {a, bb}, "prod", {-1, 4}));
  return b.graph();
}

// x [-1,-1] -> MatMul(W [4,3]) -> y [-1,3]: a request with x [n,5] passes validation (the second
// dimension is free) and fails inside the engine.
Graph FreeInnerDimGraph() {
  Builder b("free_k");
  const int x = b.Input("x", {-1, -1});
  const int w = b.Weights("W", {4, 3});
  b.Output(b.Node("MatMul", {x, w}, "y", {-1, 3}));
  return b.graph();
}

// x [2,16]: no batch dimension to batch along.
Graph FixedBatchGraph() {
  Builder b("fixed");
  const int x = b.Input("x", {2, 16});
  b.Output(b.Node("Relu", {x}, "y", {2, 16}));
  return b.graph();
}

std::shared_ptr<const runtime::Engine> BuildEngine(const Graph& g, const std::string& backend) {
  runtime::BuildOptions options;
  options.backend = backend;
  options.threads = 1;
  auto e = runtime::Engine::Build(g, options);
  EXPECT_TRUE(e.ok()) << backend << ": " << e.status().ToString();
  if (!e.ok()) return nullptr;
  return std::shared_ptr<const runtime::Engine>(std::move(e).value());
}

std::vector<Tensor> RunDirect(const runtime::Engine& engine, const std::vector<Tensor>& inputs) {
  auto ctx = engine.CreateContext();
  std::vector<Tensor> out;
  Status s = ctx->Run(inputs, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// Batched execution may accumulate in another order than a run of one request (oneDNN blocks
// by batch size), so batched results are compared with a float tolerance.
::testing::AssertionResult Close(const Tensor& want, const Tensor& got, bool exact = false) {
  if (got.dtype() != want.dtype() || got.shape() != want.shape()) {
    return ::testing::AssertionFailure()
           << "got " << got.shape().ToString() << " " << DTypeName(got.dtype()) << ", want "
           << want.shape().ToString() << " " << DTypeName(want.dtype());
  }
  auto w = want.Span<float>();
  auto g = got.Span<float>();
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double tol = exact ? 0.0 : 1e-5 + 1e-4 * std::fabs(w[i]);
    if (std::fabs(static_cast<double>(w[i]) - g[i]) > tol) {
      return ::testing::AssertionFailure()
             << "element " << i << " is " << g[i] << ", want " << w[i];
    }
  }
  return ::testing::AssertionSuccess();
}

InferRequest MakeRequest(std::string id, std::vector<NamedTensor> inputs,
                         std::vector<std::string> outputs = {}) {
  InferRequest r;
  r.id = std::move(id);
  r.inputs = std::move(inputs);
  r.outputs = std::move(outputs);
  return r;
}

// Enqueue and wait for the response.
InferResponse Call(Scheduler& s, InferRequest request) {
  auto promise = std::make_shared<std::promise<InferResponse>>();
  auto future = promise->get_future();
  s.Enqueue(std::move(request), [promise](InferResponse r) { promise->set_value(std::move(r)); });
  return future.get();
}

// Collects asynchronous responses by id and counts how often each id was answered.
class Collector {
 public:
  ResponseCallback Callback() {
    return [this](InferResponse r) {
      std::lock_guard<std::mutex> lock(mu_);
      ++calls_[r.id];
      responses_[r.id] = std::move(r);
      ++total_;
      cv_.notify_all();
    };
  }
  void WaitFor(std::size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return total_ >= n; });
  }
  std::size_t total() {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }
  InferResponse Get(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return responses_.at(id);
  }
  std::map<std::string, int> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, int> calls_;
  std::map<std::string, InferResponse> responses_;
  std::size_t total_ = 0;
};

// Holds the instance that answers the gate request inside its callback until Release().
class Gate {
 public:
  Gate() : release_(release_promise_.get_future().share()) {}
  ~Gate() { Release(); }
  ResponseCallback Callback() {
    return [this](InferResponse r) {
      response_ = std::move(r);
      entered_.set_value();
      release_.wait();
    };
  }
  void WaitEntered() { entered_.get_future().wait(); }
  void Release() {
    if (!released_) {
      released_ = true;
      release_promise_.set_value();
    }
  }
  const InferResponse& response() const { return response_; }

 private:
  std::promise<void> entered_;
  std::promise<void> release_promise_;
  std::shared_future<void> release_;
  bool released_ = false;
  InferResponse response_;
};

std::unique_ptr<Scheduler> MakeScheduler(std::shared_ptr<const runtime::Engine> engine,
                                         SchedulerConfig config) {
  auto s = Scheduler::Create(std::move(engine), std::move(config));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return nullptr;
  return std::move(s).value();
}

SchedulerConfig BatchedConfig(const std::string& name, int64_t max_batch, bool dynamic,
                              uint64_t delay_us = 0, std::vector<int64_t> preferred = {},
                              int instances = 1) {
  SchedulerConfig c;
  c.model_name = name;
  c.instances = instances;
  c.batching.max_batch_size = max_batch;
  c.batching.dynamic = dynamic;
  c.batching.max_queue_delay_us = delay_us;
  c.batching.preferred_batch_sizes = std::move(preferred);
  return c;
}

// Every {count, ns} pair that counts successful requests has `n`; batch stats add up.
void ExpectStatsConsistent(const ModelStats& st, uint64_t n, uint64_t rows) {
  EXPECT_EQ(st.success.count, n);
  EXPECT_EQ(st.queue.count, n);
  EXPECT_EQ(st.compute_input.count, n);
  EXPECT_EQ(st.compute_infer.count, n);
  EXPECT_EQ(st.compute_output.count, n);
  EXPECT_GT(st.success.ns, 0u);
  EXPECT_GT(st.compute_infer.ns, 0u);
  EXPECT_EQ(st.inference_count, rows);
  EXPECT_LE(st.execution_count, n);
  EXPECT_EQ(st.pending, 0);
  EXPECT_GT(st.last_inference_ms, 0u);
  uint64_t executions = 0, batch_rows = 0;
  for (const auto& [size, bs] : st.batch_stats) {
    EXPECT_EQ(bs.compute_input.count, bs.compute_infer.count) << "batch " << size;
    EXPECT_EQ(bs.compute_output.count, bs.compute_infer.count) << "batch " << size;
    executions += bs.compute_infer.count;
    batch_rows += bs.compute_infer.count * static_cast<uint64_t>(size);
  }
  EXPECT_EQ(executions, st.execution_count);
  EXPECT_EQ(batch_rows, st.inference_count);
}

std::vector<std::string> Backends() {
  std::vector<std::string> b = {"reference"};
  if (runtime::CpuBackend()) b.push_back("cpu");
  return b;
}

// ---------------------------------------------------------------------------------------------
// Correctness

class SchedulerBackendTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SchedulerBackendTest, SingleRequestMatchesEngine) {
  auto engine = BuildEngine(GemmReluGraph(), GetParam());
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, false));
  ASSERT_TRUE(s);
  Rng rng(3);
  const Tensor x = RandomTensor({3, 16}, rng);
  const auto want = RunDirect(*engine, {x});
  InferResponse r = Call(*s, MakeRequest("only", {{"x", x}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.id, "only");
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(r.outputs[0].name, "y");
  EXPECT_TRUE(Close(want[0], r.outputs[0].tensor, /*exact=*/true));
  const ModelStats st = s->Stats();
  ExpectStatsConsistent(st, 1, 3);
  EXPECT_EQ(st.execution_count, 1u);
  EXPECT_EQ(st.batch_stats.count(3), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, SchedulerBackendTest, ::testing::ValuesIn(Backends()),
                         [](const auto& info) { return info.param; });

struct LoadCase {
  std::string backend;
  bool dynamic;
  uint64_t delay_us;
  std::vector<int64_t> preferred;
  int instances;
  bool async;  // each client enqueues all its requests before waiting (deeper queue)
};

std::string Describe(const LoadCase& c) {
  std::string name =
      c.backend + (c.dynamic ? "_dynamic_delay" + std::to_string(c.delay_us) : "_fifo");
  for (int64_t p : c.preferred) name += "_p" + std::to_string(p);
  return name + "_instances" + std::to_string(c.instances) + (c.async ? "_async" : "_sync");
}
std::string LoadCaseName(const ::testing::TestParamInfo<LoadCase>& info) {
  return Describe(info.param);
}
// Readable parameters in gtest's output and in the test names ctest discovers.
void PrintTo(const LoadCase& c, std::ostream* os) { *os << Describe(c); }

class SchedulerLoadTest : public ::testing::TestWithParam<LoadCase> {};

// 8 client threads x 50 requests of random batch 1..4: every response carries its own id and the
// outputs of its own inputs.
TEST_P(SchedulerLoadTest, ConcurrentClientsGetTheirOwnResults) {
  const LoadCase& c = GetParam();
  auto engine = BuildEngine(GemmReluGraph(), c.backend);
  ASSERT_TRUE(engine);
  constexpr int64_t kMaxBatch = 8;
  auto s = MakeScheduler(
      engine, BatchedConfig("gemm", kMaxBatch, c.dynamic, c.delay_us, c.preferred, c.instances));
  ASSERT_TRUE(s);
  constexpr int kThreads = 8, kRequests = 50;
  std::atomic<uint64_t> rows{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      Rng rng(DeriveSeed(42, {static_cast<uint64_t>(t)}));
      std::vector<std::string> ids;
      std::vector<Tensor> expected;
      Collector collector;
      for (int i = 0; i < kRequests; ++i) {
        const int64_t batch = 1 + static_cast<int64_t>(rng.NextU64() % 4);
        rows += static_cast<uint64_t>(batch);
        Tensor x = RandomTensor({batch, 16}, rng);
        expected.push_back(RunDirect(*engine, {x})[0]);
        ids.push_back("client" + std::to_string(t) + "-" + std::to_string(i));
        InferRequest req = MakeRequest(ids.back(), {{"x", x}});
        if (c.async) {
          s->Enqueue(std::move(req), collector.Callback());
        } else {
          InferResponse r = Call(*s, std::move(req));
          if (r.id != ids.back() || !r.status.ok() || r.outputs.size() != 1 ||
              !Close(expected.back(), r.outputs[0].tensor)) {
            ADD_FAILURE() << ids.back() << ": " << r.id << " " << r.status.ToString();
            ++failures;
          }
        }
      }
      if (!c.async) return;
      collector.WaitFor(ids.size());
      for (std::size_t i = 0; i < ids.size(); ++i) {
        InferResponse r = collector.Get(ids[i]);
        EXPECT_EQ(collector.calls().at(ids[i]), 1);
        if (!r.status.ok() || r.outputs.size() != 1 || !Close(expected[i], r.outputs[0].tensor)) {
          ADD_FAILURE() << ids[i] << ": " << r.status.ToString();
          ++failures;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  const ModelStats st = s->Stats();
  ExpectStatsConsistent(st, kThreads * kRequests, rows.load());
  EXPECT_EQ(st.fail.count, 0u);
  for (const auto& [size, bs] : st.batch_stats) {
    EXPECT_GE(size, 1);
    EXPECT_LE(size, kMaxBatch);
  }
}

std::vector<LoadCase> LoadCases() {
  std::vector<LoadCase> cases;
  for (const auto& backend : Backends()) {
    cases.push_back({backend, false, 0, {}, 1, false});
    cases.push_back({backend, true, 0, {}, 2, true});
    cases.push_back({backend, true, 200, {4, 8}, 3, false});
    cases.push_back({backend, true, 500, {}, 4, true});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Load, SchedulerLoadTest, ::testing::ValuesIn(LoadCases()), LoadCaseName);

// A model without a batch dimension (max_batch_size 0) runs requests one by one, whatever their
// (free) leading dimension; with dynamic_batching too (as Triton: it queues, never batches).
TEST(SchedulerTest, UnbatchedModelRunsRequestsOneByOne) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  ASSERT_TRUE(engine);
  for (bool dynamic : {false, true}) {
    SCOPED_TRACE(dynamic ? "dynamic" : "no dynamic batching");
    auto s = MakeScheduler(engine, BatchedConfig("gemm", 0, dynamic, 1000, {}, 2));
    ASSERT_TRUE(s);
    Rng rng(5);
    Collector collector;
    std::vector<Tensor> expected;
    for (int i = 0; i < 10; ++i) {
      Tensor x = RandomTensor({1 + i % 3, 16}, rng);
      expected.push_back(RunDirect(*engine, {x})[0]);
      s->Enqueue(MakeRequest(std::to_string(i), {{"x", x}}), collector.Callback());
    }
    collector.WaitFor(10);
    for (int i = 0; i < 10; ++i) {
      InferResponse r = collector.Get(std::to_string(i));
      ASSERT_TRUE(r.status.ok()) << r.status.ToString();
      EXPECT_TRUE(Close(expected[i], r.outputs[0].tensor, /*exact=*/true));
    }
    const ModelStats st = s->Stats();
    EXPECT_EQ(st.execution_count, 10u);
    EXPECT_EQ(st.inference_count, 10u);  // a request without a batch dimension counts as one
    ExpectStatsConsistent(st, 10, 10);
  }
}

// ---------------------------------------------------------------------------------------------
// Batch formation

// Requests queued behind a busy instance are taken max_batch_size rows at a time, with a long
// delay (batches are full, so nothing waits) and with delay 0 (take what is queued, no wait).
TEST(SchedulerTest, DynamicBatchingFormsFullBatches) {
  for (uint64_t delay_us : {uint64_t{0}, uint64_t{10'000'000}}) {
    SCOPED_TRACE("max_queue_delay_us " + std::to_string(delay_us));
    auto engine = BuildEngine(GemmReluGraph(), "reference");
    ASSERT_TRUE(engine);
    auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, delay_us));
    ASSERT_TRUE(s);
    Rng rng(9);
    Gate gate;
    s->Enqueue(MakeRequest("gate", {{"x", RandomTensor({8, 16}, rng)}}), gate.Callback());
    gate.WaitEntered();
    Collector collector;
    std::vector<Tensor> expected;
    for (int i = 0; i < 16; ++i) {
      Tensor x = RandomTensor({1, 16}, rng);
      expected.push_back(RunDirect(*engine, {x})[0]);
      s->Enqueue(MakeRequest(std::to_string(i), {{"x", x}}), collector.Callback());
    }
    EXPECT_EQ(s->Stats().pending, 16);  // the gate's request completed before its callback ran
    gate.Release();
    collector.WaitFor(16);
    for (int i = 0; i < 16; ++i) {
      InferResponse r = collector.Get(std::to_string(i));
      ASSERT_TRUE(r.status.ok()) << r.status.ToString();
      EXPECT_TRUE(Close(expected[i], r.outputs[0].tensor));
    }
    const ModelStats st = s->Stats();
    EXPECT_EQ(st.execution_count, 3u);
    ASSERT_EQ(st.batch_stats.size(), 1u);
    EXPECT_EQ(st.batch_stats.at(8).compute_infer.count, 3u);
    ExpectStatsConsistent(st, 17, 24);
  }
}

// With preferred sizes {2, 4} a backlog of 10 single rows goes out as 4, 4, 2 (never 8, the
// maximum), each sent as soon as it is reached without waiting for the 10 s delay; a lone row
// afterwards waits for the delay (here 50 ms) and then goes out alone.
TEST(SchedulerTest, PreferredBatchSizesAreHonoured) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 10'000'000, {2, 4}));
  ASSERT_TRUE(s);
  Rng rng(10);
  Gate gate;
  s->Enqueue(MakeRequest("gate", {{"x", RandomTensor({4, 16}, rng)}}), gate.Callback());
  gate.WaitEntered();
  Collector collector;
  for (int i = 0; i < 10; ++i) {
    s->Enqueue(MakeRequest(std::to_string(i), {{"x", RandomTensor({1, 16}, rng)}}),
               collector.Callback());
  }
  gate.Release();
  collector.WaitFor(10);
  ModelStats st = s->Stats();
  ASSERT_EQ(st.batch_stats.size(), 2u);
  EXPECT_EQ(st.batch_stats.at(4).compute_infer.count, 3u);  // gate + 2
  EXPECT_EQ(st.batch_stats.at(2).compute_infer.count, 1u);
  EXPECT_EQ(st.execution_count, 4u);
  ExpectStatsConsistent(st, 11, 14);

  auto lone = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 50'000, {2, 4}));
  ASSERT_TRUE(lone);
  InferResponse r = Call(*lone, MakeRequest("lone", {{"x", RandomTensor({1, 16}, rng)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  st = lone->Stats();
  EXPECT_EQ(st.batch_stats.count(1), 1u);
}

// Requests enqueued quickly from one thread while the batch waits for its (long) delay join it;
// the batch goes out when it reaches max_batch_size, not when the delay expires.
TEST(SchedulerTest, QueueDelayLetsBatchesForm) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("gemm", 4, true, 30'000'000));
  ASSERT_TRUE(s);
  Rng rng(12);
  Collector collector;
  std::vector<Tensor> expected;
  for (int i = 0; i < 4; ++i) {
    Tensor x = RandomTensor({1, 16}, rng);
    expected.push_back(RunDirect(*engine, {x})[0]);
    s->Enqueue(MakeRequest(std::to_string(i), {{"x", x}}), collector.Callback());
  }
  collector.WaitFor(4);
  for (int i = 0; i < 4; ++i) {
    InferResponse r = collector.Get(std::to_string(i));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_TRUE(Close(expected[i], r.outputs[0].tensor));
  }
  const ModelStats st = s->Stats();
  EXPECT_EQ(st.execution_count, 1u);
  EXPECT_EQ(st.batch_stats.count(4), 1u);
  ExpectStatsConsistent(st, 4, 4);
}

// Requested outputs are selected (and ordered) per request inside one batch.
TEST(SchedulerTest, RequestedOutputsPerRequestInABatch) {
  auto engine = BuildEngine(TwoOutputGraph(), "reference");
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("two", 16, true, 0));
  ASSERT_TRUE(s);
  Rng rng(13);
  Gate gate;
  s->Enqueue(
      MakeRequest("gate", {{"a", RandomTensor({1, 4}, rng)}, {"b", RandomTensor({1, 4}, rng)}}),
      gate.Callback());
  gate.WaitEntered();
  const std::vector<std::vector<std::string>> selections = {{}, {"prod"}, {"prod", "sum"}, {"sum"}};
  std::vector<std::vector<Tensor>> expected;
  Collector collector;
  for (std::size_t i = 0; i < selections.size(); ++i) {
    Tensor a = RandomTensor({static_cast<int64_t>(i + 1), 4}, rng);
    Tensor b = RandomTensor({static_cast<int64_t>(i + 1), 4}, rng);
    expected.push_back(RunDirect(*engine, {a, b}));
    // Inputs in either order.
    std::vector<NamedTensor> inputs = {{"a", a}, {"b", b}};
    if (i % 2) std::swap(inputs[0], inputs[1]);
    s->Enqueue(MakeRequest(std::to_string(i), inputs, selections[i]), collector.Callback());
  }
  gate.Release();
  collector.WaitFor(selections.size());
  const std::map<std::string, int> index = {{"sum", 0}, {"prod", 1}};
  for (std::size_t i = 0; i < selections.size(); ++i) {
    InferResponse r = collector.Get(std::to_string(i));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    const std::vector<std::string> names =
        selections[i].empty() ? std::vector<std::string>{"sum", "prod"} : selections[i];
    ASSERT_EQ(r.outputs.size(), names.size());
    for (std::size_t k = 0; k < names.size(); ++k) {
      EXPECT_EQ(r.outputs[k].name, names[k]);
      EXPECT_TRUE(Close(expected[i][index.at(names[k])], r.outputs[k].tensor, /*exact=*/true))
          << "request " << i << " output " << names[k];
    }
  }
  EXPECT_EQ(s->Stats().batch_stats.count(10), 1u);  // 1 + 2 + 3 + 4 rows in one batch
}

// ---------------------------------------------------------------------------------------------
// Queue policy

TEST(SchedulerTest, FullQueueRejectsAndCounts) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  ASSERT_TRUE(engine);
  SchedulerConfig config = BatchedConfig("gemm", 8, true, 0);
  config.batching.max_queue_size = 2;
  auto s = MakeScheduler(engine, config);
  ASSERT_TRUE(s);
  Rng rng(14);
  Gate gate;
  s->Enqueue(MakeRequest("gate", {{"x", RandomTensor({1, 16}, rng)}}), gate.Callback());
  gate.WaitEntered();
  Collector collector;
  for (int i = 0; i < 3; ++i) {
    s->Enqueue(MakeRequest(std::to_string(i), {{"x", RandomTensor({1, 16}, rng)}}),
               collector.Callback());
  }
  // The third was refused at once, on this thread.
  ASSERT_EQ(collector.total(), 1u);
  InferResponse refused = collector.Get("2");
  EXPECT_EQ(refused.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status.message().find("queue full"), std::string::npos)
      << refused.status.message();
  EXPECT_NE(refused.status.message().find("model 'gemm'"), std::string::npos);
  gate.Release();
  collector.WaitFor(3);
  EXPECT_TRUE(collector.Get("0").status.ok());
  EXPECT_TRUE(collector.Get("1").status.ok());
  const ModelStats st = s->Stats();
  EXPECT_EQ(st.rejected, 1u);
  EXPECT_EQ(st.fail.count, 1u);
  EXPECT_EQ(st.success.count, 3u);
  EXPECT_EQ(st.pending, 0);
}

// Queued() counts the requests waiting for an instance, not the one executing.
TEST(SchedulerTest, QueuedCountsWaitingRequests) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 0));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Queued(), 0);
  Rng rng(21);
  Gate gate;
  s->Enqueue(MakeRequest("gate", {{"x", RandomTensor({1, 16}, rng)}}), gate.Callback());
  gate.WaitEntered();
  EXPECT_EQ(s->Queued(), 0);
  Collector collector;
  for (int i = 0; i < 3; ++i) {
    s->Enqueue(MakeRequest(std::to_string(i), {{"x", RandomTensor({1, 16}, rng)}}),
               collector.Callback());
  }
  EXPECT_EQ(s->Queued(), 3);
  gate.Release();
  collector.WaitFor(3);
  EXPECT_EQ(s->Queued(), 0);
}

// The queue statistic counts from Enqueue (Triton's queue start), not from the request's arrival
// at the frontend; success counts from the arrival.
TEST(SchedulerTest, QueueTimeCountsFromEnqueue) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 0));
  ASSERT_TRUE(s);
  Rng rng(22);
  InferRequest r = MakeRequest("old", {{"x", RandomTensor({1, 16}, rng)}});
  r.arrival = Clock::now() - std::chrono::seconds(100);  // a (very) slow frontend
  ASSERT_TRUE(Call(*s, std::move(r)).status.ok());
  const ModelStats st = s->Stats();
  ExpectStatsConsistent(st, 1, 1);
  EXPECT_GE(st.success.ns, 100'000'000'000u);
  EXPECT_LT(st.queue.ns, 50'000'000'000u);
}

// Inputs may be views of memory the caller owns (the gRPC and HTTP frontends pass views of the
// request message): alone they run in place, in a batch they are copied; the results are those
// of the engine and the caller's bytes are left as they were.
TEST(SchedulerTest, InputViewsOfCallerMemory) {
  auto engine = BuildEngine(GemmReluGraph(), Backends().back());  // cpu where built
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 0));
  ASSERT_TRUE(s);
  Rng rng(23);
  constexpr int kRequests = 4;
  std::vector<float> memory(kRequests * 2 * 16);
  for (float& v : memory) v = static_cast<float>(rng.Normal());
  const std::vector<float> original = memory;
  std::vector<Tensor> views, expected;
  for (int i = 0; i < kRequests; ++i) {
    views.push_back(Tensor::View(DType::kFloat32, Shape{2, 16}, memory.data() + i * 32));
    Tensor copy = *Tensor::Create(DType::kFloat32, Shape{2, 16});
    std::copy(memory.begin() + i * 32, memory.begin() + (i + 1) * 32, copy.Span<float>().begin());
    expected.push_back(RunDirect(*engine, {copy})[0]);
  }
  // Alone: the engine runs on the view.
  InferResponse alone = Call(*s, MakeRequest("alone", {{"x", views[0]}}));
  ASSERT_TRUE(alone.status.ok()) << alone.status.ToString();
  EXPECT_TRUE(Close(expected[0], alone.outputs[0].tensor, /*exact=*/true));
  // Batched: the gate holds the instance until all are queued, then they run together.
  Gate gate;
  s->Enqueue(MakeRequest("gate", {{"x", RandomTensor({1, 16}, rng)}}), gate.Callback());
  gate.WaitEntered();
  Collector collector;
  for (int i = 0; i < kRequests; ++i) {
    s->Enqueue(MakeRequest(std::to_string(i), {{"x", views[i]}}), collector.Callback());
  }
  gate.Release();
  collector.WaitFor(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    InferResponse r = collector.Get(std::to_string(i));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_TRUE(Close(expected[i], r.outputs[0].tensor)) << i;
  }
  EXPECT_EQ(s->Stats().batch_stats.count(2 * kRequests), 1u);
  EXPECT_EQ(memory, original);
}

struct TimeoutOutcome {
  Status short_timeout, default_timeout;
  ModelStats stats;
};

// The gate holds the only instance while a request with a 1 ms timeout and one with the model's
// default (60 s) wait 20 ms in the queue.
TimeoutOutcome RunTimeoutCase(bool reject, bool allow_override) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  SchedulerConfig config = BatchedConfig("gemm", 8, true, 0);
  config.batching.default_timeout_us = 60'000'000;
  config.batching.timeout_reject = reject;
  config.batching.allow_timeout_override = allow_override;
  auto s = MakeScheduler(engine, config);
  Rng rng(15);
  Gate gate;
  s->Enqueue(MakeRequest("gate", {{"x", RandomTensor({1, 16}, rng)}}), gate.Callback());
  gate.WaitEntered();
  Collector collector;
  InferRequest quick = MakeRequest("short", {{"x", RandomTensor({1, 16}, rng)}});
  quick.timeout_us = 1000;
  s->Enqueue(std::move(quick), collector.Callback());
  s->Enqueue(MakeRequest("default", {{"x", RandomTensor({1, 16}, rng)}}), collector.Callback());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  gate.Release();
  collector.WaitFor(2);
  return {collector.Get("short").status, collector.Get("default").status, s->Stats()};
}

TEST(SchedulerTest, TimeoutRejectFailsExpiredRequests) {
  const TimeoutOutcome o = RunTimeoutCase(/*reject=*/true, /*allow_override=*/true);
  EXPECT_EQ(o.short_timeout.code(), StatusCode::kUnavailable) << o.short_timeout.ToString();
  EXPECT_NE(o.short_timeout.message().find("timeout"), std::string::npos)
      << o.short_timeout.message();
  EXPECT_TRUE(o.default_timeout.ok()) << o.default_timeout.ToString();
  EXPECT_EQ(o.stats.rejected, 1u);
  EXPECT_EQ(o.stats.fail.count, 1u);
  EXPECT_EQ(o.stats.success.count, 2u);
  EXPECT_EQ(o.stats.pending, 0);
}

TEST(SchedulerTest, TimeoutDelayKeepsExpiredRequests) {
  const TimeoutOutcome o = RunTimeoutCase(/*reject=*/false, /*allow_override=*/true);
  EXPECT_TRUE(o.short_timeout.ok()) << o.short_timeout.ToString();
  EXPECT_TRUE(o.default_timeout.ok()) << o.default_timeout.ToString();
  EXPECT_EQ(o.stats.rejected, 0u);
}

TEST(SchedulerTest, RequestTimeoutIgnoredWithoutOverride) {
  const TimeoutOutcome o = RunTimeoutCase(/*reject=*/true, /*allow_override=*/false);
  EXPECT_TRUE(o.short_timeout.ok()) << o.short_timeout.ToString();
  EXPECT_EQ(o.stats.rejected, 0u);
}

// ---------------------------------------------------------------------------------------------
// Validation and errors

TEST(SchedulerTest, InvalidRequestsAreRefusedWithClearMessages) {
  auto engine = BuildEngine(TwoOutputGraph(), "reference");
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("two", 8, true, 0));
  ASSERT_TRUE(s);
  Rng rng(16);
  const Tensor a = RandomTensor({2, 4}, rng), b = RandomTensor({2, 4}, rng);
  struct Case {
    std::string what;
    InferRequest request;
    std::vector<std::string> mentions;
  };
  InferRequest unknown_output = MakeRequest("", {{"a", a}, {"b", b}}, {"prod", "diff"});
  std::vector<Case> cases;
  cases.push_back(
      {"unknown input", MakeRequest("", {{"a", a}, {"b", b}, {"c", a}}), {"'c'", "'a', 'b'"}});
  cases.push_back({"missing input", MakeRequest("", {{"a", a}}), {"'b'", "missing"}});
  cases.push_back(
      {"duplicate input", MakeRequest("", {{"a", a}, {"a", a}}), {"'a'", "more than once"}});
  cases.push_back({"dtype",
                   MakeRequest("", {{"a", a}, {"b", RandomTensor({2, 4}, rng, DType::kInt64)}}),
                   {"'b'", "FP32", "INT64"}});
  cases.push_back({"rank",
                   MakeRequest("", {{"a", RandomTensor({2, 4, 1}, rng)}, {"b", b}}),
                   {"'a'", "[-1,4]", "[2,4,1]"}});
  cases.push_back({"dims",
                   MakeRequest("", {{"a", a}, {"b", RandomTensor({2, 5}, rng)}}),
                   {"'b'", "[-1,4]", "[2,5]"}});
  cases.push_back({"batch differs",
                   MakeRequest("", {{"a", a}, {"b", RandomTensor({3, 4}, rng)}}),
                   {"'b'", "batch size 3", "'a'"}});
  cases.push_back(
      {"batch too large",
       MakeRequest("", {{"a", RandomTensor({9, 4}, rng)}, {"b", RandomTensor({9, 4}, rng)}}),
       {"'a'", "batch size 9", "max_batch_size 8"}});
  cases.push_back(
      {"batch zero",
       MakeRequest("", {{"a", RandomTensor({0, 4}, rng)}, {"b", RandomTensor({0, 4}, rng)}}),
       {"'a'", "batch size 0"}});
  cases.push_back(
      {"empty tensor", MakeRequest("", {{"a", a}, {"b", Tensor()}}), {"'b'", "no tensor data"}});
  cases.push_back({"unknown output", std::move(unknown_output), {"'diff'", "'sum', 'prod'"}});
  int n = 0;
  for (auto& c : cases) {
    SCOPED_TRACE(c.what);
    c.request.id = "bad" + std::to_string(n++);
    bool called = false;
    InferResponse got;
    s->Enqueue(std::move(c.request), [&](InferResponse r) {
      called = true;
      got = std::move(r);
    });
    ASSERT_TRUE(called) << "refused requests are answered at once, on the caller's thread";
    EXPECT_EQ(got.id, "bad" + std::to_string(n - 1));
    EXPECT_EQ(got.status.code(), StatusCode::kInvalidArgument) << got.status.ToString();
    EXPECT_TRUE(got.outputs.empty());
    EXPECT_NE(got.status.message().find("model 'two'"), std::string::npos) << got.status.message();
    for (const auto& m : c.mentions) {
      EXPECT_NE(got.status.message().find(m), std::string::npos)
          << "'" << m << "' not in: " << got.status.message();
    }
  }
  // Still serving.
  InferResponse r = Call(*s, MakeRequest("good", {{"b", b}, {"a", a}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  const auto want = RunDirect(*engine, {a, b});
  EXPECT_TRUE(Close(want[0], r.outputs[0].tensor, true));
  EXPECT_TRUE(Close(want[1], r.outputs[1].tensor, true));
  const ModelStats st = s->Stats();
  EXPECT_EQ(st.fail.count, cases.size());
  EXPECT_EQ(st.rejected, 0u);
  EXPECT_EQ(st.success.count, 1u);
  EXPECT_EQ(st.pending, 0);
}

// An engine error fails every request of its batch with the engine's message; the requests of
// other batches and later requests are served.
TEST(SchedulerTest, EngineErrorFailsTheBatchAndServingGoesOn) {
  auto engine = BuildEngine(FreeInnerDimGraph(), "reference");
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("free_k", 8, true, 0));
  ASSERT_TRUE(s);
  Rng rng(17);
  Gate gate;
  s->Enqueue(MakeRequest("gate", {{"x", RandomTensor({1, 4}, rng)}}), gate.Callback());
  gate.WaitEntered();
  Collector collector;
  std::vector<Tensor> good;
  for (int i = 0; i < 3; ++i) {
    s->Enqueue(MakeRequest("bad" + std::to_string(i), {{"x", RandomTensor({1, 5}, rng)}}),
               collector.Callback());
  }
  for (int i = 0; i < 3; ++i) {
    good.push_back(RandomTensor({2, 4}, rng));
    s->Enqueue(MakeRequest("good" + std::to_string(i), {{"x", good.back()}}), collector.Callback());
  }
  gate.Release();
  collector.WaitFor(6);
  EXPECT_TRUE(gate.response().status.ok());
  for (int i = 0; i < 3; ++i) {
    InferResponse bad = collector.Get("bad" + std::to_string(i));
    EXPECT_EQ(bad.status.code(), StatusCode::kInvalidArgument) << bad.status.ToString();
    EXPECT_NE(bad.status.message().find("inner dimensions"), std::string::npos)
        << bad.status.message();
    EXPECT_NE(bad.status.message().find("model 'free_k'"), std::string::npos);
    InferResponse ok = collector.Get("good" + std::to_string(i));
    ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
    EXPECT_TRUE(Close(RunDirect(*engine, {good[i]})[0], ok.outputs[0].tensor));
  }
  ModelStats st = s->Stats();
  EXPECT_EQ(st.fail.count, 3u);
  EXPECT_EQ(st.success.count, 4u);
  EXPECT_EQ(st.execution_count, 2u);  // failed executions are not counted
  EXPECT_EQ(st.batch_stats.count(6), 1u);
  InferResponse after = Call(*s, MakeRequest("after", {{"x", RandomTensor({1, 4}, rng)}}));
  EXPECT_TRUE(after.status.ok()) << after.status.ToString();
}

TEST(SchedulerTest, CreateRefusesInconsistentConfigurations) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  auto fixed = BuildEngine(FixedBatchGraph(), "reference");
  ASSERT_TRUE(engine && fixed);
  struct Case {
    std::shared_ptr<const runtime::Engine> engine;
    SchedulerConfig config;
    std::string mention;
  };
  SchedulerConfig no_instances = BatchedConfig("m", 8, false);
  no_instances.instances = 0;
  const std::vector<Case> cases = {
      {fixed, BatchedConfig("m", 8, true), "input 'x' has shape [2,16]"},
      {engine, BatchedConfig("m", 8, true, 0, {4, 16}), "preferred batch size 16"},
      {engine, no_instances, "instance count 0"},
      {nullptr, BatchedConfig("m", 8, false), "no engine"},
  };
  for (const auto& c : cases) {
    auto s = Scheduler::Create(c.engine, c.config);
    ASSERT_FALSE(s.ok()) << c.mention;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(c.mention), std::string::npos) << s.status().message();
    EXPECT_NE(s.status().message().find("model 'm'"), std::string::npos) << s.status().message();
  }
  // Without a batch dimension in use, the fixed model is fine.
  EXPECT_TRUE(Scheduler::Create(fixed, BatchedConfig("m", 0, false)).ok());
}

// ---------------------------------------------------------------------------------------------
// Stop

TEST(SchedulerTest, StopFailsQueuedRequestsAndWaitsForRunningOnes) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 0));
  ASSERT_TRUE(s);
  Rng rng(18);
  Gate gate;
  s->Enqueue(MakeRequest("gate", {{"x", RandomTensor({1, 16}, rng)}}), gate.Callback());
  gate.WaitEntered();
  Collector collector;
  for (int i = 0; i < 5; ++i) {
    s->Enqueue(MakeRequest(std::to_string(i), {{"x", RandomTensor({1, 16}, rng)}}),
               collector.Callback());
  }
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    s->Stop();
    stopped = true;
  });
  collector.WaitFor(5);  // failed by Stop while the gate's batch is still running
  for (int i = 0; i < 5; ++i) {
    InferResponse r = collector.Get(std::to_string(i));
    EXPECT_EQ(r.status.code(), StatusCode::kUnavailable) << r.status.ToString();
    EXPECT_NE(r.status.message().find("model 'gemm'"), std::string::npos);
  }
  gate.Release();
  stopper.join();
  EXPECT_TRUE(stopped.load());
  EXPECT_TRUE(gate.response().status.ok());
  s->Enqueue(MakeRequest("late", {{"x", RandomTensor({1, 16}, rng)}}), collector.Callback());
  ASSERT_EQ(collector.total(), 6u);
  EXPECT_EQ(collector.Get("late").status.code(), StatusCode::kUnavailable);
  s->Stop();  // idempotent
  for (const auto& [id, calls] : collector.calls()) EXPECT_EQ(calls, 1) << id;
  const ModelStats st = s->Stats();
  EXPECT_EQ(st.fail.count, 6u);
  EXPECT_EQ(st.success.count, 1u);
  EXPECT_EQ(st.pending, 0);
}

// Stop while clients are still enqueueing: every request is answered exactly once, either with
// its result or UNAVAILABLE.
TEST(SchedulerTest, StopUnderLoadLosesNoCallback) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  ASSERT_TRUE(engine);
  auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 100, {}, 2));
  ASSERT_TRUE(s);
  Collector collector;
  constexpr int kThreads = 4, kRequests = 200;
  std::atomic<int> enqueued{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      Rng rng(DeriveSeed(7, {static_cast<uint64_t>(t)}));
      for (int i = 0; i < kRequests; ++i) {
        s->Enqueue(MakeRequest(std::to_string(t) + "-" + std::to_string(i),
                               {{"x", RandomTensor({1 + static_cast<int64_t>(i % 3), 16}, rng)}}),
                   collector.Callback());
        ++enqueued;
      }
    });
  }
  while (enqueued.load() < kThreads * kRequests / 4) std::this_thread::yield();
  s->Stop();
  for (auto& t : clients) t.join();
  collector.WaitFor(kThreads * kRequests);
  const auto calls = collector.calls();
  EXPECT_EQ(calls.size(), static_cast<std::size_t>(kThreads * kRequests));
  for (const auto& [id, n] : calls) {
    EXPECT_EQ(n, 1) << id;
    const Status st = collector.Get(id).status;
    EXPECT_TRUE(st.ok() || st.code() == StatusCode::kUnavailable) << st.ToString();
  }
  const ModelStats st = s->Stats();
  EXPECT_EQ(st.success.count + st.fail.count, static_cast<uint64_t>(kThreads * kRequests));
  EXPECT_EQ(st.pending, 0);
}

// ---------------------------------------------------------------------------------------------
// Requests run inline on the caller's thread (Enqueue's may_run_inline, what the frontends pass)

// Enqueue with may_run_inline, reporting the thread the callback ran on.
struct InlineCall {
  InferResponse response;
  std::thread::id callback_thread;
  bool done_before_return = false;
};
InlineCall CallMayInline(Scheduler& s, InferRequest request) {
  auto promise = std::make_shared<std::promise<InlineCall>>();
  auto future = promise->get_future();
  auto returned = std::make_shared<std::atomic<bool>>(false);
  s.Enqueue(
      std::move(request),
      [promise, returned](InferResponse r) {
        promise->set_value({std::move(r), std::this_thread::get_id(), !returned->load()});
      },
      /*may_run_inline=*/true);
  returned->store(true);
  return future.get();
}

// Five requests of 1, 2, 3, 1, 2 rows, one at a time with may_run_inline: each answered with its
// own result, on the caller's thread before Enqueue returns or not, as `expect_inline` says.
void LoneMayInlineCalls(Scheduler& s, const runtime::Engine& engine, Rng& rng, bool expect_inline) {
  for (int i = 0; i < 5; ++i) {
    Tensor x = RandomTensor({1 + i % 3, 16}, rng);
    const std::vector<Tensor> expected = RunDirect(engine, {x});
    InlineCall c = CallMayInline(s, MakeRequest(std::to_string(i), {{"x", x}}));
    ASSERT_TRUE(c.response.status.ok()) << c.response.status.ToString();
    EXPECT_EQ(c.response.id, std::to_string(i));
    EXPECT_TRUE(Close(expected[0], c.response.outputs[0].tensor, /*exact=*/true)) << i;
    EXPECT_EQ(c.callback_thread == std::this_thread::get_id(), expect_inline) << i;
    EXPECT_EQ(c.done_before_return, expect_inline) << i;
  }
}

TEST(SchedulerTest, IdleInstanceRunsTheRequestOnTheCallersThread) {
  for (const std::string& backend : Backends()) {
    SCOPED_TRACE(backend);
    auto engine = BuildEngine(GemmReluGraph(), backend);
    ASSERT_TRUE(engine);
    auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 0, {}, 2));
    Rng rng(31);
    LoneMayInlineCalls(*s, *engine, rng, /*expect_inline=*/true);
    ExpectStatsConsistent(s->Stats(), 5, 1 + 2 + 3 + 1 + 2);
    // Queued requests still reach the instances after inline runs (their threads were kept
    // waiting, not lost): without may_run_inline the callback runs on an instance thread.
    InferResponse queued = Call(*s, MakeRequest("queued", {{"x", RandomTensor({2, 16}, rng)}}));
    EXPECT_TRUE(queued.status.ok()) << queued.status.ToString();
  }
}

TEST(SchedulerTest, RequestsThatCouldStillBatchAreQueuedNotRunInline) {
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  Rng rng(32);
  {
    // A queue delay could still grow the batch: an instance thread runs it after the delay.
    // (Two instances: the one that ran it may not be idle again yet when `full` arrives.)
    auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 200, {4}, 2));
    InlineCall c = CallMayInline(*s, MakeRequest("delayed", {{"x", RandomTensor({1, 16}, rng)}}));
    ASSERT_TRUE(c.response.status.ok()) << c.response.status.ToString();
    EXPECT_NE(c.callback_thread, std::this_thread::get_id());
    EXPECT_FALSE(c.done_before_return);
    // A request of the largest preferred size would go at once anyway: inline.
    InlineCall full = CallMayInline(*s, MakeRequest("full", {{"x", RandomTensor({4, 16}, rng)}}));
    ASSERT_TRUE(full.response.status.ok()) << full.response.status.ToString();
    EXPECT_EQ(full.callback_thread, std::this_thread::get_id());
  }
  {
    // The only instance is busy (held in the gate's callback): the request waits in the queue
    // and runs, batched with the next one, on the instance thread, in order.
    auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 0));
    Gate gate;
    // The gate must run on the instance thread (not inline), or this thread would block in it.
    s->Enqueue(MakeRequest("gate", {{"x", RandomTensor({1, 16}, rng)}}), gate.Callback(),
               /*may_run_inline=*/false);
    gate.WaitEntered();
    Collector collector;
    for (int i = 0; i < 2; ++i) {
      s->Enqueue(MakeRequest(std::to_string(i), {{"x", RandomTensor({1, 16}, rng)}}),
                 collector.Callback(), /*may_run_inline=*/true);
    }
    EXPECT_EQ(collector.total(), 0u);
    gate.Release();
    collector.WaitFor(2);
    EXPECT_TRUE(collector.Get("0").status.ok());
    EXPECT_EQ(s->Stats().batch_stats.count(2), 1u);
  }
}

// `threads` clients each enqueue `requests` requests of 1 or 2 rows with may_run_inline; checks
// that every request is answered once with its own result and returns how many ran inline (on
// their caller's thread).
int ConcurrentMayInlineClients(Scheduler& s, const runtime::Engine& engine, int threads,
                               int requests, uint64_t seed) {
  Collector collector;
  std::vector<std::vector<std::pair<std::string, Tensor>>> expected(threads);
  std::vector<std::thread> clients;
  std::atomic<int> inline_runs{0};
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&, t] {
      Rng rng(DeriveSeed(seed, {static_cast<uint64_t>(t)}));
      for (int i = 0; i < requests; ++i) {
        const std::string id = std::to_string(t) + "-" + std::to_string(i);
        Tensor x = RandomTensor({1 + static_cast<int64_t>(i % 2), 16}, rng);
        expected[t].push_back({id, RunDirect(engine, {x})[0]});
        const std::thread::id me = std::this_thread::get_id();
        ResponseCallback cb = collector.Callback();
        s.Enqueue(
            MakeRequest(id, {{"x", x}}),
            [cb, me, &inline_runs](InferResponse r) {
              if (std::this_thread::get_id() == me) ++inline_runs;
              cb(std::move(r));
            },
            /*may_run_inline=*/true);
      }
    });
  }
  for (auto& t : clients) t.join();
  collector.WaitFor(threads * requests);
  for (int t = 0; t < threads; ++t) {
    for (const auto& [id, want] : expected[t]) {
      InferResponse r = collector.Get(id);
      EXPECT_TRUE(r.status.ok()) << id << ": " << r.status.ToString();
      if (r.status.ok()) {
        EXPECT_TRUE(Close(want, r.outputs[0].tensor)) << id;
      }
    }
  }
  for (const auto& [id, n] : collector.calls()) EXPECT_EQ(n, 1) << id;
  return inline_runs.load();
}

TEST(SchedulerTest, ManyCallersMayRunInlineConcurrently) {
  // Callers race for two instances: some run inline, the others queue; every request is
  // answered once with the right result, and Stop waits for inline runs in flight.
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  auto s = MakeScheduler(engine, BatchedConfig("gemm", 8, true, 0, {}, 2));
  constexpr int kThreads = 6, kRequests = 60;
  EXPECT_GT(ConcurrentMayInlineClients(*s, *engine, kThreads, kRequests, 9), 0);
  ExpectStatsConsistent(s->Stats(), kThreads * kRequests, kThreads * kRequests / 2 * 3);
  s->Stop();
}

// ---------------------------------------------------------------------------------------------
// Busy waiting (SchedulerConfig::busy_wait_us, serve --busy-wait-us)

TEST(SchedulerTest, BusyWaitingInstancesAnswerEveryRequestAndNothingRunsInline) {
  for (const std::string& backend : Backends()) {
    SCOPED_TRACE(backend);
    auto engine = BuildEngine(GemmReluGraph(), backend);
    ASSERT_TRUE(engine);
    SchedulerConfig config = BatchedConfig("gemm", 8, true, 0, {}, 2);
    config.busy_wait_us = 200'000;  // longer than any gap below: an instance always polls
    auto s = MakeScheduler(engine, config);
    Rng rng(41);
    // One at a time, as a lone client: the polling instance takes each request (inline would
    // run it on this thread before Enqueue returns).
    LoneMayInlineCalls(*s, *engine, rng, /*expect_inline=*/false);
    // Many clients: every request answered once with its own result, none inline.
    constexpr int kThreads = 4, kRequests = 50;
    EXPECT_EQ(ConcurrentMayInlineClients(*s, *engine, kThreads, kRequests, 43), 0);
    ExpectStatsConsistent(s->Stats(), 5 + kThreads * kRequests,
                          (1 + 2 + 3 + 1 + 2) + kThreads * kRequests / 2 * 3);
  }
}

TEST(SchedulerTest, StopEndsBusyWaitingAtOnce) {
  // An instance polls for a minute after each batch; Stop must not wait for that (nor must the
  // scheduler's destructor, which every model unload goes through).
  auto engine = BuildEngine(GemmReluGraph(), "reference");
  ASSERT_TRUE(engine);
  SchedulerConfig config = BatchedConfig("gemm", 8, true, 0, {}, 2);
  config.busy_wait_us = 60'000'000;
  auto s = MakeScheduler(engine, config);
  Rng rng(44);
  InferResponse r = Call(*s, MakeRequest("a", {{"x", RandomTensor({2, 16}, rng)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  const auto t0 = std::chrono::steady_clock::now();
  s->Stop();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Not a speed limit: an instance still polling would hold Stop for the whole minute.
  EXPECT_LT(seconds, 30.0);
  InferResponse late = Call(*s, MakeRequest("late", {{"x", RandomTensor({1, 16}, rng)}}));
  EXPECT_EQ(late.status.code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace larserve::serve
