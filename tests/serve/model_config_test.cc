// config.pbtxt: parsing (errors with file:line:column), validation of what larserve serves,
// resolution into engine settings and scheduler configuration, the check against an engine's
// tensors, and the JSON form HTTP clients read.
#include "larserve/serve/model_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace larserve::serve {
namespace {

const std::string kShippedConfig =
    std::string(LARSERVE_SOURCE_DIR) + "/models/emtrkmichel/config.pbtxt";

// A valid config of a small batched model; tests append or replace fields.
// (Delimiter "cfg", not "pb": clang-format would reflow a "pb" raw string as text proto.)
const char kBase[] = R"cfg(
name: "m"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 4 ] } ]
)cfg";

inference::ModelConfig Parse(const std::string& text) {
  auto c = ParseModelConfig(text, "test.pbtxt");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? c.value() : inference::ModelConfig();
}

// Validation of kBase plus `extra`: the status.
Status ValidateWith(const std::string& extra) {
  auto c = ParseModelConfig(std::string(kBase) + extra, "test.pbtxt");
  if (!c.ok()) return c.status();
  return ValidateModelConfig(c.value());
}

TEST(ModelConfig, ParsesTheShippedConfig) {
  auto parsed = ReadModelConfig(kShippedConfig);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const inference::ModelConfig& c = parsed.value();
  EXPECT_EQ(c.name(), "emtrkmichel");
  EXPECT_EQ(c.platform(), "onnxruntime_onnx");
  EXPECT_EQ(c.max_batch_size(), 65536);
  ASSERT_EQ(c.input_size(), 1);
  EXPECT_EQ(c.input(0).name(), "main_input");
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(c.input(0).format(), inference::ModelInput::FORMAT_NHWC);
  EXPECT_EQ(std::vector<int64_t>(c.input(0).dims().begin(), c.input(0).dims().end()),
            (std::vector<int64_t>{48, 48, 1}));
  ASSERT_EQ(c.output_size(), 2);
  EXPECT_EQ(c.output(0).name(), "em_trk_none_netout/Softmax");
  EXPECT_EQ(c.output(0).dims(0), 3);
  EXPECT_EQ(c.output(1).name(), "michel_netout/Sigmoid");
  EXPECT_EQ(c.output(1).dims(0), 1);
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(c.instance_group(0).count(), 2);
  ASSERT_TRUE(c.has_dynamic_batching());
  EXPECT_EQ(c.dynamic_batching().preferred_batch_size_size(), 1);
  EXPECT_EQ(c.dynamic_batching().preferred_batch_size(0), 256);
  EXPECT_EQ(c.dynamic_batching().max_queue_delay_microseconds(), 0u);
  EXPECT_TRUE(ValidateModelConfig(c).ok()) << ValidateModelConfig(c).ToString();

  auto settings = EngineSettingsFromConfig(c);
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->precision, runtime::Precision::kFp32);
  EXPECT_FALSE(settings->precision_set);
  EXPECT_EQ(settings->batch_min, 1);
  EXPECT_EQ(settings->batch_opt, 256);
  EXPECT_EQ(settings->batch_max, 65536);

  auto sched = SchedulerConfigFromConfig(c, 3);
  ASSERT_TRUE(sched.ok()) << sched.status().ToString();
  EXPECT_EQ(sched->model_name, "emtrkmichel");
  EXPECT_EQ(sched->version, 3);
  EXPECT_EQ(sched->instances, 2);
  EXPECT_EQ(sched->batching.max_batch_size, 65536);
  EXPECT_TRUE(sched->batching.dynamic);
  EXPECT_EQ(sched->batching.preferred_batch_sizes, (std::vector<int64_t>{256}));
  EXPECT_EQ(sched->batching.max_queue_delay_us, 0u);
  EXPECT_EQ(sched->batching.max_queue_size, 0);
}

