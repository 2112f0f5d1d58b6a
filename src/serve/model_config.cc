#include "larserve/serve/model_config.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "larserve/runtime/backend.h"

namespace larserve::serve {
namespace {

namespace pb = google::protobuf;
using inference::ModelConfig;

// The longest max_queue_delay_microseconds / default_timeout_microseconds we accept: longer
// values are almost certainly unit mistakes (milliseconds or nanoseconds).
constexpr uint64_t kMaxDelayUs = 60ull * 1000 * 1000;
// Largest warm-up tensor: warm-up data is allocated at load time, per input.
constexpr int64_t kMaxWarmupBytes = int64_t{256} << 20;
constexpr int kMaxThreads = 1024;
// OPT batch when the config prefers no batch size: where tactics are timed.
constexpr int64_t kDefaultOptBatch = 256;

// Collects the text-format parser's errors as "source:line:column: message" (1-based).
class ErrorCollector : public pb::io::ErrorCollector {
 public:
  explicit ErrorCollector(std::string_view source) : source_(source) {}
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    Add(line, column, message);
  }
  void AddWarning(int line, pb::io::ColumnNumber column, const std::string& message) override {
    // The parser warns about deprecated syntax only; nothing we need to refuse.
  }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  void Add(int line, pb::io::ColumnNumber column, const std::string& message) {
    std::ostringstream s;
    s << source_ << ":" << (line + 1) << ":" << (column + 1) << ": " << message;
    errors_.push_back(s.str());
  }
  std::string source_;
  std::vector<std::string> errors_;
};

std::string ModelPrefix(const ModelConfig& c) { return "model '" + c.name() + "': "; }
Status Invalid(const ModelConfig& c, const std::string& what) {
  return InvalidArgument(ModelPrefix(c) + what);
}
Status Unsupported(const ModelConfig& c, const std::string& what) {
  return Unimplemented(ModelPrefix(c) + what);
}

template <typename Container>
std::string Join(const Container& items) {
  std::string out;
  for (const auto& x : items) {
    if (!out.empty()) out += ", ";
    std::ostringstream s;
    s << x;
    out += s.str();
  }
  return out;
}

std::string DimsString(const std::vector<int64_t>& dims) {
  std::string out = "[";  // appended, not "[" + Join(): GCC 12 warns falsely (-Wrestrict) on that
  out += Join(dims);
  out += "]";
  return out;
}

int TotalInstances(const ModelConfig& c) {
  int64_t total = 0;
  for (const auto& g : c.instance_group()) total += std::max<int64_t>(g.count(), 1);
  if (c.instance_group_size() == 0) total = 1;
  return static_cast<int>(std::min<int64_t>(total, kMaxInstances + 1));
}

bool CudaBackendBuilt() { return runtime::FindBackend("cuda") != nullptr; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

StatusOr<runtime::Precision> ParsePrecision(std::string_view value, const std::string& where) {
  auto p = runtime::PrecisionFromName(Lower(value));
  if (!p.ok()) {
    return InvalidArgument(where + ": unknown precision '" + std::string(value) +
                           "' (use FP32, TF32, FP16, BF16 or INT8)");
  }
  return p.value();
}

Status ValidateTensorCommon(const ModelConfig& c, const std::string& what, const std::string& name,
                            inference::DataType type, const pb::RepeatedField<int64_t>& dims) {
  if (name.empty()) return Invalid(c, what + " has no name");
  if (type == inference::TYPE_INVALID) {
    return Invalid(c, what + " '" + name + "' has no data_type");
  }
  if (auto d = DTypeFromDataType(type); !d.ok()) {
    return Unsupported(c, what + " '" + name + "': " + d.status().message());
  }
  for (int64_t d : dims) {
    if (d < -1) {
      return Invalid(c, what + " '" + name + "' has dimension " + std::to_string(d) + " in dims " +
                            DimsString({dims.begin(), dims.end()}) +
                            " (dims are -1 for a variable size, or >= 0)");
    }
  }
  return Status::Ok();
}

Status ValidateInputs(const ModelConfig& c) {
  if (c.input_size() == 0) return Invalid(c, "config has no input");
  if (c.output_size() == 0) return Invalid(c, "config has no output");
  std::set<std::string> names;
  for (const auto& in : c.input()) {
    RETURN_IF_ERROR(ValidateTensorCommon(c, "input", in.name(), in.data_type(), in.dims()));
    const std::string what = "input '" + in.name() + "'";
    if (!names.insert(in.name()).second) return Invalid(c, what + " is listed twice");
    if (in.format() != inference::ModelInput::FORMAT_NONE && in.dims_size() != 3) {
      return Invalid(c, what + " has format " + inference::ModelInput::Format_Name(in.format()) +
                            ", which needs 3 dims without the batch dimension, not " +
                            std::to_string(in.dims_size()));
    }
    if (in.has_reshape()) return Unsupported(c, what + ": reshape is not supported");
    if (in.is_shape_tensor()) return Unsupported(c, what + ": shape tensors are not supported");
    if (in.allow_ragged_batch()) {
      return Unsupported(c, what + ": allow_ragged_batch is not supported");
    }
    if (in.optional()) return Unsupported(c, what + ": optional inputs are not supported");
    if (in.is_non_linear_format_io()) {
      return Unsupported(c, what + ": is_non_linear_format_io is not supported");
    }
  }
  names.clear();
  for (const auto& out : c.output()) {
    RETURN_IF_ERROR(ValidateTensorCommon(c, "output", out.name(), out.data_type(), out.dims()));
    const std::string what = "output '" + out.name() + "'";
    if (!names.insert(out.name()).second) return Invalid(c, what + " is listed twice");
    if (out.has_reshape()) return Unsupported(c, what + ": reshape is not supported");
    if (out.is_shape_tensor()) return Unsupported(c, what + ": shape tensors are not supported");
    if (!out.label_filename().empty()) {
      return Unsupported(c, what +
                                ": label_filename (the classification extension) is not "
                                "supported");
    }
    if (out.is_non_linear_format_io()) {
      return Unsupported(c, what + ": is_non_linear_format_io is not supported");
    }
  }
  if (c.batch_input_size() > 0) return Unsupported(c, "batch_input is not supported");
  if (c.batch_output_size() > 0) return Unsupported(c, "batch_output is not supported");
  return Status::Ok();
}

Status ValidatePlatform(const ModelConfig& c) {
  static const std::set<std::string> kPlatforms = {"", "onnxruntime_onnx", "tensorrt_plan"};
  static const std::set<std::string> kBackends = {"", "onnxruntime", "tensorrt", "larserve"};
  if (!kPlatforms.count(c.platform())) {
    return Unsupported(c, "platform '" + c.platform() +
                              "' is not supported (larserve serves onnxruntime_onnx and "
                              "tensorrt_plan models: ONNX files and larserve plans)");
  }
  if (!kBackends.count(c.backend())) {
    return Unsupported(c, "backend '" + c.backend() +
                              "' is not supported (use onnxruntime, tensorrt or larserve)");
  }
  if ((c.platform() == "onnxruntime_onnx" && c.backend() == "tensorrt") ||
      (c.platform() == "tensorrt_plan" && c.backend() == "onnxruntime")) {
    return Invalid(c, "platform '" + c.platform() + "' and backend '" + c.backend() +
                          "' contradict each other");
  }
  if (!c.runtime().empty()) {
    return Unsupported(c, "runtime '" + c.runtime() + "' is not supported (leave it unset)");
  }
  const std::string& f = c.default_model_filename();
  if (!f.empty() && (f == "." || f == ".." || f.find('/') != std::string::npos ||
                     f.find('\\') != std::string::npos)) {
    return Invalid(
        c, "default_model_filename '" + f + "' must be a file name inside the version directory");
  }
  if (!c.cc_model_filenames().empty()) {
    return Unsupported(c, "cc_model_filenames is not supported");
  }
  return Status::Ok();
}

Status ValidateVersionPolicy(const ModelConfig& c) {
  if (!c.has_version_policy()) return Status::Ok();
  const auto& p = c.version_policy();
  switch (p.policy_choice_case()) {
    case inference::ModelVersionPolicy::kLatest:
      if (p.latest().num_versions() < 1) {
        return Invalid(c, "version_policy latest needs num_versions >= 1");
      }
      break;
    case inference::ModelVersionPolicy::kSpecific: {
      if (p.specific().versions_size() == 0) {
        return Invalid(c, "version_policy specific lists no versions");
      }
      std::set<int64_t> seen;
      for (int64_t v : p.specific().versions()) {
        if (v < 1) {
          return Invalid(c, "version_policy specific lists version " + std::to_string(v) +
                                " (versions are >= 1)");
        }
        if (!seen.insert(v).second) {
          return Invalid(c,
                         "version_policy specific lists version " + std::to_string(v) + " twice");
        }
      }
      break;
    }
    case inference::ModelVersionPolicy::kAll:
    case inference::ModelVersionPolicy::POLICY_CHOICE_NOT_SET:
      break;
  }
  return Status::Ok();
}

Status ValidateInstanceGroups(const ModelConfig& c) {
  int64_t total = 0;
  for (int i = 0; i < c.instance_group_size(); ++i) {
    const auto& g = c.instance_group(i);
    const std::string what = "instance_group[" + std::to_string(i) + "]" +
                             (g.name().empty() ? "" : " '" + g.name() + "'");
    if (g.count() < 0) {
      return Invalid(c, what + " has count " + std::to_string(g.count()) + " (must be >= 1)");
    }
    total += std::max(g.count(), 1);
    switch (g.kind()) {
      case inference::ModelInstanceGroup::KIND_CPU:
        if (g.gpus_size() > 0) return Invalid(c, what + ": gpus cannot be given with KIND_CPU");
        break;
      case inference::ModelInstanceGroup::KIND_AUTO:
        // AUTO means GPU when the listed GPUs exist: with GPUs listed, that needs CUDA.
        if (g.gpus_size() > 0 && !CudaBackendBuilt()) {
          return Unsupported(c, what + ": KIND_AUTO with gpus " + Join(g.gpus()) +
                                    ": no CUDA backend in this build; use KIND_CPU");
        }
        break;
      case inference::ModelInstanceGroup::KIND_GPU:
        if (!CudaBackendBuilt()) {
          return Unsupported(c, what + ": KIND_GPU: no CUDA backend in this build; use KIND_CPU");
        }
        break;
      default:
        return Unsupported(c, what + ": kind " +
                                  inference::ModelInstanceGroup::Kind_Name(g.kind()) +
                                  " is not supported (use KIND_CPU)");
    }
    if (g.has_rate_limiter()) return Unsupported(c, what + ": rate_limiter is not supported");
    if (g.secondary_devices_size() > 0) {
      return Unsupported(c, what + ": secondary_devices are not supported");
    }
    if (g.profile_size() > 0) return Unsupported(c, what + ": profile is not supported");
    if (g.passive()) return Unsupported(c, what + ": passive instances are not supported");
    if (!g.host_policy().empty()) return Unsupported(c, what + ": host_policy is not supported");
  }
  if (total > kMaxInstances) {
    return Invalid(c, "instance_group counts add up to " + std::to_string(total) +
                          " instances; at most " + std::to_string(kMaxInstances));
  }
  return Status::Ok();
}

Status ValidateScheduling(const ModelConfig& c) {
  if (c.has_sequence_batching()) {
    return Unsupported(c,
                       "sequence_batching is not supported (larserve serves stateless "
                       "models; use dynamic_batching)");
  }
  if (c.has_ensemble_scheduling() || c.platform() == "ensemble") {
    return Unsupported(c, "ensembles are not supported");
  }
  if (!c.has_dynamic_batching()) return Status::Ok();
  const auto& b = c.dynamic_batching();
  if (c.max_batch_size() == 0) {
    return Invalid(c,
                   "dynamic_batching needs max_batch_size > 0 (with max_batch_size 0 the "
                   "model has no batch dimension to batch along)");
  }
  for (int32_t p : b.preferred_batch_size()) {
    if (p < 1 || p > c.max_batch_size()) {
      return Invalid(c, "dynamic_batching preferred_batch_size " + std::to_string(p) +
                            " is outside [1, max_batch_size " + std::to_string(c.max_batch_size()) +
                            "]");
    }
  }
  if (b.max_queue_delay_microseconds() > kMaxDelayUs) {
    return Invalid(c, "dynamic_batching max_queue_delay_microseconds " +
                          std::to_string(b.max_queue_delay_microseconds()) +
                          " is over 60 s; is it in microseconds?");
  }
  if (b.preserve_ordering() && TotalInstances(c) > 1) {
    return Unsupported(c,
                       "dynamic_batching preserve_ordering is supported with one instance "
                       "only (instance_group counts add up to " +
                           std::to_string(TotalInstances(c)) + ")");
  }
  if (b.priority_levels() != 0 || b.default_priority_level() != 0 ||
      !b.priority_queue_policy().empty()) {
    return Unsupported(c, "dynamic_batching priority levels are not supported");
  }
  if (b.has_default_queue_policy() &&
      b.default_queue_policy().default_timeout_microseconds() > kMaxDelayUs) {
    return Invalid(c, "dynamic_batching default_queue_policy default_timeout_microseconds " +
                          std::to_string(b.default_queue_policy().default_timeout_microseconds()) +
                          " is over 60 s; is it in microseconds?");
  }
  return Status::Ok();
}

Status ValidateAccelerators(const ModelConfig& c) {
  if (!c.has_optimization() || !c.optimization().has_execution_accelerators()) {
    return Status::Ok();
  }
  const auto& ea = c.optimization().execution_accelerators();
  // Names Triton's ONNX Runtime backend knows: our optimizer and runtime take TensorRT's role
  // (GPU list) and OpenVINO's (CPU list); "larserve" names ours explicitly.
  const auto check = [&](const auto& list, const std::set<std::string>& names,
                         const std::string& field) -> Status {
    for (const auto& a : list) {
      if (!names.count(a.name())) {
        return Unsupported(c, "optimization execution_accelerators " + field + " '" + a.name() +
                                  "' is not supported (use " + Join(names) + ")");
      }
      for (const auto& [key, value] : a.parameters()) {
        // max_workspace_size_bytes bounds TensorRT's scratch memory: nothing to bound here.
        if (key != "precision_mode" && key != "max_workspace_size_bytes") {
          return Unsupported(c, "optimization execution_accelerators " + field + " '" + a.name() +
                                    "' parameter '" + key +
                                    "' is not supported (larserve reads precision_mode)");
        }
      }
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(
      check(ea.gpu_execution_accelerator(), {"tensorrt", "larserve"}, "gpu_execution_accelerator"));
  RETURN_IF_ERROR(
      check(ea.cpu_execution_accelerator(), {"openvino", "larserve"}, "cpu_execution_accelerator"));
  return Status::Ok();
}

Status ValidateParameters(const ModelConfig& c) {
  for (const auto& [key, value] : c.parameters()) {
    if (key != "precision" && key != "intra_op_thread_count") {
      return Unsupported(c, "parameters key '" + key +
                                "' is not known to larserve (known: precision, "
                                "intra_op_thread_count)");
    }
  }
  return Status::Ok();
}

Status ValidateWarmup(const ModelConfig& c) {
  std::map<std::string, const inference::ModelInput*> inputs;
  for (const auto& in : c.input()) inputs[in.name()] = &in;
  for (int i = 0; i < c.model_warmup_size(); ++i) {
    const auto& w = c.model_warmup(i);
    const std::string what =
        "model_warmup[" + std::to_string(i) + "]" + (w.name().empty() ? "" : " '" + w.name() + "'");
    if (w.name().empty()) return Invalid(c, what + " has no name");
    if (c.max_batch_size() > 0 && w.batch_size() > static_cast<uint32_t>(c.max_batch_size())) {
      return Invalid(c, what + " batch_size " + std::to_string(w.batch_size()) +
                            " is over max_batch_size " + std::to_string(c.max_batch_size()));
    }
    if (c.max_batch_size() == 0 && w.batch_size() > 1) {
      return Invalid(c, what + " batch_size " + std::to_string(w.batch_size()) +
                            ": the model has no batch dimension (max_batch_size 0)");
    }
    for (const auto& [name, in] : w.inputs()) {
      if (!inputs.count(name)) {
        return Invalid(c, what + " has data for '" + name + "', which is not an input");
      }
    }
    const int64_t batch = c.max_batch_size() > 0 ? std::max<int64_t>(w.batch_size(), 1) : 1;
    for (const auto& [name, in] : inputs) {
      const auto it = w.inputs().find(name);
      if (it == w.inputs().end()) return Invalid(c, what + " has no data for input '" + name + "'");
      const auto& wi = it->second;
      const std::string where = what + " input '" + name + "'";
      if (wi.data_type() != in->data_type()) {
        return Invalid(c, where + " has data_type " + DataTypeName(wi.data_type()) +
                              ", the input is " + DataTypeName(in->data_type()));
      }
      bool match = wi.dims_size() == in->dims_size();
      int64_t elements = batch;  // saturates just past the limit instead of overflowing
      for (int d = 0; match && d < wi.dims_size(); ++d) {
        const int64_t want = in->dims(d), got = wi.dims(d);
        match = got >= 0 && (want == -1 || want == got);
        if (!match) break;
        elements =
            got > 0 && elements > kMaxWarmupBytes / got ? kMaxWarmupBytes + 1 : elements * got;
      }
      if (!match) {
        return Invalid(c, where + " has dims " + DimsString({wi.dims().begin(), wi.dims().end()}) +
                              ", which do not fill the input's dims " +
                              DimsString({in->dims().begin(), in->dims().end()}) +
                              " (every dimension given, -1 replaced by a size)");
      }
      const int64_t bytes =
          elements * static_cast<int64_t>(DTypeSize(DTypeFromDataType(in->data_type()).value()));
      if (bytes > kMaxWarmupBytes) {
        return Invalid(c, where + " is over " + std::to_string(kMaxWarmupBytes >> 20) + " MiB");
      }
      switch (wi.input_data_type_case()) {
        case inference::ModelWarmup::Input::kZeroData:
        case inference::ModelWarmup::Input::kRandomData:
          break;
        case inference::ModelWarmup::Input::kInputDataFile:
          return Unsupported(c, where +
                                    ": input_data_file is not supported (use zero_data or "
                                    "random_data)");
        case inference::ModelWarmup::Input::INPUT_DATA_TYPE_NOT_SET:
          return Invalid(c, where + " needs zero_data or random_data");
      }
    }
  }
  return Status::Ok();
}

Status ValidateOthers(const ModelConfig& c) {
  if (c.has_model_operations() && c.model_operations().op_library_filename_size() > 0) {
    return Unsupported(c, "model_operations (custom op libraries) are not supported");
  }
  if (c.model_transaction_policy().decoupled()) {
    return Unsupported(c, "decoupled models are not supported");
  }
  if (c.model_repository_agents().agents_size() > 0) {
    return Unsupported(c, "model_repository_agents are not supported");
  }
  if (c.response_cache().enable()) {
    return Unsupported(c, "response_cache is not supported");
  }
  return Status::Ok();
}

// Protobuf's JSON writes 64-bit integers as strings (JavaScript numbers lose precision past
// 2^53); Triton turns them back into numbers, and clients expect numbers ("dims": [48, 48, 1]).
void Int64StringsToNumbers(const pb::Descriptor* d, nlohmann::ordered_json& j);
void FixValue(const pb::FieldDescriptor* f, nlohmann::ordered_json& v) {
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT64:
      if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        int64_t x = 0;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), x);
        if (r.ec == std::errc() && r.ptr == s.data() + s.size()) v = x;
      }
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        uint64_t x = 0;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), x);
        if (r.ec == std::errc() && r.ptr == s.data() + s.size()) v = x;
      }
      break;
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      Int64StringsToNumbers(f->message_type(), v);
      break;
    default:
      break;
  }
}
void Int64StringsToNumbers(const pb::Descriptor* d, nlohmann::ordered_json& j) {
  if (!j.is_object()) return;
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    const auto it = j.find(f->name());
    if (it == j.end()) continue;
    if (f->is_map()) {
      const pb::FieldDescriptor* value = f->message_type()->map_value();
      for (auto& item : it->items()) FixValue(value, item.value());
    } else if (f->is_repeated()) {
      for (auto& e : *it) FixValue(f, e);
    } else {
      FixValue(f, *it);
    }
  }
}

