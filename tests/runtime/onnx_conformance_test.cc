// The ONNX node conformance tests shipped in Debian's libonnx-testdata, run on every backend
// (ctest label `ops`). For the reference backend a case is "supported" when every node of its
// model has a kernel; for the cpu backend a case counts when at least one node of the built
// engine runs on it. Every counted case must match the expected outputs (rtol 1e-3, atol 1e-5
// as in ONNX's backend test runner; exact for integers and booleans). Prints the counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "larserve/graph/onnx_import.h"
#include "larserve/runtime/backend.h"
#include "larserve/runtime/engine.h"
#include "larserve/runtime/reference_executor.h"
#include "larserve/runtime/reference_kernels.h"

namespace larserve::runtime {
namespace {

namespace fs = std::filesystem;

const char* DataDir() {
  const char* env = std::getenv("LARSERVE_ONNX_NODE_TESTS");
  return env ? env : "/usr/share/libonnx-testdata/data/node";
}

double AsDouble(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kFloat32:
      return t.Span<float>()[i];
    case DType::kFloat64:
      return t.Span<double>()[i];
    case DType::kInt8:
      return t.Span<int8_t>()[i];
    case DType::kUInt8:
      return t.Span<uint8_t>()[i];
    case DType::kBool:
      return t.Span<uint8_t>()[i] != 0;
    case DType::kInt16:
      return t.Span<int16_t>()[i];
    case DType::kUInt16:
      return t.Span<uint16_t>()[i];
    case DType::kInt32:
      return t.Span<int32_t>()[i];
    case DType::kInt64:
      return static_cast<double>(t.Span<int64_t>()[i]);
    case DType::kFloat16:
    case DType::kBFloat16:
      return static_cast<double>(t.Span<uint16_t>()[i]);  // compared bitwise
  }
  return 0;
}

// The suite stores bfloat16 data as uint16 tensors (numpy has no bfloat16): view such a tensor
// as the declared BF16, bit for bit.
Tensor AsDeclared(Tensor t, DType declared) {
  if (t.dtype() == DType::kUInt16 && declared == DType::kBFloat16) {
    return *t.Reinterpret(DType::kBFloat16, t.shape());
  }
  return t;
}

// Empty string when equal within tolerance, else a description of the first mismatch.
std::string Compare(const Tensor& want, const Tensor& got) {
  if (want.dtype() != got.dtype()) {
    return "dtype " + std::string(DTypeName(got.dtype())) + " vs expected " +
           std::string(DTypeName(want.dtype()));
  }
  if (want.shape() != got.shape())
    return "shape " + got.shape().ToString() + " vs expected " + want.shape().ToString();
  const bool exact = want.dtype() != DType::kFloat32 && want.dtype() != DType::kFloat64;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    const double a = AsDouble(want, i), b = AsDouble(got, i);
    if ((std::isnan(a) && std::isnan(b)) || a == b) continue;
    const bool ok = exact ? a == b : std::fabs(a - b) <= 1e-5 + 1e-3 * std::fabs(a);
    if (!ok) {
      char buf[160];
      std::snprintf(buf, sizeof(buf), "element %lld: %.8g vs expected %.8g",
                    static_cast<long long>(i), b, a);
      return buf;
    }
  }
  return "";
}

// Cases whose expected data we deliberately do not reproduce, with the reason. They are run
// and reported, and must fail in exactly this way (so a fix upstream or here is noticed).
const std::map<std::string, std::string>& KnownDeviations() {
  static const std::map<std::string, std::string> m = {
      {"test_cast_FLOAT_to_BFLOAT16",
       "ONNX 1.12's generator truncated float32 to bfloat16; we round to nearest even like "
       "onnxruntime "
       "(onnx/onnx#3876)"},
      {"test_castlike_FLOAT_to_BFLOAT16_expanded",
       "the test data's 'like' input has shape [1], contradicting the model's declared [3,4]"},
      {"test_castlike_BFLOAT16_to_FLOAT_expanded",
       "the test data's 'like' input has shape [1], contradicting the model's declared [3,4]"},
  };
  return m;
}

// How one backend takes a case: the model ready to run, or why the backend does not take it.
struct PreparedCase {
  enum class Kind { kReady, kSkip, kFailed } kind = Kind::kReady;
  std::vector<std::string> skip_keys;              // kSkip: what the backend lacks
  std::string failure;                             // kFailed
  std::vector<DType> input_dtypes, output_dtypes;  // declared, for reading the test data
  std::function<StatusOr<std::vector<Tensor>>(const std::vector<Tensor>&)> run;
};
using CasePreparer = std::function<PreparedCase(graph::Graph)>;