TEST(ModelConfig, ParseErrorsSayFileLineAndColumn) {
  // Unterminated dims list on line 4.
  auto bad = ParseModelConfig(
      "name: \"m\"\nmax_batch_size: 8\ninput [\n  { name: \"x\" data_type: TYPE_FP32 dims: [ 4 }\n"
      "]\n",
      "repo/m/config.pbtxt");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("repo/m/config.pbtxt:4:"), std::string::npos)
      << bad.status().message();

  auto unknown = ParseModelConfig("name: \"m\"\nmax_batch_sise: 8\n", "c.pbtxt");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("c.pbtxt:2:"), std::string::npos)
      << unknown.status().message();
  EXPECT_NE(unknown.status().message().find("max_batch_sise"), std::string::npos);

  auto wrong_type = ParseModelConfig("max_batch_size: \"eight\"\n", "c.pbtxt");
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_NE(wrong_type.status().message().find("c.pbtxt:1:17:"), std::string::npos)
      << wrong_type.status().message();
  EXPECT_NE(wrong_type.status().message().find("integer"), std::string::npos);

  auto bad_enum = ParseModelConfig("input [ { name: \"x\" data_type: TYPE_FLOAT } ]", "c.pbtxt");
  ASSERT_FALSE(bad_enum.ok());
  EXPECT_NE(bad_enum.status().message().find("TYPE_FLOAT"), std::string::npos)
      << bad_enum.status().message();

  auto twice = ParseModelConfig("max_batch_size: 1\nmax_batch_size: 2\n", "c.pbtxt");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("c.pbtxt:2:"), std::string::npos)
      << twice.status().message();
}

TEST(ModelConfig, SizeLimitAndMissingFile) {
  const std::string huge(kMaxConfigFileBytes + 1, ' ');
  auto big = ParseModelConfig(huge, "big.pbtxt");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("at most"), std::string::npos);
  auto missing = ReadModelConfig("/nonexistent/config.pbtxt");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/config.pbtxt"), std::string::npos);
}

// Each case: extra config text, the expected code and a fragment of the message.
struct Refusal {
  const char* extra;
  StatusCode code;
  const char* fragment;
};

