// The model repository on real files: the shipped EmTrackMichelId model copied into a temporary
// repository, and a tiny two-output ONNX model written by the test (y = x + c, z = x * c, with a
// constant c that differs per version so versions are told apart by their outputs).
#include "larserve/serve/model_repository.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "larserve/core/rng.h"
#include "larserve/graph/graph.h"
#include "larserve/graph/onnx_export.h"
#include "larserve/runtime/engine.h"

namespace larserve::serve {
namespace {

namespace fs = std::filesystem;

const fs::path kShippedModel = fs::path(LARSERVE_SOURCE_DIR) / "models" / "emtrkmichel";

// x [-1, 4] -> y = x + c, z = x * c, c = {k, k, k, k}.
graph::Graph TinyGraph(float k) {
  graph::Graph g;
  g.name = "tiny";
  g.opset = 17;
  graph::Value x;
  x.name = "x";
  x.dims = {-1, 4};
  x.has_shape = true;
  const int xi = g.AddValue(x);
  g.inputs.push_back(xi);
  graph::Value c;
  c.name = "c";
  c.dims = {4};
  c.has_shape = true;
  Tensor ct = *Tensor::Create(DType::kFloat32, Shape{4});
  for (float& v : ct.Span<float>()) v = k;
  c.constant = ct;
  const int ci = g.AddValue(c);
  for (const char* op : {"Add", "Mul"}) {
    graph::Value out;
    out.name = op == std::string("Add") ? "y" : "z";
    out.dims = {-1, 4};
    out.has_shape = true;
    const int oi = g.AddValue(out);
    graph::Node n;
    n.name = std::string(op) + "_node";
    n.op_type = op;
    n.inputs = {xi, ci};
    n.outputs = {oi};
    g.nodes.push_back(n);
    g.outputs.push_back(oi);
  }
  g.RebuildProducers();
  return g;
}

void WriteFile(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

void WriteTinyModel(const fs::path& path, float k) {
  auto bytes = graph::ExportOnnxBytes(TinyGraph(k));
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  WriteFile(path, bytes.value());
}

// (Delimiter "cfg", not "pb": clang-format would reflow a "pb" raw string as text proto.)
constexpr char kTinyConfig[] = R"cfg(
name: "tiny"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [
  { name: "y" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "z" data_type: TYPE_FP32 dims: [ 4 ] }
]
instance_group [ { kind: KIND_CPU count: 2 } ]
dynamic_batching { max_queue_delay_microseconds: 200 }
model_warmup [ {
  name: "random"
  batch_size: 2
  count: 2
  inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 4 ] random_data: true } }
} ]
)cfg";

InferResponse RunSync(Scheduler& scheduler, InferRequest request) {
  auto done = std::make_shared<std::promise<InferResponse>>();
  auto result = done->get_future();
  scheduler.Enqueue(std::move(request), [done](InferResponse r) { done->set_value(std::move(r)); });
  if (result.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    InferResponse timeout;
    timeout.status = Internal("no response within 60 s");
    return timeout;
  }
  return result.get();
}

// Runs x = [[1, 2, 3, 4]] through the model; returns y's first element (1 + k).
float TinyY0(const ModelHandle& m) {
  InferRequest r;
  r.id = "tiny";
  Tensor x = *Tensor::Create(DType::kFloat32, Shape{1, 4});
  for (int i = 0; i < 4; ++i) x.Span<float>()[i] = static_cast<float>(i + 1);
  r.inputs.push_back({"x", x});
  InferResponse resp = RunSync(*m->scheduler, std::move(r));
  EXPECT_TRUE(resp.status.ok()) << resp.status.ToString();
  if (!resp.status.ok() || resp.outputs.empty()) return -1;
  EXPECT_EQ(resp.outputs[0].name, "y");
  return resp.outputs[0].tensor.Span<float>()[0];
}

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("larserve_repo_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // The tiny model with versions `versions` (constant k = 10 * version) and `config`.
  void AddTiny(const std::vector<int>& versions, const std::string& config = kTinyConfig) {
    for (int v : versions)
      WriteTinyModel(root_ / "tiny" / std::to_string(v) / "model.onnx", 10.0f * v);
    WriteFile(root_ / "tiny" / "config.pbtxt", config);
  }
  void SetTinyConfig(const std::string& config) {
    WriteFile(root_ / "tiny" / "config.pbtxt", config);
  }
  std::unique_ptr<ModelRepository> OpenRepo(RepositoryOptions options = {}) {
    auto repo = ModelRepository::Open(root_.string(), options);
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    return repo.ok() ? std::move(repo).value() : nullptr;
  }
  static std::vector<ModelIndexEntry> IndexOf(const ModelRepository& repo,
                                              const std::string& name) {
    std::vector<ModelIndexEntry> out;
    for (auto& e : repo.Index()) {
      if (e.name == name) out.push_back(e);
    }
    return out;
  }

  fs::path root_;
};

