// larserve::client against an in-process gRPC server (serve::GrpcServer over a temporary model
// repository holding the shipped EmTrackMichelId model, on a loopback port chosen at run time),
// compared with the same model run directly on an engine. Dead servers are loopback ports with
// nothing listening.
#include "larserve/client/client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "larserve/runtime/backend.h"
#include "larserve/runtime/engine.h"
#include "larserve/serve/grpc_server.h"
#include "larserve/serve/model_repository.h"

namespace larserve::client {
namespace {

namespace fs = std::filesystem;

const fs::path kModelFile =
    fs::path(LARSERVE_SOURCE_DIR) / "models" / "emtrkmichel" / "1" / "model.onnx";
const char kInput[] = "main_input";
const char kOutEm[] = "em_trk_none_netout/Softmax";
const char kOutMichel[] = "michel_netout/Sigmoid";

// max_batch_size 64 so that larger inputs are split; "slow" holds a single request in its
// queue for 1 s (it waits for a batch of 64), so a short client deadline expires first.
std::string Config(const std::string& name, const std::string& batching) {
  return "name: \"" + name + R"cfg(" platform: "onnxruntime_onnx" max_batch_size: 64
input [ { name: "main_input" data_type: TYPE_FP32 format: FORMAT_NHWC dims: [ 48, 48, 1 ] } ]
output [ { name: "em_trk_none_netout/Softmax" data_type: TYPE_FP32 dims: [ 3 ] },
         { name: "michel_netout/Sigmoid" data_type: TYPE_FP32 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
)cfg" + batching;
}

void AddModel(const fs::path& root, const std::string& name, const std::string& batching) {
  fs::create_directories(root / name / "1");
  fs::copy_file(kModelFile, root / name / "1" / "model.onnx");
  std::ofstream(root / name / "config.pbtxt") << Config(name, batching);
}

// A loopback port with nothing listening (bound, then released).
std::string DeadAddress() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot bind a loopback socket";
  }
  ::close(fd);
  return "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
}

Tensor Patches(int64_t n, uint64_t seed) {
  Tensor t = *Tensor::Create(DType::kFloat32, Shape{n, 48, 48, 1});
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-5.0f, 15.0f);
  for (float& v : t.Span<float>()) v = u(rng);
  return t;
}

class ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::temp_directory_path() /
                         ("larserve_client_test_" + std::to_string(::getpid())));
    fs::remove_all(*root_);
    AddModel(*root_, "emtrkmichel", "dynamic_batching { max_queue_delay_microseconds: 100 }\n");
    AddModel(*root_, "slow",
             "dynamic_batching { preferred_batch_size: [ 64 ] "
             "max_queue_delay_microseconds: 1000000 }\n");
    serve::RepositoryOptions ro;
    ro.threads = 2;
    auto repo = serve::ModelRepository::Open(root_->string(), ro);
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repository_ = std::move(repo).value().release();
    ASSERT_TRUE(repository_->Get("emtrkmichel").ok());
    ASSERT_TRUE(repository_->Get("slow").ok());
    serve::GrpcServerOptions so;
    so.port = 0;
    auto server = serve::GrpcServer::Start(repository_, so);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value().release();
    address_ = new std::string("127.0.0.1:" + std::to_string(server_->port()));

    runtime::BuildOptions bo;
    bo.backend = runtime::FindBackend("cpu") ? "cpu" : "reference";
    bo.threads = 2;
    auto engine = runtime::LoadModelOrPlan(kModelFile.string(), bo);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value().release();
  }

  static void TearDownTestSuite() {
    delete server_;  // before the repository it serves
    delete repository_;
    delete engine_;
    fs::remove_all(*root_);
    delete root_;
    delete address_;
  }

  static ClientOptions Options(std::vector<std::string> servers,
                               std::string model = "emtrkmichel") {
    ClientOptions o;
    o.servers = std::move(servers);
    o.model_name = std::move(model);
    o.retry.initial_backoff = std::chrono::milliseconds(2);
    o.retry.max_backoff = std::chrono::milliseconds(20);
    o.jitter_seed = 7;
    return o;
  }

  static std::unique_ptr<Client> Make(const ClientOptions& o) {
    auto c = Client::Create(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  // The engine run directly: outputs in the configuration's order (em, michel).
  static std::vector<Tensor> Reference(const Tensor& x) {
    auto ctx = engine_->CreateContext();
    std::vector<Tensor> out;
    Status st = ctx->Run(std::vector<Tensor>{x}, &out);
    EXPECT_TRUE(st.ok()) << st.ToString();
    std::vector<Tensor> ordered;
    for (const char* name : {kOutEm, kOutMichel}) {
      for (std::size_t k = 0; k < engine_->outputs().size(); ++k) {
        if (engine_->outputs()[k].name == name) ordered.push_back(out[k]);
      }
    }
    EXPECT_EQ(ordered.size(), 2u);
    return ordered;
  }

  static void ExpectClose(const std::vector<Tensor>& got, const std::vector<Tensor>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t k = 0; k < got.size(); ++k) {
      ASSERT_EQ(got[k].dtype(), DType::kFloat32);
      ASSERT_EQ(got[k].shape(), want[k].shape()) << "output " << k;
      auto g = got[k].Span<float>();
      auto w = want[k].Span<float>();
      for (std::size_t i = 0; i < g.size(); ++i) {
        ASSERT_NEAR(g[i], w[i], 1e-5) << "output " << k << " element " << i;
      }
    }
  }

  static std::vector<NamedTensor> In(const Tensor& x) { return {{kInput, x}}; }

  static fs::path* root_;
  static serve::ModelRepository* repository_;
  static serve::GrpcServer* server_;
  static std::string* address_;
  static runtime::Engine* engine_;
};