TEST(ModelConfig, RefusesWhatItDoesNotServe) {
  const Refusal cases[] = {
      {"instance_group [ { kind: KIND_GPU count: 1 } ]", StatusCode::kUnimplemented,
       "no CUDA backend in this build"},
      {"instance_group [ { kind: KIND_MODEL } ]", StatusCode::kUnimplemented, "KIND_MODEL"},
      {"instance_group [ { kind: KIND_CPU count: -1 } ]", StatusCode::kInvalidArgument, "count -1"},
      {"instance_group [ { kind: KIND_CPU gpus: [ 0 ] } ]", StatusCode::kInvalidArgument,
       "gpus cannot be given with KIND_CPU"},
      {"instance_group [ { kind: KIND_CPU count: 1000 } ]", StatusCode::kInvalidArgument,
       "at most 256"},
      {"input [ { name: \"s\" data_type: TYPE_STRING dims: [ 1 ] } ]", StatusCode::kUnimplemented,
       "TYPE_STRING"},
      {"input [ { name: \"u\" data_type: TYPE_UINT32 dims: [ 1 ] } ]", StatusCode::kUnimplemented,
       "TYPE_UINT32"},
      {"input [ { name: \"n\" dims: [ 1 ] } ]", StatusCode::kInvalidArgument, "no data_type"},
      {"input [ { name: \"d\" data_type: TYPE_FP32 dims: [ -2 ] } ]", StatusCode::kInvalidArgument,
       "dimension -2"},
      {"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] } ]", StatusCode::kInvalidArgument,
       "listed twice"},
      {"input [ { name: \"r\" data_type: TYPE_FP32 dims: [ 4 ] reshape { shape: [ 2, 2 ] } } ]",
       StatusCode::kUnimplemented, "reshape"},
      {"input [ { name: \"i\" data_type: TYPE_FP32 format: FORMAT_NHWC dims: [ 4 ] } ]",
       StatusCode::kInvalidArgument, "needs 3 dims"},
      {"output [ { name: \"l\" data_type: TYPE_FP32 dims: [ 4 ] label_filename: \"l.txt\" } ]",
       StatusCode::kUnimplemented, "label_filename"},
      {"dynamic_batching { preferred_batch_size: [ 16 ] }", StatusCode::kInvalidArgument,
       "preferred_batch_size 16"},
      {"dynamic_batching { max_queue_delay_microseconds: 100000000 }", StatusCode::kInvalidArgument,
       "over 60 s"},
      {"dynamic_batching { priority_levels: 2 }", StatusCode::kUnimplemented, "priority"},
      {"sequence_batching { }", StatusCode::kUnimplemented, "sequence_batching"},
      {"platform: \"pytorch_libtorch\"", StatusCode::kUnimplemented, "pytorch_libtorch"},
      {"backend: \"python\"", StatusCode::kUnimplemented, "backend 'python'"},
      {"default_model_filename: \"../../etc/passwd\"", StatusCode::kInvalidArgument,
       "default_model_filename"},
      {"parameters { key: \"execution_mode\" value { string_value: \"1\" } }",
       StatusCode::kUnimplemented, "execution_mode"},
      {"parameters { key: \"precision\" value { string_value: \"fp12\" } }",
       StatusCode::kInvalidArgument, "fp12"},
      {"parameters { key: \"intra_op_thread_count\" value { string_value: \"many\" } }",
       StatusCode::kInvalidArgument, "intra_op_thread_count"},
      {"optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\" "
       "parameters { key: \"precision_mode\" value: \"FP16\" } } ] } }\n"
       "parameters { key: \"precision\" value { string_value: \"bf16\" } }",
       StatusCode::kInvalidArgument, "asks for bf16 but"},
      {"optimization { execution_accelerators { cpu_execution_accelerator [ { name: \"tvm\" } ] } "
       "}",
       StatusCode::kUnimplemented, "'tvm'"},
      {"version_policy { latest { num_versions: 0 } }", StatusCode::kInvalidArgument,
       "num_versions >= 1"},
      {"version_policy { specific { } }", StatusCode::kInvalidArgument, "lists no versions"},
      {"version_policy { specific { versions: [ 0 ] } }", StatusCode::kInvalidArgument,
       "version 0"},
      {"model_warmup [ { name: \"w\" batch_size: 1 } ]", StatusCode::kInvalidArgument,
       "no data for input 'x'"},
      {"model_warmup [ { name: \"w\" batch_size: 1 inputs { key: \"x\" value { data_type: "
       "TYPE_FP32 dims: [ 5 ] zero_data: true } } } ]",
       StatusCode::kInvalidArgument, "do not fill"},
      {"model_warmup [ { name: \"w\" batch_size: 1 inputs { key: \"x\" value { data_type: "
       "TYPE_FP32 dims: [ 4 ] input_data_file: \"raw\" } } } ]",
       StatusCode::kUnimplemented, "input_data_file"},
      {"input [ { name: \"v\" data_type: TYPE_FP32 dims: [ -1 ] } ]\n"
       "model_warmup [ { name: \"w\" batch_size: 2 inputs { key: \"x\" value { data_type: "
       "TYPE_FP32 dims: [ 4 ] zero_data: true } } inputs { key: \"v\" value { data_type: "
       "TYPE_FP32 dims: [ 4611686018427387904 ] zero_data: true } } } ]",
       StatusCode::kInvalidArgument, "over 256 MiB"},
      {"model_transaction_policy { decoupled: true }", StatusCode::kUnimplemented, "decoupled"},
      {"response_cache { enable: true }", StatusCode::kUnimplemented, "response_cache"},
  };
  for (const auto& r : cases) {
    const Status s = ValidateWith(r.extra);
    EXPECT_FALSE(s.ok()) << r.extra;
    EXPECT_EQ(s.code(), r.code) << r.extra << " -> " << s.ToString();
    EXPECT_NE(s.message().find(r.fragment), std::string::npos) << r.extra << " -> " << s.message();
    EXPECT_EQ(s.message().rfind("model 'm': ", 0), 0u) << s.message();
  }
  // Negative max_batch_size and dynamic batching without a batch dimension.
  auto c = Parse(kBase);
  c.set_max_batch_size(-1);
  EXPECT_EQ(ValidateModelConfig(c).code(), StatusCode::kInvalidArgument);
  c.set_max_batch_size(0);
  c.mutable_dynamic_batching();
  const Status no_batch = ValidateModelConfig(c);
  EXPECT_NE(no_batch.message().find("dynamic_batching needs max_batch_size > 0"), std::string::npos)
      << no_batch.message();
}

TEST(ModelConfig, AcceptsWhatItServes) {
  const char* accepted[] = {
      "instance_group [ { kind: KIND_CPU count: 2 }, { count: 1 } ]",
      "dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 500 "
      "default_queue_policy { max_queue_size: 16 default_timeout_microseconds: 1000 "
      "timeout_action: DELAY allow_timeout_override: true } }",
      "input [ { name: \"ids\" data_type: TYPE_INT64 dims: [ -1 ] } ]",
      "optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\" "
      "parameters { key: \"precision_mode\" value: \"FP16\" } parameters { key: "
      "\"max_workspace_size_bytes\" value: \"1073741824\" } } ] } cuda { graphs: true } }",
      "parameters { key: \"precision\" value { string_value: \"BF16\" } }",
      "version_policy { all { } }",
      "version_policy { specific { versions: [ 1, 3 ] } }",
      "model_warmup [ { name: \"w\" batch_size: 2 count: 3 inputs { key: \"x\" value { data_type: "
      "TYPE_FP32 dims: [ 4 ] random_data: true } } } ]",
  };
  for (const char* extra : accepted) {
    const Status s = ValidateWith(extra);
    EXPECT_TRUE(s.ok()) << extra << " -> " << s.ToString();
  }
}