runtime::TensorSpec SpecOf(const ModelConfig& c, const std::string& name, inference::DataType t,
                           const pb::RepeatedField<int64_t>& dims) {
  runtime::TensorSpec s;
  s.name = name;
  auto dtype = DTypeFromDataType(t);
  s.dtype = dtype.ok() ? dtype.value() : DType::kFloat32;
  if (c.max_batch_size() > 0) s.dims.push_back(-1);
  s.dims.insert(s.dims.end(), dims.begin(), dims.end());
  return s;
}

Status CheckTensors(const ModelConfig& c, const char* kind,
                    const std::vector<runtime::TensorSpec>& config,
                    const std::vector<runtime::TensorSpec>& engine) {
  std::vector<std::string> engine_names;
  for (const auto& e : engine) engine_names.push_back(e.name);
  for (const auto& e : engine) {
    if (std::none_of(config.begin(), config.end(),
                     [&](const auto& s) { return s.name == e.name; })) {
      return Invalid(
          c, std::string("the model's ") + kind + " '" + e.name + "' is missing from config.pbtxt");
    }
  }
  for (const auto& s : config) {
    const auto it =
        std::find_if(engine.begin(), engine.end(), [&](const auto& e) { return e.name == s.name; });
    if (it == engine.end()) {
      return Invalid(c, std::string(kind) + " '" + s.name +
                            "' of config.pbtxt is not in the model (the model's " + kind +
                            "s: " + Join(engine_names) + ")");
    }
    const std::string what = std::string(kind) + " '" + s.name + "'";
    if (it->dtype != s.dtype) {
      return Invalid(c, what + ": config.pbtxt says " + DataTypeName(DataTypeFromDType(s.dtype)) +
                            ", the model has " + DataTypeName(DataTypeFromDType(it->dtype)));
    }
    const bool batched = c.max_batch_size() > 0;
    if (batched && (it->dims.empty() || it->dims[0] != -1)) {
      return Invalid(c, what + ": max_batch_size " + std::to_string(c.max_batch_size()) +
                            " needs a dynamic first (batch) dimension, but the model's shape is " +
                            DimsString(it->dims) +
                            "; use max_batch_size: 0 and the full shape as dims");
    }
    bool match = it->dims.size() == s.dims.size();
    for (std::size_t d = batched ? 1 : 0; match && d < s.dims.size(); ++d) {
      match = it->dims[d] == -1 || it->dims[d] == s.dims[d];
    }
    if (!match) {
      return Invalid(c, what + ": config.pbtxt dims " +
                            DimsString({s.dims.begin() + (batched ? 1 : 0), s.dims.end()}) +
                            (batched ? " (with the batch dimension " + DimsString(s.dims) + ")"
                                     : std::string()) +
                            " do not match the model's shape " + DimsString(it->dims));
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<ModelConfig> ParseModelConfig(std::string_view text, std::string_view source) {
  if (text.size() > kMaxConfigFileBytes) {
    return InvalidArgument(std::string(source) + ": " + std::to_string(text.size()) +
                           " bytes; a model configuration is at most " +
                           std::to_string(kMaxConfigFileBytes) + " bytes");
  }
  ErrorCollector errors(source);
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  ModelConfig config;
  // ParseFromString needs a std::string; the copy is bounded by the size check above.
  const bool ok = parser.ParseFromString(std::string(text), &config);
  if (!ok || !errors.errors().empty()) {
    std::string message = errors.errors().empty()
                              ? std::string(source) + ": not a valid model configuration"
                              : errors.errors().front();
    if (errors.errors().size() > 1) {
      message += " (and " + std::to_string(errors.errors().size() - 1) + " more errors)";
    }
    return InvalidArgument(message);
  }
  return config;
}

StatusOr<ModelConfig> ReadModelConfig(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) return NotFound(path + ": no such file");
  if (!std::filesystem::is_regular_file(status)) return InvalidArgument(path + ": not a file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return InvalidArgument(path + ": cannot read its size: " + ec.message());
  if (size > kMaxConfigFileBytes) {
    return InvalidArgument(path + ": " + std::to_string(size) +
                           " bytes; a model configuration is at most " +
                           std::to_string(kMaxConfigFileBytes) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument(path + ": cannot open it");
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (static_cast<std::size_t>(in.gcount()) != size) {
    return InvalidArgument(path + ": read " + std::to_string(in.gcount()) + " of " +
                           std::to_string(size) + " bytes");
  }
  return ParseModelConfig(text, path);
}

Status ValidateModelConfig(const ModelConfig& c) {
  if (c.name().empty()) return InvalidArgument("model configuration has no name");
  if (c.max_batch_size() < 0) {
    return Invalid(c, "max_batch_size " + std::to_string(c.max_batch_size()) + " is negative");
  }
  RETURN_IF_ERROR(ValidatePlatform(c));
  RETURN_IF_ERROR(ValidateVersionPolicy(c));
  RETURN_IF_ERROR(ValidateInputs(c));
  RETURN_IF_ERROR(ValidateInstanceGroups(c));
  RETURN_IF_ERROR(ValidateScheduling(c));
  RETURN_IF_ERROR(ValidateAccelerators(c));
  RETURN_IF_ERROR(ValidateParameters(c));
  RETURN_IF_ERROR(ValidateWarmup(c));
  RETURN_IF_ERROR(ValidateOthers(c));
  // Precision and thread parameters must parse and agree.
  auto settings = EngineSettingsFromConfig(c);
  return settings.ok() ? Status::Ok() : settings.status();
}

void CompleteModelConfig(ModelConfig* c) {
  if (c->platform() == "onnxruntime_onnx" && c->backend().empty()) c->set_backend("onnxruntime");
  if (c->platform() == "tensorrt_plan" && c->backend().empty()) c->set_backend("tensorrt");
  if (c->backend() == "onnxruntime" && c->platform().empty()) c->set_platform("onnxruntime_onnx");
  if (c->backend() == "tensorrt" && c->platform().empty()) c->set_platform("tensorrt_plan");
  if (!c->has_version_policy()) c->mutable_version_policy()->mutable_latest()->set_num_versions(1);
  if (c->instance_group_size() == 0) {
    auto* g = c->add_instance_group();
    g->set_kind(inference::ModelInstanceGroup::KIND_CPU);
    g->set_count(1);
  }
  for (int i = 0; i < c->instance_group_size(); ++i) {
    auto* g = c->mutable_instance_group(i);
    if (g->name().empty()) g->set_name(c->name() + "_" + std::to_string(i));
    if (g->count() < 1) g->set_count(1);
    if (g->kind() == inference::ModelInstanceGroup::KIND_AUTO) {
      g->set_kind(g->gpus_size() > 0 && CudaBackendBuilt()
                      ? inference::ModelInstanceGroup::KIND_GPU
                      : inference::ModelInstanceGroup::KIND_CPU);
    }
  }
}

StatusOr<DType> DTypeFromDataType(inference::DataType type) {
  switch (type) {
    case inference::TYPE_BOOL:
      return DType::kBool;
    case inference::TYPE_UINT8:
      return DType::kUInt8;
    case inference::TYPE_UINT16:
      return DType::kUInt16;
    case inference::TYPE_INT8:
      return DType::kInt8;
    case inference::TYPE_INT16:
      return DType::kInt16;
    case inference::TYPE_INT32:
      return DType::kInt32;
    case inference::TYPE_INT64:
      return DType::kInt64;
    case inference::TYPE_FP16:
      return DType::kFloat16;
    case inference::TYPE_FP32:
      return DType::kFloat32;
    case inference::TYPE_FP64:
      return DType::kFloat64;
    case inference::TYPE_BF16:
      return DType::kBFloat16;
    default:
      return Unimplemented("data type " + DataTypeName(type) +
                           " is not supported (larserve tensors are BOOL, UINT8, UINT16, INT8, "
                           "INT16, INT32, INT64, FP16, BF16, FP32 or FP64)");
  }
}

inference::DataType DataTypeFromDType(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return inference::TYPE_BOOL;
    case DType::kUInt8:
      return inference::TYPE_UINT8;
    case DType::kUInt16:
      return inference::TYPE_UINT16;
    case DType::kInt8:
      return inference::TYPE_INT8;
    case DType::kInt16:
      return inference::TYPE_INT16;
    case DType::kInt32:
      return inference::TYPE_INT32;
    case DType::kInt64:
      return inference::TYPE_INT64;
    case DType::kFloat16:
      return inference::TYPE_FP16;
    case DType::kFloat32:
      return inference::TYPE_FP32;
    case DType::kFloat64:
      return inference::TYPE_FP64;
    case DType::kBFloat16:
      return inference::TYPE_BF16;
  }
  return inference::TYPE_INVALID;
}

std::string DataTypeName(inference::DataType type) {
  const std::string& name = inference::DataType_Name(type);
  return name.empty() ? "data type " + std::to_string(static_cast<int>(type)) : name;
}

std::vector<runtime::TensorSpec> ConfigInputs(const ModelConfig& c) {
  std::vector<runtime::TensorSpec> out;
  for (const auto& in : c.input()) out.push_back(SpecOf(c, in.name(), in.data_type(), in.dims()));
  return out;
}

std::vector<runtime::TensorSpec> ConfigOutputs(const ModelConfig& c) {
  std::vector<runtime::TensorSpec> out;
  for (const auto& o : c.output()) out.push_back(SpecOf(c, o.name(), o.data_type(), o.dims()));
  return out;
}

Status CheckConfigAgainstEngine(const ModelConfig& c,
                                const std::vector<runtime::TensorSpec>& engine_inputs,
                                const std::vector<runtime::TensorSpec>& engine_outputs) {
  RETURN_IF_ERROR(CheckTensors(c, "input", ConfigInputs(c), engine_inputs));
  return CheckTensors(c, "output", ConfigOutputs(c), engine_outputs);
}

StatusOr<EngineSettings> EngineSettingsFromConfig(const ModelConfig& c) {
  EngineSettings s;
  std::string precision_source;
  const auto set_precision = [&](std::string_view value, const std::string& where) -> Status {
    auto p = ParsePrecision(value, ModelPrefix(c) + where);
    if (!p.ok()) return p.status();
    if (s.precision_set && p.value() != s.precision) {
      return Invalid(c, where + " asks for " + std::string(runtime::PrecisionName(p.value())) +
                            " but " + precision_source + " asks for " +
                            std::string(runtime::PrecisionName(s.precision)));
    }
    s.precision = p.value();
    s.precision_set = true;
    precision_source = where;
    return Status::Ok();
  };
  if (c.has_optimization() && c.optimization().has_execution_accelerators()) {
    const auto& ea = c.optimization().execution_accelerators();
    for (const auto& a : ea.gpu_execution_accelerator()) {
      if (const auto it = a.parameters().find("precision_mode"); it != a.parameters().end()) {
        RETURN_IF_ERROR(set_precision(
            it->second, "gpu_execution_accelerator '" + a.name() + "' precision_mode"));
      }
    }
    for (const auto& a : ea.cpu_execution_accelerator()) {
      if (const auto it = a.parameters().find("precision_mode"); it != a.parameters().end()) {
        RETURN_IF_ERROR(set_precision(
            it->second, "cpu_execution_accelerator '" + a.name() + "' precision_mode"));
      }
    }
  }
  if (const auto it = c.parameters().find("precision"); it != c.parameters().end()) {
    RETURN_IF_ERROR(set_precision(it->second.string_value(), "parameters 'precision'"));
  }
  if (const auto it = c.parameters().find("intra_op_thread_count"); it != c.parameters().end()) {
    const std::string& v = it->second.string_value();
    int threads = -1;
    const auto r = std::from_chars(v.data(), v.data() + v.size(), threads);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size() || threads < 0 ||
        threads > kMaxThreads) {
      return Invalid(c, "parameters 'intra_op_thread_count' is '" + v +
                            "'; expected a whole number in [0, " + std::to_string(kMaxThreads) +
                            "] (0 = all cores)");
    }
    s.threads = threads;
  }
  if (c.max_batch_size() > 0) {
    s.batch_min = 1;
    s.batch_max = c.max_batch_size();
    s.batch_opt = std::min<int64_t>(c.max_batch_size(), kDefaultOptBatch);
    if (c.has_dynamic_batching() && c.dynamic_batching().preferred_batch_size_size() > 0) {
      const auto& p = c.dynamic_batching().preferred_batch_size();
      s.batch_opt = std::clamp<int64_t>(*std::max_element(p.begin(), p.end()), 1, s.batch_max);
    }
  }
  return s;
}

StatusOr<SchedulerConfig> SchedulerConfigFromConfig(const ModelConfig& c, int64_t version) {
  SchedulerConfig s;
  s.model_name = c.name();
  s.version = version;
  s.instances = TotalInstances(c);
  if (s.instances > kMaxInstances) {
    return Invalid(c, "instance_group counts add up to more than " + std::to_string(kMaxInstances));
  }
  BatchingConfig& b = s.batching;
  b.max_batch_size = c.max_batch_size();
  b.dynamic = c.has_dynamic_batching();
  if (b.dynamic) {
    const auto& d = c.dynamic_batching();
    b.preferred_batch_sizes.assign(d.preferred_batch_size().begin(),
                                   d.preferred_batch_size().end());
    std::sort(b.preferred_batch_sizes.begin(), b.preferred_batch_sizes.end());
    b.preferred_batch_sizes.erase(
        std::unique(b.preferred_batch_sizes.begin(), b.preferred_batch_sizes.end()),
        b.preferred_batch_sizes.end());
    b.max_queue_delay_us = d.max_queue_delay_microseconds();
    if (d.has_default_queue_policy()) {
      const auto& q = d.default_queue_policy();
      b.max_queue_size = q.max_queue_size();
      b.default_timeout_us = q.default_timeout_microseconds();
      b.timeout_reject = q.timeout_action() == inference::ModelQueuePolicy::REJECT;
      b.allow_timeout_override = q.allow_timeout_override();
    }
  }
  return s;
}

StatusOr<std::string> ModelConfigToJson(const ModelConfig& config) {
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  // Triton writes fields at their defaults too ("is_shape_tensor": false, ...); clients
  // (tritonclient, perf_analyzer) read some without checking they exist.
  options.always_print_primitive_fields = true;
  std::string text;
  const auto status = pb::util::MessageToJsonString(config, &text, options);
  if (!status.ok()) {
    return Internal(ModelPrefix(config) +
                    "cannot write the configuration as JSON: " + std::string(status.message()));
  }
  // ordered_json keeps protobuf's field order, as Triton's output has it.
  nlohmann::ordered_json j =
      nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return LARSERVE_INTERNAL_ERROR("protobuf wrote JSON that does not parse: " + text);
  }
  Int64StringsToNumbers(ModelConfig::descriptor(), j);
  return j.dump();
}

}  // namespace larserve::serve