fs::path* ClientTest::root_ = nullptr;
serve::ModelRepository* ClientTest::repository_ = nullptr;
serve::GrpcServer* ClientTest::server_ = nullptr;
std::string* ClientTest::address_ = nullptr;
runtime::Engine* ClientTest::engine_ = nullptr;

TEST_F(ClientTest, SyncAndAsyncEqualTheEngine) {
  auto client = Make(Options({*address_}));
  ASSERT_TRUE(client);
  auto info = client->GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->max_batch_size, 64);
  EXPECT_EQ(info->inputs, std::vector<std::string>{kInput});
  EXPECT_EQ(info->outputs, (std::vector<std::string>{kOutEm, kOutMichel}));

  const Tensor x = Patches(10, 1);
  const auto want = Reference(x);
  auto sync = client->Infer(In(x));
  ASSERT_TRUE(sync.ok()) << sync.status().ToString();
  ExpectClose(*sync, want);

  std::promise<StatusOr<std::vector<Tensor>>> p;
  client->InferAsync(In(x), [&p](StatusOr<std::vector<Tensor>> r) { p.set_value(std::move(r)); });
  auto async = p.get_future().get();
  ASSERT_TRUE(async.ok()) << async.status().ToString();
  ExpectClose(*async, want);

  // Requested outputs come back in the order asked for.
  auto one = client->Infer(In(x), {kOutMichel, kOutEm});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ExpectClose(*one, {want[1], want[0]});
  auto michel = client->Infer(In(x), {kOutMichel});
  ASSERT_TRUE(michel.ok()) << michel.status().ToString();
  ExpectClose(*michel, {want[1]});
}

TEST_F(ClientTest, SplitsBatchesLargerThanMaxBatchSizeAndKeepsOrder) {
  auto client = Make(Options({*address_}));
  ASSERT_TRUE(client);
  const Tensor x = Patches(150, 2);  // 64 + 64 + 22
  auto out = client->Infer(In(x));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectClose(*out, Reference(x));
  EXPECT_EQ(client->Stats().requests, 3u);

  // A cap of our own, below the server's.
  ClientOptions o = Options({*address_});
  o.max_batch_size = 16;
  auto capped = Make(o);
  ASSERT_TRUE(capped);
  std::promise<StatusOr<std::vector<Tensor>>> p;
  capped->InferAsync(In(x), [&p](StatusOr<std::vector<Tensor>> r) { p.set_value(std::move(r)); });
  auto async = p.get_future().get();
  ASSERT_TRUE(async.ok()) << async.status().ToString();
  ExpectClose(*async, Reference(x));
  EXPECT_EQ(capped->Stats().requests, 10u);  // ceil(150 / 16)
}