TEST_F(RepositoryTest, ServesTheShippedModelLikeItsEngine) {
  fs::copy(kShippedModel, root_ / "emtrkmichel", fs::copy_options::recursive);
  auto repo = OpenRepo();
  ASSERT_TRUE(repo);
  const auto index = IndexOf(*repo, "emtrkmichel");
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].version, "1");
  EXPECT_EQ(index[0].state, ModelState::kReady) << index[0].reason;
  EXPECT_TRUE(fs::exists(root_ / ".larserve_timing.cache"));

  auto model = repo->Get("emtrkmichel", "");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const ModelHandle& m = model.value();
  EXPECT_EQ(m->version, 1);
  EXPECT_EQ(m->config->name(), "emtrkmichel");
  EXPECT_EQ(m->config->backend(), "onnxruntime");  // completed
  ASSERT_EQ(m->inputs.size(), 1u);
  EXPECT_EQ(m->inputs[0].dims, (std::vector<int64_t>{-1, 48, 48, 1}));
  ASSERT_EQ(m->outputs.size(), 2u);
  EXPECT_EQ(m->outputs[1].name, "michel_netout/Sigmoid");

  Rng rng(7);
  Tensor x = *Tensor::Create(DType::kFloat32, Shape{3, 48, 48, 1});
  for (float& v : x.Span<float>()) v = static_cast<float>(rng.Uniform());
  InferRequest request;
  request.id = "req-1";
  request.inputs.push_back({"main_input", x});
  InferResponse served = RunSync(*m->scheduler, request);
  ASSERT_TRUE(served.status.ok()) << served.status.ToString();
  EXPECT_EQ(served.id, "req-1");

  std::vector<Tensor> direct;
  auto context = m->engine->CreateContext();
  ASSERT_TRUE(context->Run(std::vector<Tensor>{x}, &direct).ok());
  ASSERT_EQ(served.outputs.size(), direct.size());
  for (std::size_t o = 0; o < direct.size(); ++o) {
    EXPECT_EQ(served.outputs[o].name, m->engine->outputs()[o].name);
    ASSERT_EQ(served.outputs[o].tensor.shape(), direct[o].shape());
    const auto a = served.outputs[o].tensor.Span<float>();
    const auto b = direct[o].Span<float>();
    for (std::size_t i = 0; i < b.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6f) << o << " " << i;
  }

  // By explicit version, and refusals for versions that do not exist or are malformed.
  EXPECT_TRUE(repo->Get("emtrkmichel", int64_t{1}).ok());
  EXPECT_EQ(repo->Get("emtrkmichel", int64_t{2}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(repo->Get("emtrkmichel", "one").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(repo->Get("nosuch").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(repo->AllReady().size(), 1u);

  // threads 0 is divided among the shipped config's two instances.
  ASSERT_EQ(m->config->instance_group(0).count(), 2);
  EXPECT_EQ(m->engine->options().threads, AutoThreads(2));
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_LE(2 * AutoThreads(2), std::max(2, cores));
}

TEST(AutoThreadsTest, LeavesAQuarterOfLargeMachinesToTheFrontends) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int engine = cores >= 8 ? cores - cores / 4 : cores;
  EXPECT_EQ(AutoThreads(1), engine);
  EXPECT_EQ(AutoThreads(2), std::max(1, engine / 2));
  EXPECT_EQ(AutoThreads(4 * cores), 1);
}

TEST_F(RepositoryTest, VersionPolicies) {
  AddTiny({1, 2});
  auto repo = OpenRepo();
  ASSERT_TRUE(repo);
  // Default: latest 1.
  auto index = IndexOf(*repo, "tiny");
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].version, "2");
  EXPECT_EQ(index[0].state, ModelState::kReady) << index[0].reason;
  auto latest = repo->Get("tiny");
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(latest.value()->version, 2);
  EXPECT_FLOAT_EQ(TinyY0(latest.value()), 21.0f);
  EXPECT_EQ(repo->Get("tiny", int64_t{1}).status().code(), StatusCode::kNotFound);

  SetTinyConfig(std::string(kTinyConfig) + "version_policy { all { } }");
  ASSERT_TRUE(repo->Load("tiny").ok());
  EXPECT_EQ(IndexOf(*repo, "tiny").size(), 2u);
  EXPECT_FLOAT_EQ(TinyY0(repo->Get("tiny", int64_t{1}).value()), 11.0f);
  EXPECT_FLOAT_EQ(TinyY0(repo->Get("tiny", "2").value()), 21.0f);
  EXPECT_EQ(repo->Get("tiny").value()->version, 2);
  EXPECT_EQ(repo->ReadyVersions("tiny").size(), 2u);
  EXPECT_EQ(repo->ReadyVersions("tiny")[0]->version, 2);

  SetTinyConfig(std::string(kTinyConfig) + "version_policy { specific { versions: [ 1 ] } }");
  ASSERT_TRUE(repo->Load("tiny").ok());
  index = IndexOf(*repo, "tiny");
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].version, "1");
  EXPECT_EQ(repo->Get("tiny").value()->version, 1);

  SetTinyConfig(std::string(kTinyConfig) + "version_policy { latest { num_versions: 2 } }");
  ASSERT_TRUE(repo->Load("tiny").ok());
  EXPECT_EQ(repo->ReadyVersions("tiny").size(), 2u);

  // A specific version with no directory: that version is UNAVAILABLE with the reason.
  SetTinyConfig(std::string(kTinyConfig) + "version_policy { specific { versions: [ 2, 3 ] } }");
  const Status partial = repo->Load("tiny");
  EXPECT_FALSE(partial.ok());
  EXPECT_NE(partial.message().find("version 3"), std::string::npos) << partial.message();
  index = IndexOf(*repo, "tiny");
  ASSERT_EQ(index.size(), 2u);
  EXPECT_EQ(index[0].state, ModelState::kReady);
  EXPECT_EQ(index[1].version, "3");
  EXPECT_EQ(index[1].state, ModelState::kUnavailable);
  EXPECT_NE(index[1].reason.find("no directory"), std::string::npos) << index[1].reason;
  EXPECT_EQ(repo->Get("tiny", int64_t{3}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(repo->Get("tiny").value()->version, 2);

  // Directories that are not versions are ignored (Triton's rule).
  fs::create_directories(root_ / "tiny" / "07");
  fs::create_directories(root_ / "tiny" / "backup");
  SetTinyConfig(std::string(kTinyConfig) + "version_policy { all { } }");
  ASSERT_TRUE(repo->Load("tiny").ok());
  EXPECT_EQ(IndexOf(*repo, "tiny").size(), 2u);
}

TEST_F(RepositoryTest, ExplicitModeLoadUnloadReload) {
  AddTiny({1});
  RepositoryOptions options;
  options.load_all_at_start = false;
  auto repo = OpenRepo(options);
  ASSERT_TRUE(repo);
  auto index = IndexOf(*repo, "tiny");
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].state, ModelState::kUnavailable);
  EXPECT_EQ(index[0].reason, "not loaded");
  EXPECT_EQ(repo->Get("tiny").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(repo->Unload("tiny").ok());  // not loaded: nothing to do
  EXPECT_EQ(repo->Unload("nosuch").code(), StatusCode::kNotFound);
  EXPECT_EQ(repo->Load("nosuch").code(), StatusCode::kNotFound);
  EXPECT_EQ(repo->Load("../etc").code(), StatusCode::kInvalidArgument);

  ASSERT_TRUE(repo->Load("tiny").ok());
  auto held = repo->Get("tiny");
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  // The config's warm-up ran before READY: 2 runs of a batch of 2.
  EXPECT_EQ(held.value()->scheduler->Stats().inference_count, 4u);
  EXPECT_FLOAT_EQ(TinyY0(held.value()), 11.0f);

  ASSERT_TRUE(repo->Unload("tiny").ok());
  index = IndexOf(*repo, "tiny");
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].version, "1");
  EXPECT_EQ(index[0].state, ModelState::kUnavailable);
  EXPECT_EQ(index[0].reason, "unloaded");
  const auto gone = repo->Get("tiny");
  EXPECT_EQ(gone.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(gone.status().message().find("unloaded"), std::string::npos);
  // The handle held across the unload is still a valid object; its scheduler refuses.
  EXPECT_EQ(held.value()->engine->inputs().size(), 1u);
  InferRequest late;
  late.inputs.push_back({"x", *Tensor::Create(DType::kFloat32, Shape{1, 4})});
  EXPECT_FALSE(RunSync(*held.value()->scheduler, std::move(late)).status.ok());

  ASSERT_TRUE(repo->Load("tiny").ok());
  EXPECT_FLOAT_EQ(TinyY0(repo->Get("tiny").value()), 11.0f);
}

