#pragma once
// config.pbtxt: Triton's model configuration (proto/model_config.proto, protobuf text format),
// parsed, checked against what larserve serves, checked against a built engine, and resolved
// into the runtime's BuildOptions and the scheduler's configuration.
//
// What is honoured, ignored or refused (a refused field fails the load with a message naming
// the model and the field, never silently changes behaviour):
//   honoured: name, platform/backend (onnxruntime_onnx, tensorrt_plan, onnxruntime, tensorrt,
//     larserve), version_policy, max_batch_size, input/output {name, data_type, format, dims},
//     instance_group {kind KIND_CPU or KIND_AUTO, count}, dynamic_batching {preferred_batch_size,
//     max_queue_delay_microseconds, preserve_ordering with one instance, default_queue_policy},
//     optimization.execution_accelerators precision_mode, parameters "precision" and
//     "intra_op_thread_count", default_model_filename, model_warmup with zero or random data.
//   ignored (hints with no meaning on this build): optimization.graph, priority, cuda, pinned
//     memory, gather_kernel_buffer_threshold, eager_batching; metric_tags, model_metrics;
//     accelerator parameter max_workspace_size_bytes.
//   refused: everything else that is set (sequence batching, ensembles, reshape, shape tensors,
//     ragged batches, optional inputs, batch inputs/outputs, decoupled models, the response
//     cache, priorities, rate limiters, KIND_GPU and KIND_MODEL without a CUDA backend, ...).
//
// Thread-safety: free functions on values; nothing here is shared.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/proto/model_config.pb.h"
#include "larserve/runtime/engine.h"
#include "larserve/serve/scheduler.h"

namespace larserve::serve {

// config.pbtxt files larger than this are refused before parsing (a real one is a few KiB).
inline constexpr std::size_t kMaxConfigFileBytes = 1 << 20;
// instance_group counts summed over the groups: each instance is a thread with its own context.
inline constexpr int kMaxInstances = 256;

// Parses protobuf text into a ModelConfig. `source` names the text in errors ("path:line:col:
// what"); unknown fields and wrongly typed values are errors. No validation beyond the syntax.
StatusOr<inference::ModelConfig> ParseModelConfig(std::string_view text, std::string_view source);

// Reads and parses a config.pbtxt file (at most kMaxConfigFileBytes).
StatusOr<inference::ModelConfig> ReadModelConfig(const std::string& path);

// Checks that the configuration is well formed and asks only for what larserve serves (see the
// header comment). Messages start with "model 'name': " and name the field.
Status ValidateModelConfig(const inference::ModelConfig& config);

// Fills in what Triton's auto-complete fills in, so that clients reading the configuration see
// the effective values: a default instance group (KIND_CPU, count 1), instance counts of 0 set to
// 1, KIND_AUTO resolved to KIND_CPU, and version_policy latest{1} when unset. Call after
// ValidateModelConfig.
void CompleteModelConfig(inference::ModelConfig* config);

// Data types: the config's enum <-> larserve's DType. TYPE_STRING, TYPE_UINT32 and TYPE_UINT64
// have no DType and are refused.
StatusOr<DType> DTypeFromDataType(inference::DataType type);
inference::DataType DataTypeFromDType(DType dtype);
// "TYPE_FP32" etc. (for messages).
std::string DataTypeName(inference::DataType type);

// The shapes clients send and receive: the config's dims, with a leading -1 (the batch) when
// max_batch_size > 0. In config order.
std::vector<runtime::TensorSpec> ConfigInputs(const inference::ModelConfig& config);
std::vector<runtime::TensorSpec> ConfigOutputs(const inference::ModelConfig& config);

// Checks the config against a built engine: the same input and output names (as sets), the same
// data types, and dims compatible with the engine's (an engine dim of -1 accepts any config dim;
// with max_batch_size > 0 the engine's first dimension must be dynamic and is not compared).
Status CheckConfigAgainstEngine(const inference::ModelConfig& config,
                                const std::vector<runtime::TensorSpec>& engine_inputs,
                                const std::vector<runtime::TensorSpec>& engine_outputs);

// What the runtime needs to build the model, from the configuration.
struct EngineSettings {
  runtime::Precision precision = runtime::Precision::kFp32;
  bool precision_set = false;  // the config asked for a precision (a plan must match it)
  int threads = -1;            // parameters "intra_op_thread_count"; -1 = not set
  // Batch profile MIN:OPT:MAX of the dynamic batch dimension: 1 : the largest preferred batch
  // size, else min(max_batch_size, 256) : max_batch_size. All 0 when max_batch_size is 0.
  int64_t batch_min = 0, batch_opt = 0, batch_max = 0;
};
// Precision from optimization.execution_accelerators.{gpu,cpu}_execution_accelerator[]
// .parameters["precision_mode"] (FP32, TF32, FP16, BF16, INT8; any case) and from our own
// parameters { key: "precision" value { string_value: "fp16" } }; they must agree.
StatusOr<EngineSettings> EngineSettingsFromConfig(const inference::ModelConfig& config);

// The scheduler's configuration: instances (the instance groups' counts summed), batching
// (max_batch_size and dynamic_batching). Call after ValidateModelConfig and CompleteModelConfig.
StatusOr<SchedulerConfig> SchedulerConfigFromConfig(const inference::ModelConfig& config,
                                                    int64_t version);

// The configuration as JSON for HTTP GET /v2/models/{m}/config, as Triton writes it: proto field
// names (not lowerCamelCase), enums by name, scalar fields at their defaults written too, and
// 64-bit integers as JSON numbers (protobuf writes them as strings).
StatusOr<std::string> ModelConfigToJson(const inference::ModelConfig& config);

}  // namespace larserve::serve