TEST_F(ClientTest, DeadlineIsApplied) {
  ClientOptions o = Options({*address_}, "slow");
  o.deadline = std::chrono::milliseconds(200);  // the server holds the request for 1 s
  o.retry.max_attempts = 2;
  auto client = Make(o);
  ASSERT_TRUE(client);
  auto out = client->Infer(In(Patches(1, 3)));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kDeadlineExceeded) << out.status().ToString();
  const ClientStats s = client->Stats();
  EXPECT_EQ(s.requests, 2u);  // DEADLINE_EXCEEDED is retried, up to max_attempts
  EXPECT_EQ(s.retries, 1u);
  EXPECT_EQ(s.failures, 1u);
}

TEST_F(ClientTest, RetriesWithBackoffThenFailsOverToTheLiveServer) {
  ClientOptions o = Options({DeadAddress(), *address_});
  o.cool_down = std::chrono::milliseconds(0);  // plain round robin: the dead server comes first
  auto client = Make(o);
  ASSERT_TRUE(client);
  const Tensor x = Patches(5, 4);
  auto out = client->Infer(In(x));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectClose(*out, Reference(x));
  const ClientStats s = client->Stats();
  // ModelConfig: dead (UNAVAILABLE), live. ModelInfer: dead (UNAVAILABLE), retried on live.
  EXPECT_EQ(s.retries, 1u);
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.servers[0].failures, 2u);
  EXPECT_EQ(s.servers[0].successes, 0u);
  EXPECT_EQ(s.servers[1].successes, 2u);
}

TEST_F(ClientTest, SkipsAFailedServerForItsCoolDownThenTriesItAgain) {
  const Tensor x = Patches(2, 5);
  ClientOptions o = Options({DeadAddress(), *address_});
  o.cool_down = std::chrono::seconds(60);
  auto client = Make(o);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->Infer(In(x)).ok());
  const uint64_t dead_requests = client->Stats().servers[0].requests;
  EXPECT_GE(dead_requests, 1u);
  EXPECT_TRUE(client->Stats().servers[0].cooling_down);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(client->Infer(In(x)).ok());
  EXPECT_EQ(client->Stats().servers[0].requests, dead_requests);  // skipped while cooling down

  o.cool_down = std::chrono::milliseconds(100);
  auto again = Make(o);
  ASSERT_TRUE(again);
  ASSERT_TRUE(again->Infer(In(x)).ok());
  const uint64_t before = again->Stats().servers[0].requests;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(again->Stats().servers[0].cooling_down);
  // Round robin: one of two consecutive calls starts with the dead server again.
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(again->Infer(In(x)).ok());
  EXPECT_GT(again->Stats().servers[0].requests, before);
  EXPECT_EQ(again->Stats().failures, 0u);
}

TEST_F(ClientTest, AllServersDownIsUnavailableAfterTheConfiguredAttempts) {
  ClientOptions o = Options({DeadAddress(), DeadAddress()});
  o.retry.max_attempts = 3;
  auto client = Make(o);
  ASSERT_TRUE(client);
  auto out = client->Infer(In(Patches(1, 6)));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable) << out.status().ToString();
  ClientStats s = client->Stats();
  // The model's configuration could not be read: 3 ModelConfig RPCs over the two servers.
  EXPECT_EQ(s.servers[0].requests + s.servers[1].requests, 3u);
  EXPECT_EQ(s.servers[0].failures + s.servers[1].failures, 3u);
  EXPECT_EQ(s.failures, 1u);

  // A server that answered once and then went away: ModelInfer is tried max_attempts times.
  serve::GrpcServerOptions so;
  so.port = 0;
  auto second = serve::GrpcServer::Start(repository_, so);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ClientOptions o2 = Options({"127.0.0.1:" + std::to_string((*second)->port())});
  o2.retry.max_attempts = 3;
  auto client2 = Make(o2);
  ASSERT_TRUE(client2);
  ASSERT_TRUE(client2->Infer(In(Patches(1, 6))).ok());
  (*second)->Shutdown();
  auto gone = client2->Infer(In(Patches(1, 6)));
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kUnavailable) << gone.status().ToString();
  s = client2->Stats();
  EXPECT_EQ(s.requests, 4u);  // 1 that succeeded, then 3 attempts
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.failures, 1u);
}