TEST_F(RepositoryTest, ConfigModelMismatchIsUnavailableWithReason) {
  AddTiny({1});
  std::string wrong_name = kTinyConfig;
  wrong_name.replace(wrong_name.find("name: \"x\""), 9, "name: \"input0\"");
  wrong_name.replace(wrong_name.find("key: \"x\""), 8, "key: \"input0\"");
  SetTinyConfig(wrong_name);
  auto repo = OpenRepo();
  ASSERT_TRUE(repo);
  auto index = IndexOf(*repo, "tiny");
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].state, ModelState::kUnavailable);
  EXPECT_NE(index[0].reason.find("'x' is missing from config.pbtxt"), std::string::npos)
      << index[0].reason;
  const auto got = repo->Get("tiny");
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(got.status().message().find("missing from config.pbtxt"), std::string::npos);

  // Input dims [5] against the model's [-1, 4] (the warm-up sample follows the config).
  std::string wrong_dims = kTinyConfig;
  wrong_dims.replace(wrong_dims.find("dims: [ 4 ] } ]"), 15, "dims: [ 5 ] } ]");
  wrong_dims.replace(wrong_dims.find("dims: [ 4 ] random_data"), 11, "dims: [ 5 ]");
  SetTinyConfig(wrong_dims);
  const Status s = repo->Load("tiny");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("do not match the model's shape [-1, 4]"), std::string::npos)
      << s.message();
  index = IndexOf(*repo, "tiny");
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].state, ModelState::kUnavailable);
  EXPECT_NE(index[0].reason.find("do not match"), std::string::npos) << index[0].reason;

  SetTinyConfig(kTinyConfig);
  EXPECT_TRUE(repo->Load("tiny").ok());
}