struct ConformanceCounts {
  int passed = 0, failed = 0, skipped = 0, deviations = 0;
  std::map<std::string, int> skip_keys;
  std::vector<std::string> failures;
  std::size_t cases = 0;
};

// Runs every case of the suite that `prepare` takes and compares with the expected outputs.
// A case is skipped when its model does not import for an unimplemented feature, when the
// backend does not take it, or when running it reports Unimplemented.
ConformanceCounts RunConformance(const fs::path& root, const CasePreparer& prepare) {
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.is_directory()) cases.push_back(e.path());
  }
  std::sort(cases.begin(), cases.end());
  ConformanceCounts c;
  c.cases = cases.size();
  graph::ImportOptions opt;
  opt.allow_old_opsets = true;
  for (const auto& dir : cases) {
    const std::string name = dir.filename().string();
    auto g = graph::ImportOnnxFile((dir / "model.onnx").string(), opt);
    if (!g.ok()) {
      if (g.status().code() == StatusCode::kUnimplemented) {
        ++c.skipped;
        c.skip_keys["(import) " + g.status().message().substr(0, 60)]++;
      } else {
        ++c.failed;
        c.failures.push_back(name + ": import: " + g.status().message());
      }
      continue;
    }
    PreparedCase pc = prepare(std::move(g).value());
    if (pc.kind == PreparedCase::Kind::kSkip) {
      ++c.skipped;
      for (const auto& k : pc.skip_keys) c.skip_keys[k]++;
      continue;
    }
    if (pc.kind == PreparedCase::Kind::kFailed) {
      ++c.failed;
      c.failures.push_back(name + ": " + pc.failure);
      continue;
    }
    std::string problem;
    bool case_unimplemented = false;
    for (const auto& set : fs::directory_iterator(dir)) {
      if (!set.is_directory() || set.path().filename().string().rfind("test_data_set", 0) != 0)
        continue;
      std::vector<Tensor> inputs, expected;
      for (std::size_t k = 0; k < pc.input_dtypes.size(); ++k) {
        auto t = graph::ReadTensorProtoFile(
            (set.path() / ("input_" + std::to_string(k) + ".pb")).string());
        if (!t.ok()) {
          case_unimplemented = t.status().code() == StatusCode::kUnimplemented;
          problem = t.status().message();
          break;
        }
        inputs.push_back(AsDeclared(std::move(t).value(), pc.input_dtypes[k]));
      }
      for (std::size_t k = 0; problem.empty() && k < pc.output_dtypes.size(); ++k) {
        auto t = graph::ReadTensorProtoFile(
            (set.path() / ("output_" + std::to_string(k) + ".pb")).string());
        if (!t.ok()) {
          case_unimplemented = t.status().code() == StatusCode::kUnimplemented;
          problem = t.status().message();
          break;
        }
        expected.push_back(AsDeclared(std::move(t).value(), pc.output_dtypes[k]));
      }
      if (!problem.empty()) break;
      auto out = pc.run(inputs);
      if (!out.ok()) {
        if (out.status().code() == StatusCode::kUnimplemented) case_unimplemented = true;
        problem = out.status().ToString();
        break;
      }
      for (std::size_t k = 0; k < expected.size(); ++k) {
        std::string diff = Compare(expected[k], (*out)[k]);
        if (!diff.empty()) {
          problem = "output " + std::to_string(k) + ": " + diff;
          break;
        }
      }
      if (!problem.empty()) break;
    }
    const auto deviation = KnownDeviations().find(name);
    if (deviation != KnownDeviations().end()) {
      ++c.deviations;
      std::printf("known deviation %s: %s (%s)\n", name.c_str(), deviation->second.c_str(),
                  problem.empty() ? "but it PASSED: remove it from the list" : problem.c_str());
      if (problem.empty()) {
        ++c.failed;
        c.failures.push_back(name + ": listed as a known deviation but passes");
      }
      continue;
    }
    if (problem.empty()) {
      ++c.passed;
    } else if (case_unimplemented) {
      ++c.skipped;
      c.skip_keys["(kernel) " + name]++;
    } else {
      ++c.failed;
      c.failures.push_back(name + ": " + problem);
    }
  }
  return c;
}

void PrintSkipsAndFailures(const ConformanceCounts& c, const char* skip_title) {
  std::printf("%s:", skip_title);
  for (const auto& [key, n] : c.skip_keys) std::printf(" %s(%d)", key.c_str(), n);
  std::printf("\n");
  for (const auto& f : c.failures) std::printf("FAILED %s\n", f.c_str());
}