TEST_F(ClientTest, LocalFallbackWhenEveryServerFailed) {
  ClientOptions o = Options({DeadAddress()});
  o.retry.max_attempts = 2;
  o.fallback_model_path = kModelFile.string();
  o.max_batch_size = 64;
  o.fallback_intra_op_threads = 2;
  auto client = Make(o);
  ASSERT_TRUE(client);
  const Tensor x = Patches(100, 7);  // split by our own cap: 64 + 36, both run locally
  auto out = client->Infer(In(x));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectClose(*out, Reference(x));
  ClientStats s = client->Stats();
  EXPECT_EQ(s.fallbacks, 2u);
  EXPECT_EQ(s.failures, 0u);

  // Servers that answered once, then went away: each request falls back after its attempts.
  serve::GrpcServerOptions so;
  so.port = 0;
  auto second = serve::GrpcServer::Start(repository_, so);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ClientOptions o2 = Options({"127.0.0.1:" + std::to_string((*second)->port())});
  o2.retry.max_attempts = 2;
  o2.fallback_model_path = kModelFile.string();
  auto client2 = Make(o2);
  ASSERT_TRUE(client2);
  ASSERT_TRUE(client2->Infer(In(Patches(1, 8))).ok());
  (*second)->Shutdown();
  auto local = client2->Infer(In(x), {kOutMichel});
  ASSERT_TRUE(local.ok()) << local.status().ToString();
  ExpectClose(*local, {Reference(x)[1]});
  s = client2->Stats();
  EXPECT_EQ(s.fallbacks, 2u);  // 64 + 36 (the server's max_batch_size)
  EXPECT_EQ(s.requests, 1u + 2u * 2u);

  // No server at all: local only.
  ClientOptions local_only = Options({});
  local_only.fallback_model_path = kModelFile.string();
  auto client3 = Make(local_only);
  ASSERT_TRUE(client3);
  auto l3 = client3->Infer(In(x));
  ASSERT_TRUE(l3.ok()) << l3.status().ToString();
  ExpectClose(*l3, Reference(x));
}

TEST_F(ClientTest, CompressionGivesTheSameResults) {
  const Tensor x = Patches(70, 9);
  const auto want = Reference(x);
  for (Compression c : {Compression::kGzip, Compression::kDeflate}) {
    ClientOptions o = Options({*address_});
    o.compression = c;
    auto client = Make(o);
    ASSERT_TRUE(client);
    auto out = client->Infer(In(x));
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ExpectClose(*out, want);
  }
}

TEST_F(ClientTest, CountersMatchWhatWasSent) {
  auto client = Make(Options({*address_}));
  ASSERT_TRUE(client);
  constexpr int kCalls = 5;
  constexpr int64_t kBatch = 7;
  for (int i = 0; i < kCalls; ++i) ASSERT_TRUE(client->Infer(In(Patches(kBatch, 10 + i))).ok());
  const ClientStats s = client->Stats();
  EXPECT_EQ(s.calls, uint64_t{kCalls});
  EXPECT_EQ(s.requests, uint64_t{kCalls});
  EXPECT_EQ(s.retries, 0u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.fallbacks, 0u);
  EXPECT_EQ(s.raw_bytes_sent, uint64_t{kCalls * kBatch * 48 * 48 * 4});
  EXPECT_EQ(s.raw_bytes_received, uint64_t{kCalls * kBatch * (3 + 1) * 4});
  EXPECT_GT(s.message_bytes_sent, s.raw_bytes_sent);
  EXPECT_GT(s.message_bytes_received, s.raw_bytes_received);
  EXPECT_EQ(s.call_latency.count, uint64_t{kCalls});
  EXPECT_EQ(s.request_latency.count, uint64_t{kCalls});
  EXPECT_GT(s.call_latency.p50_ms, 0.0);
  EXPECT_LE(s.call_latency.p50_ms, s.call_latency.p99_ms);
  EXPECT_LE(s.call_latency.p99_ms, s.call_latency.max_ms);
  EXPECT_GE(s.call_latency.total_ms, s.call_latency.max_ms);
  ASSERT_EQ(s.servers.size(), 1u);
  EXPECT_EQ(s.servers[0].address, *address_);
  EXPECT_EQ(s.servers[0].requests, uint64_t{kCalls + 1});  // and the one ModelConfig read
  EXPECT_EQ(s.servers[0].successes, uint64_t{kCalls + 1});
  EXPECT_EQ(s.servers[0].failures, 0u);
}