TEST(ModelConfig, PrecisionAndThreadsFromTheConfig) {
  auto fp16 = Parse(std::string(kBase) +
                    "optimization { execution_accelerators { gpu_execution_accelerator [ { name: "
                    "\"tensorrt\" parameters { key: \"precision_mode\" value: \"FP16\" } } ] } }");
  auto s = EngineSettingsFromConfig(fp16);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->precision, runtime::Precision::kFp16);
  EXPECT_TRUE(s->precision_set);

  auto both = Parse(std::string(kBase) +
                    "optimization { execution_accelerators { cpu_execution_accelerator [ { name: "
                    "\"openvino\" parameters { key: \"precision_mode\" value: \"int8\" } } ] } }\n"
                    "parameters { key: \"precision\" value { string_value: \"INT8\" } }\n"
                    "parameters { key: \"intra_op_thread_count\" value { string_value: \"3\" } }\n"
                    "dynamic_batching { preferred_batch_size: [ 2, 6 ] }");
  s = EngineSettingsFromConfig(both);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->precision, runtime::Precision::kInt8);
  EXPECT_EQ(s->threads, 3);
  EXPECT_EQ(s->batch_min, 1);
  EXPECT_EQ(s->batch_opt, 6);
  EXPECT_EQ(s->batch_max, 8);

  auto unbatched = Parse(kBase);
  unbatched.set_max_batch_size(0);
  s = EngineSettingsFromConfig(unbatched);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->batch_max, 0);
  EXPECT_EQ(s->threads, -1);
}

TEST(ModelConfig, CompleteFillsTritonDefaults) {
  auto c = Parse(std::string(kBase) +
                 "platform: \"onnxruntime_onnx\"\n"
                 "instance_group [ { kind: KIND_AUTO } ]");
  ASSERT_TRUE(ValidateModelConfig(c).ok());
  CompleteModelConfig(&c);
  EXPECT_EQ(c.backend(), "onnxruntime");
  ASSERT_TRUE(c.version_policy().has_latest());
  EXPECT_EQ(c.version_policy().latest().num_versions(), 1u);
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(c.instance_group(0).count(), 1);
  EXPECT_EQ(c.instance_group(0).name(), "m_0");

  auto bare = Parse(kBase);
  CompleteModelConfig(&bare);
  ASSERT_EQ(bare.instance_group_size(), 1);
  EXPECT_EQ(bare.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  auto sched = SchedulerConfigFromConfig(bare, 1);
  ASSERT_TRUE(sched.ok());
  EXPECT_EQ(sched->instances, 1);
  EXPECT_FALSE(sched->batching.dynamic);

  auto two_groups = Parse(std::string(kBase) + "instance_group [ { count: 2 }, { count: 3 } ]");
  CompleteModelConfig(&two_groups);
  EXPECT_EQ(SchedulerConfigFromConfig(two_groups, 1)->instances, 5);
}

TEST(ModelConfig, QueuePolicyResolves) {
  auto c =
      Parse(std::string(kBase) +
            "dynamic_batching { preferred_batch_size: [ 8, 4, 4 ] max_queue_delay_microseconds: "
            "250 default_queue_policy { max_queue_size: 32 default_timeout_microseconds: 5000 "
            "timeout_action: DELAY allow_timeout_override: true } }");
  auto s = SchedulerConfigFromConfig(c, 1);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->batching.preferred_batch_sizes, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(s->batching.max_queue_delay_us, 250u);
  EXPECT_EQ(s->batching.max_queue_size, 32);
  EXPECT_EQ(s->batching.default_timeout_us, 5000u);
  EXPECT_FALSE(s->batching.timeout_reject);
  EXPECT_TRUE(s->batching.allow_timeout_override);
}

TEST(ModelConfig, DataTypesRoundTrip) {
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8, DType::kUInt8,
                  DType::kInt32, DType::kInt64, DType::kBool, DType::kFloat64, DType::kInt16,
                  DType::kUInt16}) {
    auto back = DTypeFromDataType(DataTypeFromDType(d));
    ASSERT_TRUE(back.ok()) << DTypeName(d);
    EXPECT_EQ(back.value(), d);
  }
  EXPECT_EQ(DataTypeFromDType(DType::kFloat32), inference::TYPE_FP32);
  EXPECT_EQ(DataTypeName(inference::TYPE_INT64), "TYPE_INT64");
  EXPECT_FALSE(DTypeFromDataType(inference::TYPE_STRING).ok());
}