TEST_F(RepositoryTest, BrokenModelsDoNotStopTheOthers) {
  AddTiny({1});
  // A corrupt ONNX file.
  WriteFile(root_ / "corrupt" / "1" / "model.onnx", "this is not a protobuf");
  WriteFile(root_ / "corrupt" / "config.pbtxt",
            std::string(kTinyConfig)
                .replace(std::string(kTinyConfig).find("\"tiny\""), 6, "\"corrupt\""));
  // A config with a syntax error on line 3.
  WriteFile(root_ / "badconfig" / "1" / "model.onnx", "");
  WriteFile(root_ / "badconfig" / "config.pbtxt",
            "name: \"badconfig\"\nmax_batch_size: 8\ninput [ {\n");
  // A config naming another model, and a model with no version directory.
  WriteFile(root_ / "misnamed" / "config.pbtxt", "name: \"other\"\n");
  WriteFile(root_ / "noversion" / "config.pbtxt",
            std::string(kTinyConfig)
                .replace(std::string(kTinyConfig).find("\"tiny\""), 6, "\"noversion\""));
  // No config at all.
  fs::create_directories(root_ / "noconfig" / "1");

  auto repo = OpenRepo();
  ASSERT_TRUE(repo);
  EXPECT_TRUE(repo->Get("tiny").ok());
  const auto expect_unavailable = [&](const std::string& name, const std::string& fragment) {
    const auto index = IndexOf(*repo, name);
    ASSERT_EQ(index.size(), 1u) << name;
    EXPECT_EQ(index[0].state, ModelState::kUnavailable) << name;
    EXPECT_NE(index[0].reason.find(fragment), std::string::npos) << name << ": " << index[0].reason;
    EXPECT_FALSE(repo->Get(name).ok()) << name;
  };
  expect_unavailable("corrupt", (root_ / "corrupt" / "1" / "model.onnx").string());
  expect_unavailable("badconfig", "config.pbtxt:4:");
  expect_unavailable("misnamed", "names it 'other'");
  expect_unavailable("noversion", "no version directory");
  expect_unavailable("noconfig", "config.pbtxt: no such file");
  EXPECT_EQ(repo->Get("corrupt", int64_t{1}).status().code(), StatusCode::kUnavailable);
}