TEST_F(ClientTest, ManyThreadsShareOneClient) {
  ClientOptions o = Options({*address_});
  o.channels_per_server = 3;
  auto client = Make(o);
  ASSERT_TRUE(client);
  const std::vector<int64_t> sizes = {1, 5, 64, 100};
  std::vector<Tensor> xs;
  std::vector<std::vector<Tensor>> wants;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    xs.push_back(Patches(sizes[k], 20 + k));
    wants.push_back(Reference(xs.back()));
  }
  constexpr int kThreads = 8, kIterations = 10;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIterations; ++i) {
        const std::size_t k = static_cast<std::size_t>(t + i) % xs.size();
        StatusOr<std::vector<Tensor>> r = Internal("not run");
        if (i % 2 == 0) {
          r = client->Infer(In(xs[k]));
        } else {
          std::promise<StatusOr<std::vector<Tensor>>> p;
          client->InferAsync(In(xs[k]),
                             [&p](StatusOr<std::vector<Tensor>> v) { p.set_value(std::move(v)); });
          r = p.get_future().get();
        }
        if (!r.ok() || r->size() != 2) {
          ++bad;
          continue;
        }
        for (std::size_t o = 0; o < 2; ++o) {
          auto g = (*r)[o].Span<float>();
          auto w = wants[k][o].Span<float>();
          if ((*r)[o].shape() != wants[k][o].shape()) {
            ++bad;
            break;
          }
          for (std::size_t e = 0; e < g.size(); ++e) {
            if (std::abs(g[e] - w[e]) > 1e-5f) {
              ++bad;
              break;
            }
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  const ClientStats s = client->Stats();
  EXPECT_EQ(s.calls, uint64_t{kThreads * kIterations});
  EXPECT_EQ(s.failures, 0u);
}

TEST_F(ClientTest, ASecondServerOnAPortInUseIsRefused) {
  // gRPC's default SO_REUSEPORT would let it bind the port and take part of the first server's
  // connections without a word.
  serve::GrpcServerOptions so;
  so.port = server_->port();
  auto second = serve::GrpcServer::Start(repository_, so);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("cannot serve gRPC on 127.0.0.1:" +
                                           std::to_string(server_->port())),
            std::string::npos)
      << second.status().ToString();
  // The first one still serves.
  auto client = Make(Options({*address_}));
  ASSERT_TRUE(client);
  EXPECT_TRUE(client->Infer(In(Patches(1, 8))).ok());
}

TEST_F(ClientTest, RefusesBadOptionsAndRequests) {
  EXPECT_EQ(Client::Create(Options({*address_}, "")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Client::Create(Options({})).status().code(), StatusCode::kInvalidArgument);
  ClientOptions o = Options({*address_});
  o.retry.max_attempts = 0;
  EXPECT_EQ(Client::Create(o).status().code(), StatusCode::kInvalidArgument);
  o = Options({*address_});
  o.fallback_model_path = (*root_ / "no_such_model.onnx").string();
  EXPECT_EQ(Client::Create(o).status().code(), StatusCode::kNotFound);

  auto client = Make(Options({*address_}));
  ASSERT_TRUE(client);
  EXPECT_EQ(client->Infer({}).status().code(), StatusCode::kInvalidArgument);
  const Tensor x = Patches(2, 11);
  EXPECT_EQ(client->Infer({{kInput, x}, {kInput, x}}).status().code(),
            StatusCode::kInvalidArgument);
  // The server refuses a wrong input name: not retried.
  auto wrong = client->Infer({{"no_such_input", x}});
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument) << wrong.status().ToString();
  EXPECT_EQ(client->Stats().retries, 0u);

  auto unknown = Make(Options({*address_}, "no_such_model"));
  ASSERT_TRUE(unknown);
  auto nf = unknown->Infer(In(x));
  EXPECT_EQ(nf.status().code(), StatusCode::kNotFound) << nf.status().ToString();
  EXPECT_EQ(unknown->Stats().servers[0].requests, 1u);  // NOT_FOUND is not retried
}

TEST_F(ClientTest, DestroyingTheClientCancelsWhatIsInFlight) {
  ClientOptions o = Options({*address_}, "slow");
  o.deadline = std::chrono::milliseconds(0);  // none: only the destructor ends the call
  auto client = Make(o);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->GetModelInfo().ok());
  std::promise<StatusOr<std::vector<Tensor>>> p;
  auto f = p.get_future();
  client->InferAsync(In(Patches(1, 12)),
                     [&p](StatusOr<std::vector<Tensor>> r) { p.set_value(std::move(r)); });
  client.reset();  // returns after the callback ran
  ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(f.get().status().code(), StatusCode::kCancelled);
}

}  // namespace
}  // namespace larserve::client