TEST(ModelConfig, CheckedAgainstTheEngine) {
  const auto c = Parse(kBase);
  using Specs = std::vector<runtime::TensorSpec>;
  const Specs in{{"x", DType::kFloat32, {-1, 4}}};
  const Specs out{{"y", DType::kFloat32, {-1, 4}}};
  EXPECT_TRUE(CheckConfigAgainstEngine(c, in, out).ok());
  // An engine dim of -1 accepts any config dim.
  EXPECT_TRUE(CheckConfigAgainstEngine(c, {{"x", DType::kFloat32, {-1, -1}}}, out).ok());

  Status s = CheckConfigAgainstEngine(c, {{"input0", DType::kFloat32, {-1, 4}}}, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'input0' is missing from config.pbtxt"), std::string::npos)
      << s.message();

  s = CheckConfigAgainstEngine(c, {{"x", DType::kInt64, {-1, 4}}}, out);
  EXPECT_NE(s.message().find("config.pbtxt says TYPE_FP32, the model has TYPE_INT64"),
            std::string::npos)
      << s.message();

  s = CheckConfigAgainstEngine(c, {{"x", DType::kFloat32, {-1, 5}}}, out);
  EXPECT_NE(s.message().find("dims [4] (with the batch dimension [-1, 4]) do not match the "
                             "model's shape [-1, 5]"),
            std::string::npos)
      << s.message();

  s = CheckConfigAgainstEngine(c, {{"x", DType::kFloat32, {1, 4}}}, out);
  EXPECT_NE(s.message().find("needs a dynamic first (batch) dimension"), std::string::npos)
      << s.message();

  s = CheckConfigAgainstEngine(c, in,
                               {{"y", DType::kFloat32, {-1, 4}}, {"z", DType::kFloat32, {-1}}});
  EXPECT_NE(s.message().find("output 'z' is missing from config.pbtxt"), std::string::npos)
      << s.message();

  auto unbatched = Parse(kBase);
  unbatched.set_max_batch_size(0);
  EXPECT_TRUE(CheckConfigAgainstEngine(unbatched, {{"x", DType::kFloat32, {4}}},
                                       {{"y", DType::kFloat32, {4}}})
                  .ok());
  EXPECT_FALSE(CheckConfigAgainstEngine(unbatched, in, out).ok());

  const auto specs = ConfigInputs(c);
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].dims, (std::vector<int64_t>{-1, 4}));
}

TEST(ModelConfig, JsonAsTritonWritesIt) {
  auto parsed = ReadModelConfig(kShippedConfig);
  ASSERT_TRUE(parsed.ok());
  inference::ModelConfig c = parsed.value();
  CompleteModelConfig(&c);
  auto text = ModelConfigToJson(c);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  const auto j = nlohmann::json::parse(text.value());
  EXPECT_EQ(j["name"], "emtrkmichel");
  EXPECT_EQ(j["platform"], "onnxruntime_onnx");
  EXPECT_EQ(j["backend"], "onnxruntime");
  EXPECT_EQ(j["max_batch_size"], 65536);
  ASSERT_TRUE(j["input"].is_array());
  const auto& in = j["input"][0];
  EXPECT_EQ(in["name"], "main_input");
  EXPECT_EQ(in["data_type"], "TYPE_FP32");
  EXPECT_EQ(in["format"], "FORMAT_NHWC");
  EXPECT_EQ(in["dims"], nlohmann::json::parse("[48, 48, 1]"));  // numbers, not strings
  EXPECT_EQ(in["is_shape_tensor"], false);
  EXPECT_EQ(j["output"][1]["name"], "michel_netout/Sigmoid");
  EXPECT_EQ(j["output"][0]["dims"], nlohmann::json::parse("[3]"));
  EXPECT_EQ(j["dynamic_batching"]["preferred_batch_size"], nlohmann::json::parse("[256]"));
  EXPECT_TRUE(j["dynamic_batching"]["max_queue_delay_microseconds"].is_number());
  EXPECT_EQ(j["dynamic_batching"]["max_queue_delay_microseconds"], 0);
  EXPECT_EQ(j["instance_group"][0]["kind"], "KIND_CPU");
  EXPECT_EQ(j["instance_group"][0]["count"], 2);
  EXPECT_EQ(j["version_policy"]["latest"]["num_versions"], 1);
}

}  // namespace
}  // namespace larserve::serve