// Op types of g without a reference kernel (then no backend runs the model).
std::vector<std::string> OpsWithoutKernel(const graph::Graph& g) {
  std::vector<std::string> missing;
  for (const auto& node : g.nodes) {
    if (!ref::FindKernel(node.op_type)) missing.push_back(node.op_type);
  }
  return missing;
}

TEST(OnnxConformanceTest, ReferenceBackend) {
  const fs::path root = DataDir();
  if (!fs::exists(root))
    GTEST_SKIP() << "no ONNX node tests at " << root << " (install libonnx-testdata)";
  const ConformanceCounts c = RunConformance(root, [](graph::Graph g) {
    PreparedCase pc;
    pc.skip_keys = OpsWithoutKernel(g);
    if (!pc.skip_keys.empty()) {
      pc.kind = PreparedCase::Kind::kSkip;
      return pc;
    }
    auto ex = ReferenceExecutor::Create(std::move(g));
    if (!ex.ok()) {
      pc.kind = PreparedCase::Kind::kFailed;
      pc.failure = ex.status().message();
      return pc;
    }
    std::shared_ptr<ReferenceExecutor> executor = std::move(ex).value();
    const graph::Graph& eg = executor->graph();
    for (int v : eg.inputs) pc.input_dtypes.push_back(eg.values[v].dtype);
    for (int v : eg.outputs) pc.output_dtypes.push_back(eg.values[v].dtype);
    pc.run = [executor](const std::vector<Tensor>& inputs) { return executor->Run(inputs); };
    return pc;
  });
  std::printf(
      "ONNX node conformance, reference backend: %d passed, %d failed, %d unsupported, %d known "
      "deviations (of %zu cases)\n",
      c.passed, c.failed, c.skipped, c.deviations, c.cases);
  PrintSkipsAndFailures(c, "unsupported ops (cases)");
  EXPECT_EQ(c.failed, 0);
  EXPECT_GT(c.passed, 100);
}

// The same cases built into an Engine for the cpu (oneDNN) backend. A case counts for the cpu
// backend when at least one node of its optimised graph runs there (the rest runs on the
// reference backend, covered above); those cases must all pass with the same tolerance.
TEST(OnnxConformanceTest, CpuBackend) {
  if (!CpuBackend()) GTEST_SKIP() << "built without the cpu (oneDNN) backend";
  const fs::path root = DataDir();
  if (!fs::exists(root))
    GTEST_SKIP() << "no ONNX node tests at " << root << " (install libonnx-testdata)";
  const ConformanceCounts c = RunConformance(root, [](graph::Graph g) {
    PreparedCase pc;
    if (!OpsWithoutKernel(g).empty()) {
      pc.kind = PreparedCase::Kind::kSkip;
      pc.skip_keys = {"(no kernel)"};
      return pc;
    }
    BuildOptions options;
    options.backend = "cpu";
    auto built = Engine::Build(std::move(g), options);
    if (!built.ok()) {
      pc.kind = PreparedCase::Kind::kFailed;
      pc.failure = "build: " + built.status().ToString();
      return pc;
    }
    std::shared_ptr<Engine> engine = std::move(built).value();
    bool on_cpu = false;
    for (const auto& s : engine->segments()) on_cpu |= s.backend == "cpu" && !s.nodes.empty();
    if (!on_cpu) {
      pc.kind = PreparedCase::Kind::kSkip;
      pc.skip_keys = {"(not on cpu)"};
      return pc;
    }
    for (const auto& spec : engine->inputs()) pc.input_dtypes.push_back(spec.dtype);
    for (const auto& spec : engine->outputs()) pc.output_dtypes.push_back(spec.dtype);
    pc.run = [engine](const std::vector<Tensor>& inputs) -> StatusOr<std::vector<Tensor>> {
      auto ctx = engine->CreateContext();
      std::vector<Tensor> out;
      RETURN_IF_ERROR(ctx->Run(inputs, &out));
      return out;
    };
    return pc;
  });
  std::printf(
      "ONNX node conformance, cpu backend: %d passed, %d failed, %d not on cpu (of %zu cases)\n",
      c.passed, c.failed, c.skipped, c.cases);
  PrintSkipsAndFailures(c, "not on cpu (cases)");
  EXPECT_EQ(c.failed, 0);
  EXPECT_GT(c.passed, 50);
}

}  // namespace
}  // namespace larserve::runtime