TEST_F(RepositoryTest, FailedReloadKeepsServing) {
  AddTiny({1});
  auto repo = OpenRepo();
  ASSERT_TRUE(repo);
  ASSERT_TRUE(repo->Get("tiny").ok());
  SetTinyConfig("name: \"tiny\"\nmax_batch_size: -3\n");
  const Status s = repo->Load("tiny");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("max_batch_size -3"), std::string::npos) << s.message();
  auto still = repo->Get("tiny");
  ASSERT_TRUE(still.ok()) << still.status().ToString();
  EXPECT_FLOAT_EQ(TinyY0(still.value()), 11.0f);

  WriteFile(root_ / "tiny" / "1" / "model.onnx", "garbage");
  SetTinyConfig(kTinyConfig);
  EXPECT_FALSE(repo->Load("tiny").ok());
  EXPECT_TRUE(repo->Get("tiny").ok());  // the old engine keeps serving
}

TEST_F(RepositoryTest, PlansMustFitTheConfig) {
  // A plan built for batches up to 4 cannot serve max_batch_size 8; one built for 8 can.
  const auto build_plan = [&](int64_t max_batch, const fs::path& path) {
    runtime::BuildOptions options;
    options.batch_min = 1;
    options.batch_opt = max_batch;
    options.batch_max = max_batch;
    auto engine = runtime::Engine::Build(TinyGraph(5.0f), options);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    fs::create_directories(path.parent_path());
    ASSERT_TRUE(engine.value()->SavePlan(path.string()).ok());
  };
  std::string config = kTinyConfig;
  config.replace(config.find("onnxruntime_onnx"), 16, "tensorrt_plan");
  build_plan(4, root_ / "tiny" / "1" / "model.plan");
  build_plan(8, root_ / "tiny" / "2" / "model.plan");
  SetTinyConfig(config + "version_policy { all { } }");
  auto repo = OpenRepo();
  ASSERT_TRUE(repo);
  const auto index = IndexOf(*repo, "tiny");
  ASSERT_EQ(index.size(), 2u);
  EXPECT_EQ(index[0].state, ModelState::kUnavailable);
  EXPECT_NE(index[0].reason.find("built for batches 1 to 4"), std::string::npos) << index[0].reason;
  EXPECT_EQ(index[1].state, ModelState::kReady) << index[1].reason;
  EXPECT_FLOAT_EQ(TinyY0(repo->Get("tiny").value()), 6.0f);

  // A precision the plan was not built with.
  SetTinyConfig(config + "version_policy { specific { versions: [ 2 ] } }\n" +
                "parameters { key: \"precision\" value { string_value: \"bf16\" } }");
  const Status s = repo->Load("tiny");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("built for precision fp32"), std::string::npos) << s.message();
}

TEST_F(RepositoryTest, ConcurrentReadersDuringLoadAndUnload) {
  AddTiny({1, 2}, std::string(kTinyConfig) + "version_policy { all { } }");
  auto repo = OpenRepo();
  ASSERT_TRUE(repo);
  std::atomic<bool> stop{false};
  std::atomic<int> served{0};
  std::thread reader([&] {
    while (!stop) {
      (void)repo->Index();
      auto m = repo->Get("tiny");
      if (m.ok()) {
        InferRequest r;
        r.inputs.push_back({"x", *Tensor::Create(DType::kFloat32, Shape{1, 4})});
        // Holding the handle in the callback keeps the model alive until the response.
        auto handle = m.value();
        InferResponse resp = RunSync(*handle->scheduler, std::move(r));
        if (resp.status.ok()) ++served;
      }
    }
  });
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(repo->Load("tiny").ok());
    EXPECT_TRUE(repo->Unload("tiny").ok());
  }
  EXPECT_TRUE(repo->Load("tiny").ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (served == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop = true;
  reader.join();
  EXPECT_GT(served.load(), 0);
}

TEST_F(RepositoryTest, OpenRefusesBadArguments) {
  EXPECT_EQ(ModelRepository::Open((root_ / "missing").string()).status().code(),
            StatusCode::kNotFound);
  RepositoryOptions options;
  options.backend = "tpu";
  const auto bad = ModelRepository::Open(root_.string(), options);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unknown backend 'tpu'"), std::string::npos);
  // A corrupt timing cache is ignored (and rewritten), not fatal.
  AddTiny({1});
  WriteFile(root_ / ".larserve_timing.cache", "garbage");
  auto repo = OpenRepo();
  ASSERT_TRUE(repo);
  EXPECT_TRUE(repo->Get("tiny").ok());
}

}  // namespace
}  // namespace larserve::serve
