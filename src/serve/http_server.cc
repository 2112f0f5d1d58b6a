#include "larserve/serve/http_server.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "http_listener.h"
#include "larserve/core/thread_pool.h"
#include "larserve/serve/model_config.h"
#include "larserve/version.h"
#include "protocol_util.h"

namespace larserve::serve {
namespace {

using json = nlohmann::json;           // requests: parsed, looked up
using ojson = nlohmann::ordered_json;  // responses: keys in Triton's order

constexpr char kHeaderLengthField[] = "Inference-Header-Content-Length";
constexpr char kJsonType[] = "application/json";
// Nested "data" arrays deeper than this are refused (a tensor has far fewer dimensions).
constexpr int kMaxDataDepth = 64;

int HttpStatusOf(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kInternal:
      return 500;
    default:
      return 400;
  }
}

// Model names come from the URL and may hold any bytes: never let an invalid UTF-8 sequence
// make the JSON writer fail.
std::string Dump(const ojson& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Response::set_content copies its argument (httplib 0.11 has no rvalue overload): move instead,
// as the body of an infer response can be large.
void SetBody(httplib::Response& res, std::string body, const char* content_type) {
  res.body = std::move(body);
  res.set_header("Content-Type", content_type);
}

void ReplyJson(httplib::Response& res, const ojson& j) {
  res.status = 200;
  SetBody(res, Dump(j), kJsonType);
}

void ReplyError(httplib::Response& res, int http_status, const std::string& message) {
  res.status = http_status;
  SetBody(res, Dump(ojson{{"error", message}}), kJsonType);
}

void ReplyStatus(httplib::Response& res, const Status& s) {
  if (s.ok()) {
    res.status = 200;
    return;
  }
  ReplyError(res, HttpStatusOf(s), s.message());
}

// --- request JSON helpers -------------------------------------------------------------------

// The object member `key`, or null when absent.
const json* Member(const json& object, std::string_view key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

Status GetString(const json& object, std::string_view key, const std::string& where,
                 std::string* out, bool required) {
  const json* v = Member(object, key);
  if (v == nullptr) {
    return required ? InvalidArgument(where + " has no \"" + std::string(key) + "\"")
                    : Status::Ok();
  }
  if (!v->is_string()) {
    return InvalidArgument(where + ": \"" + std::string(key) + "\" must be a string");
  }
  *out = v->get<std::string>();
  return Status::Ok();
}

Status GetBool(const json& object, std::string_view key, const std::string& where, bool* out) {
  const json* v = Member(object, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_boolean()) {
    return InvalidArgument(where + ": \"" + std::string(key) + "\" must be true or false");
  }
  *out = v->get<bool>();
  return Status::Ok();
}

Status GetUInt(const json& object, std::string_view key, const std::string& where, uint64_t* out) {
  const json* v = Member(object, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_number_unsigned()) {
    return InvalidArgument(where + ": \"" + std::string(key) + "\" must be a non-negative integer");
  }
  *out = v->get<uint64_t>();
  return Status::Ok();
}

// The optional "parameters" object of `object`; null when absent.
StatusOr<const json*> Parameters(const json& object, const std::string& where) {
  const json* p = Member(object, "parameters");
  if (p != nullptr && !p->is_object()) {
    return InvalidArgument(where + ": \"parameters\" must be an object");
  }
  return p;
}

// Calls f(value, index) for every scalar of `data` (a value, or arrays of arrays of values) in
// row-major order; stops at the first error.
template <typename F>
Status ForEachDataValue(const json& data, int depth, int64_t& index, const std::string& where,
                        F&& f) {
  if (!data.is_array()) {
    RETURN_IF_ERROR(f(data, index));
    ++index;
    return Status::Ok();
  }
  if (depth >= kMaxDataDepth) {
    return InvalidArgument(where + ": \"data\" is nested more than " +
                           std::to_string(kMaxDataDepth) + " arrays deep");
  }
  for (const json& v : data) RETURN_IF_ERROR(ForEachDataValue(v, depth + 1, index, where, f));
  return Status::Ok();
}

template <typename T>
Status ConvertDataValue(const json& v, int64_t i, const std::string& where, T* out) {
  const auto bad = [&](const char* what) {
    return InvalidArgument(where + ": element " + std::to_string(i) + " of \"data\" (" +
                           Dump(ojson(v)).substr(0, 40) + ") " + what);
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return bad("is not true or false (BOOL)");
    *out = v.get<bool>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return bad("is not a number");
    *out = static_cast<T>(v.get<double>());
  } else {
    if (!v.is_number_integer()) return bad("is not an integer");
    if (v.is_number_unsigned()) {
      const uint64_t x = v.get<uint64_t>();
      if (x > static_cast<uint64_t>(std::numeric_limits<T>::max())) return bad("is out of range");
      *out = static_cast<T>(x);
    } else {
      const int64_t x = v.get<int64_t>();
      if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          (x > 0 &&
           static_cast<uint64_t>(x) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        return bad("is out of range");
      }
      *out = static_cast<T>(x);
    }
  }
  return Status::Ok();
}

template <typename T>
Status FillFromData(const json& data, Tensor& t, const std::string& where) {
  T* dst = static_cast<T*>(t.data());
  int64_t index = 0;
  return ForEachDataValue(data, 0, index, where, [&](const json& v, int64_t i) {
    return ConvertDataValue<T>(v, i, where, dst + i);
  });
}

// An input given as JSON "data" (flat or nested, row-major).
StatusOr<Tensor> TensorFromData(const json& data, const InputDecl& decl, const std::string& where) {
  if (decl.dtype == DType::kFloat16 || decl.dtype == DType::kBFloat16) {
    return InvalidArgument(where + ": " + std::string(DTypeName(decl.dtype)) +
                           " data cannot be sent as JSON; send it as binary data "
                           "(parameters \"binary_data_size\")");
  }
  // Count first, so that the tensor is allocated only for data that matches its shape.
  int64_t count = 0;
  RETURN_IF_ERROR(
      ForEachDataValue(data, 0, count, where, [](const json&, int64_t) { return Status::Ok(); }));
  if (count != decl.count) {
    return InvalidArgument(where + " has " + std::to_string(count) +
                           " values in its \"data\", expected " + std::to_string(decl.count) +
                           " for shape " + Shape(decl.shape).ToString());
  }
  ASSIGN_OR_RETURN(Tensor t, Tensor::Create(decl.dtype, Shape(decl.shape)));
  switch (decl.dtype) {
    case DType::kFloat32:
      RETURN_IF_ERROR(FillFromData<float>(data, t, where));
      break;
    case DType::kFloat64:
      RETURN_IF_ERROR(FillFromData<double>(data, t, where));
      break;
    case DType::kInt8:
      RETURN_IF_ERROR(FillFromData<int8_t>(data, t, where));
      break;
    case DType::kInt16:
      RETURN_IF_ERROR(FillFromData<int16_t>(data, t, where));
      break;
    case DType::kInt32:
      RETURN_IF_ERROR(FillFromData<int32_t>(data, t, where));
      break;
    case DType::kInt64:
      RETURN_IF_ERROR(FillFromData<int64_t>(data, t, where));
      break;
    case DType::kUInt8:
      RETURN_IF_ERROR(FillFromData<uint8_t>(data, t, where));
      break;
    case DType::kUInt16:
      RETURN_IF_ERROR(FillFromData<uint16_t>(data, t, where));
      break;
    case DType::kBool:
      RETURN_IF_ERROR(FillFromData<bool>(data, t, where));
      break;
    default:
      return InvalidArgument(where + ": " + std::string(DTypeName(decl.dtype)) +
                             " data cannot be sent as JSON");
  }
  return t;
}

// --- inference --------------------------------------------------------------------------------

struct HttpInferRequest {
  InferRequest request;
  bool binary_output_default = false;                      // parameters.binary_data_output
  std::map<std::string, bool, std::less<>> binary_output;  // outputs[].parameters.binary_data
  SharedMemoryUse shared_memory;  // regions the inputs are read from, the outputs written to

  bool Binary(const std::string& output, DType dtype) const {
    // JSON has no 16-bit floats: such outputs go binary whatever was asked (Triton refuses them).
    if (dtype == DType::kFloat16 || dtype == DType::kBFloat16) return true;
    auto it = binary_output.find(output);
    return it != binary_output.end() ? it->second : binary_output_default;
  }
};

// Parses the JSON part of `text` into `j`, with the parser's position in the error.
Status ParseJson(std::string_view text, const std::string& what, json* j) {
  try {
    *j = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // nlohmann reports errors by exception; it stops here, as a Status.
    return InvalidArgument(what + " is not valid JSON: " + e.what());
  }
  return Status::Ok();
}

// A tensor's shared memory parameters (system shared memory extension): none without
// "shared_memory_region".
StatusOr<std::optional<SharedMemoryRef>> SharedMemoryParameters(const json* params,
                                                                const std::string& where) {
  if (params == nullptr) return std::optional<SharedMemoryRef>();
  const json* region = Member(*params, "shared_memory_region");
  if (region == nullptr) return std::optional<SharedMemoryRef>();
  SharedMemoryRef ref;
  RETURN_IF_ERROR(
      GetString(*params, "shared_memory_region", where + " parameter", &ref.region, true));
  if (Member(*params, "shared_memory_byte_size") == nullptr) {
    return InvalidArgument(where + ": \"shared_memory_region\" needs \"shared_memory_byte_size\"");
  }
  RETURN_IF_ERROR(
      GetUInt(*params, "shared_memory_byte_size", where + " parameter", &ref.byte_size));
  RETURN_IF_ERROR(GetUInt(*params, "shared_memory_offset", where + " parameter", &ref.offset));
  return std::optional<SharedMemoryRef>(std::move(ref));
}

// An infer request: the JSON header and the binary tensor data after it (binary tensor
// extension), translated into the scheduler's request. Binary inputs may be views of `body`,
// and inputs in shared memory views of their regions (held in the result's shared_memory): both
// must outlive the request.
StatusOr<HttpInferRequest> ParseInferRequest(const std::string& model, const std::string& body,
                                             const httplib::Request& req,
                                             const SharedMemoryManager& shared_memory) {
  const std::string prefix = "model '" + model + "': ";
  std::size_t header_length = body.size();
  if (req.has_header(kHeaderLengthField)) {
    const std::string v = req.get_header_value(kHeaderLengthField);
    uint64_t n = 0;
    const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size() || n > body.size()) {
      return InvalidArgument(prefix + kHeaderLengthField + " '" + v +
                             "' is not a byte count within the request body of " +
                             std::to_string(body.size()) + " bytes");
    }
    header_length = static_cast<std::size_t>(n);
  }
  json j;
  RETURN_IF_ERROR(ParseJson(std::string_view(body).substr(0, header_length),
                            prefix + "the inference request", &j));
  if (!j.is_object()) return InvalidArgument(prefix + "the inference request must be an object");
  HttpInferRequest out;
  const std::string request_where = prefix + "the inference request";
  RETURN_IF_ERROR(GetString(j, "id", request_where, &out.request.id, false));
  ASSIGN_OR_RETURN(const json* params, Parameters(j, request_where));
  if (params != nullptr) {
    RETURN_IF_ERROR(GetBool(*params, "binary_data_output", prefix + "request parameter",
                            &out.binary_output_default));
    if (Member(*params, "timeout") != nullptr) {
      uint64_t timeout = 0;
      const Status s = GetUInt(*params, "timeout", prefix + "request parameter", &timeout);
      if (!s.ok()) {
        return InvalidArgument(prefix +
                               "request parameter 'timeout' must be a non-negative integer "
                               "(microseconds)");
      }
      out.request.timeout_us = timeout;
    }
  }

  const json* inputs = Member(j, "inputs");
  if (inputs == nullptr || !inputs->is_array()) {
    return InvalidArgument(prefix + "the inference request needs an \"inputs\" array");
  }
  const std::string_view binary(body.data() + header_length, body.size() - header_length);
  std::size_t offset = 0;  // into `binary`
  out.request.inputs.reserve(inputs->size());
  for (std::size_t k = 0; k < inputs->size(); ++k) {
    const json& in = (*inputs)[k];
    if (!in.is_object()) {
      return InvalidArgument(prefix + "inputs[" + std::to_string(k) + "] must be an object");
    }
    std::string name, datatype;
    RETURN_IF_ERROR(
        GetString(in, "name", prefix + "inputs[" + std::to_string(k) + "]", &name, true));
    const std::string where = InputWhere(model, name);
    RETURN_IF_ERROR(GetString(in, "datatype", where, &datatype, true));
    const json* shape_json = Member(in, "shape");
    if (shape_json == nullptr || !shape_json->is_array()) {
      return InvalidArgument(where + " needs a \"shape\" array");
    }
    std::vector<int64_t> shape;
    shape.reserve(shape_json->size());
    for (const json& d : *shape_json) {
      if (!d.is_number_integer()) {
        return InvalidArgument(where + ": \"shape\" must hold integers");
      }
      if (d.is_number_unsigned() &&
          d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return InvalidArgument(where + " has an implausibly large shape");
      }
      shape.push_back(d.get<int64_t>());
    }
    ASSIGN_OR_RETURN(InputDecl decl, CheckInputDecl(where, datatype, std::move(shape)));
    ASSIGN_OR_RETURN(const json* in_params, Parameters(in, where));
    const json* data = Member(in, "data");
    ASSIGN_OR_RETURN(std::optional<SharedMemoryRef> shm, SharedMemoryParameters(in_params, where));
    if (shm) {
      if (data != nullptr || Member(*in_params, "binary_data_size") != nullptr) {
        return InvalidArgument(where +
                               " has shared memory parameters and data in the request: use one "
                               "or the other");
      }
      ASSIGN_OR_RETURN(Tensor t,
                       InputFromSharedMemory(shared_memory, *shm, decl, where, &out.shared_memory));
      out.request.inputs.push_back({std::move(name), std::move(t)});
      continue;
    }
    if (in_params != nullptr && Member(*in_params, "binary_data_size") != nullptr) {
      if (data != nullptr) {
        return InvalidArgument(where + " has both \"data\" and binary data: use one or the other");
      }
      uint64_t size = 0;
      RETURN_IF_ERROR(GetUInt(*in_params, "binary_data_size", where + " parameter", &size));
      if (size > binary.size() - offset) {
        return InvalidArgument(where + " has binary_data_size " + std::to_string(size) +
                               " but only " + std::to_string(binary.size() - offset) +
                               " bytes of binary data remain in the request");
      }
      RETURN_IF_ERROR(CheckInputBytes(where, static_cast<std::size_t>(size), decl));
      const char* bytes = binary.data() + offset;
      offset += decl.bytes;
      // No copy where the bytes are aligned for their type: a view of the body, which the
      // handler keeps until the response is written (Infer waits for it). Otherwise a copy (the
      // binary part starts wherever the JSON header ends; kernels may rely on the alignment).
      if (decl.bytes > 0 && reinterpret_cast<uintptr_t>(bytes) % DTypeSize(decl.dtype) == 0) {
        out.request.inputs.push_back({std::move(name), Tensor::View(decl.dtype, Shape(decl.shape),
                                                                    const_cast<char*>(bytes))});
        continue;
      }
      ASSIGN_OR_RETURN(Tensor t, Tensor::Create(decl.dtype, Shape(decl.shape)));
      if (size > 0) std::memcpy(t.data(), bytes, decl.bytes);
      out.request.inputs.push_back({std::move(name), std::move(t)});
      continue;
    }
    if (data == nullptr) {
      return InvalidArgument(where + " carries no data (neither \"data\" nor binary data)");
    }
    ASSIGN_OR_RETURN(Tensor t, TensorFromData(*data, decl, where));
    out.request.inputs.push_back({std::move(name), std::move(t)});
  }
  if (offset != binary.size()) {
    return InvalidArgument(prefix + "the request carries " + std::to_string(binary.size()) +
                           " bytes of binary data after its JSON header, but its inputs' "
                           "binary_data_size add up to " +
                           std::to_string(offset));
  }

  if (const json* outputs = Member(j, "outputs"); outputs != nullptr) {
    if (!outputs->is_array()) return InvalidArgument(prefix + "\"outputs\" must be an array");
    for (std::size_t k = 0; k < outputs->size(); ++k) {
      const json& o = (*outputs)[k];
      const std::string where = prefix + "outputs[" + std::to_string(k) + "]";
      if (!o.is_object()) return InvalidArgument(where + " must be an object");
      std::string name;
      RETURN_IF_ERROR(GetString(o, "name", where, &name, true));
      const std::string owhere = "model '" + model + "': output '" + name + "'";
      ASSIGN_OR_RETURN(const json* o_params, Parameters(o, owhere));
      bool binary_data = out.binary_output_default;
      if (o_params != nullptr) {
        if (Member(*o_params, "classification") != nullptr) {
          return Unimplemented(owhere + ": the classification extension is not supported");
        }
        ASSIGN_OR_RETURN(std::optional<SharedMemoryRef> shm,
                         SharedMemoryParameters(o_params, owhere));
        if (shm) {
          RETURN_IF_ERROR(
              BindOutputToSharedMemory(shared_memory, name, *shm, owhere, &out.shared_memory));
        }
        RETURN_IF_ERROR(GetBool(*o_params, "binary_data", owhere + " parameter", &binary_data));
      }
      out.binary_output[name] = binary_data;
      out.request.outputs.push_back(std::move(name));
    }
  }
  return out;
}

template <typename T>
ojson DataArray(const Tensor& t) {
  ojson a = ojson::array();
  a.get_ref<ojson::array_t&>().reserve(static_cast<std::size_t>(t.num_elements()));
  for (const T& v : t.Span<T>()) {
    if constexpr (std::is_same_v<T, float>) {
      a.push_back(static_cast<double>(v));
    } else {
      a.push_back(v);
    }
  }
  return a;
}

ojson JsonData(const Tensor& t) {
  switch (t.dtype()) {
    case DType::kFloat32:
      return DataArray<float>(t);
    case DType::kFloat64:
      return DataArray<double>(t);
    case DType::kInt8:
      return DataArray<int8_t>(t);
    case DType::kInt16:
      return DataArray<int16_t>(t);
    case DType::kInt32:
      return DataArray<int32_t>(t);
    case DType::kInt64:
      return DataArray<int64_t>(t);
    case DType::kUInt8:
      return DataArray<uint8_t>(t);
    case DType::kUInt16:
      return DataArray<uint16_t>(t);
    case DType::kBool:
      return DataArray<bool>(t);
    default:
      return ojson::array();  // 16-bit floats are always sent binary (HttpInferRequest::Binary)
  }
}

// The response: JSON alone, or (any binary output) the JSON header followed by the outputs' bytes.
// Outputs bound to shared memory are written there and described without data, with their
// shared memory parameters.
void WriteInferResponse(const LoadedModel& model, const HttpInferRequest& request,
                        const InferResponse& out, httplib::Response& res) {
  ojson j;
  j["model_name"] = model.name;
  j["model_version"] = std::to_string(model.version);
  if (!out.id.empty()) j["id"] = out.id;
  ojson outputs = ojson::array();
  std::vector<const Tensor*> binary;
  std::size_t binary_bytes = 0;
  for (const NamedTensor& o : out.outputs) {
    ojson t;
    t["name"] = o.name;
    t["datatype"] = std::string(DTypeName(o.tensor.dtype()));
    t["shape"] = o.tensor.shape().dims();
    if (auto it = request.shared_memory.outputs.find(o.name);
        it != request.shared_memory.outputs.end()) {
      const Status s = WriteToSharedMemory(o.tensor, it->second,
                                           "model '" + model.name + "': output '" + o.name + "'");
      if (!s.ok()) return ReplyStatus(res, s);
      // As Triton: name, datatype and shape only. Parameters here would break NVIDIA's C++
      // client (perf_analyzer), which reads "binary_data_size" from any output that has them.
    } else if (request.Binary(o.name, o.tensor.dtype())) {
      t["parameters"] = ojson{{"binary_data_size", o.tensor.num_bytes()}};
      binary.push_back(&o.tensor);
      binary_bytes += o.tensor.num_bytes();
    } else {
      t["data"] = JsonData(o.tensor);
    }
    outputs.push_back(std::move(t));
  }
  j["outputs"] = std::move(outputs);
  std::string body = Dump(j);
  res.status = 200;
  if (binary.empty()) {
    SetBody(res, std::move(body), kJsonType);
    return;
  }
  res.set_header(kHeaderLengthField, std::to_string(body.size()));
  body.reserve(body.size() + binary_bytes);
  for (const Tensor* t : binary) body.append(static_cast<const char*>(t->data()), t->num_bytes());
  SetBody(res, std::move(body), "application/octet-stream");
}

// --- other answers ----------------------------------------------------------------------------

ojson DurationJson(const DurationStat& d) { return ojson{{"count", d.count}, {"ns", d.ns}}; }

ojson StatisticsJson(const LoadedModel& model) {
  const ModelStats s = model.scheduler->Stats();
  ojson m;
  m["name"] = model.name;
  m["version"] = std::to_string(model.version);
  m["last_inference"] = s.last_inference_ms;
  m["inference_count"] = s.inference_count;
  m["execution_count"] = s.execution_count;
  m["inference_stats"] = ojson{{"success", DurationJson(s.success)},
                               {"fail", DurationJson(s.fail)},
                               {"queue", DurationJson(s.queue)},
                               {"compute_input", DurationJson(s.compute_input)},
                               {"compute_infer", DurationJson(s.compute_infer)},
                               {"compute_output", DurationJson(s.compute_output)},
                               {"cache_hit", DurationJson(s.cache_hit)},
                               {"cache_miss", DurationJson(s.cache_miss)}};
  ojson batches = ojson::array();
  for (const auto& [size, b] : s.batch_stats) {
    batches.push_back(ojson{{"batch_size", size},
                            {"compute_input", DurationJson(b.compute_input)},
                            {"compute_infer", DurationJson(b.compute_infer)},
                            {"compute_output", DurationJson(b.compute_output)}});
  }
  m["batch_stats"] = std::move(batches);
  return m;
}

ojson MetadataJson(const ModelRepository& repository, const LoadedModel& m) {
  ojson j;
  j["name"] = m.name;
  ojson versions = ojson::array();
  for (const ModelHandle& v : repository.ReadyVersions(m.name)) {
    versions.push_back(std::to_string(v->version));
  }
  j["versions"] = std::move(versions);
  j["platform"] = ModelPlatform(m);
  const auto tensors = [](const std::vector<runtime::TensorSpec>& specs) {
    ojson a = ojson::array();
    for (const auto& s : specs) {
      a.push_back(ojson{
          {"name", s.name}, {"datatype", std::string(DTypeName(s.dtype))}, {"shape", s.dims}});
    }
    return a;
  };
  j["inputs"] = tensors(m.inputs);
  j["outputs"] = tensors(m.outputs);
  return j;
}

// --- routing ----------------------------------------------------------------------------------

// "{m}[/versions/{v}]" in a route: matches[1] the model, matches[2] the version ("" if absent).
constexpr char kModel[] = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";

class Frontend {
 public:
  Frontend(ModelRepository* repository, std::size_t max_body,
           std::shared_ptr<SharedMemoryManager> shared_memory)
      : repository_(repository), max_body_(max_body), shared_memory_(std::move(shared_memory)) {}

  void set_run_inline(bool run_inline) { run_inline_ = run_inline; }
  void set_busy_wait_us(int64_t us) { busy_wait_us_ = us; }

  void Register(httplib::Server& s) {
    s.Get("/v2/health/live",
          [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
    // Ready once the repository is open (as the gRPC ServerReady); models have their own.
    s.Get("/v2/health/ready",
          [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
    s.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
      ojson ext = ojson::array();
      for (const std::string& e : ServerExtensions()) ext.push_back(e);
      ext.push_back("binary_tensor_data");
      ReplyJson(res, ojson{{"name", std::string(kServerName)},
                           {"version", kVersion},
                           {"extensions", std::move(ext)}});
    });
    // Before the model routes: "stats" is not a model name here (as in Triton).
    s.Get("/v2/models/stats",
          [this](const httplib::Request&, httplib::Response& res) { Statistics("", "", res); });
    s.Get(std::string(kModel), [this](const httplib::Request& req, httplib::Response& res) {
      auto m = repository_->Get(req.matches[1].str(), req.matches[2].str());
      if (!m.ok()) return ReplyStatus(res, m.status());
      ReplyJson(res, MetadataJson(*repository_, **m));
    });
    s.Get(std::string(kModel) + "/ready",
          [this](const httplib::Request& req, httplib::Response& res) {
            auto m = repository_->Get(req.matches[1].str(), req.matches[2].str());
            // Not ready (or unknown) is 400, as Triton answers; the body says why.
            if (!m.ok()) return ReplyError(res, 400, m.status().message());
            res.status = 200;
          });
    s.Get(std::string(kModel) + "/config",
          [this](const httplib::Request& req, httplib::Response& res) {
            auto m = repository_->Get(req.matches[1].str(), req.matches[2].str());
            if (!m.ok()) return ReplyStatus(res, m.status());
            auto text = ModelConfigToJson(*(*m)->config);
            if (!text.ok()) return ReplyStatus(res, text.status());
            res.status = 200;
            SetBody(res, std::move(text).value(), kJsonType);
          });
    s.Get(std::string(kModel) + "/stats",
          [this](const httplib::Request& req, httplib::Response& res) {
            Statistics(req.matches[1].str(), req.matches[2].str(), res);
          });
    Post(s, std::string(kModel) + "/infer",
         [this](const httplib::Request& req, std::string& body, httplib::Response& res) {
           Infer(req, body, res);
         });
    Post(s, "/v2/repository/index",
         [this](const httplib::Request&, std::string& body, httplib::Response& res) {
           RepositoryIndex(body, res);
         });
    Post(s, R"(/v2/repository/models/([^/]+)/load)",
         [this](const httplib::Request& req, std::string& body, httplib::Response& res) {
           Load(req.matches[1].str(), body, res);
         });
    Post(s, R"(/v2/repository/models/([^/]+)/unload)",
         [this](const httplib::Request& req, std::string& body, httplib::Response& res) {
           Unload(req.matches[1].str(), body, res);
         });
    // Extensions this server does not offer: 501 rather than 404, so clients learn why.
    const auto unsupported = [](std::string what) {
      return [what](const httplib::Request&, httplib::Response& res) {
        ReplyStatus(res, Unimplemented(what + " is not supported by this server"));
      };
    };
    // System shared memory (Triton's paths); CUDA shared memory is not offered.
    constexpr char kShm[] = "/v2/systemsharedmemory";
    constexpr char kRegion[] = "/v2/systemsharedmemory/region/([^/]+)";
    s.Get(std::string(kShm) + "/status",
          [this](const httplib::Request&, httplib::Response& res) { ShmStatus("", res); });
    s.Get(std::string(kRegion) + "/status",
          [this](const httplib::Request& req, httplib::Response& res) {
            ShmStatus(req.matches[1].str(), res);
          });
    Post(s, std::string(kRegion) + "/register",
         [this](const httplib::Request& req, std::string& body, httplib::Response& res) {
           ShmRegister(req.matches[1].str(), body, res);
         });
    Post(s, std::string(kShm) + "/unregister",
         [this](const httplib::Request&, std::string&, httplib::Response& res) {
           ReplyStatus(res, shared_memory_->Unregister(""));
         });
    Post(s, std::string(kRegion) + "/unregister",
         [this](const httplib::Request& req, std::string&, httplib::Response& res) {
           ReplyStatus(res, shared_memory_->Unregister(req.matches[1].str()));
         });
    const std::string shm = R"(/v2/cudasharedmemory(?:/.*)?)";
    const std::string trace = R"(/v2(?:/models/[^/]+(?:/versions/[^/]+)?)?/trace/setting)";
    s.Get(shm, unsupported("CUDA shared memory"));
    Post(s, shm,
         [f = unsupported("CUDA shared memory")](const httplib::Request& req, std::string&,
                                                 httplib::Response& res) { f(req, res); });
    s.Get(trace, unsupported("tracing"));
    Post(s, trace,
         [f = unsupported("tracing")](const httplib::Request& req, std::string&,
                                      httplib::Response& res) { f(req, res); });
    s.Get("/v2/logging", unsupported("the logging extension"));
    Post(s, "/v2/logging",
         [f = unsupported("the logging extension")](const httplib::Request& req, std::string&,
                                                    httplib::Response& res) { f(req, res); });
  }

 private:
  using BodyHandler =
      std::function<void(const httplib::Request&, std::string& body, httplib::Response&)>;

  // A POST route whose body is read here, bounded by max_body_ after decompression (httplib
  // refuses a Content-Length above the limit itself; chunked and compressed bodies are bounded
  // only by this count).
  void Post(httplib::Server& s, const std::string& pattern, BodyHandler handler) {
    s.Post(pattern,
           [this, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res,
                                                const httplib::ContentReader& reader) {
             std::string body;
             // A POST without Content-Length or chunked encoding has no body (curl -X POST).
             if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
               return handler(req, body, res);
             }
             if (req.has_header("Content-Length")) {
               body.reserve(std::min<std::size_t>(
                   max_body_, req.get_header_value<uint64_t>("Content-Length")));
             }
             bool too_large = false;
             const bool ok = reader([&](const char* data, std::size_t n) {
               if (n > max_body_ - body.size()) {
                 too_large = true;
                 return false;
               }
               body.append(data, n);
               return true;
             });
             if (too_large || res.status == 413) {
               return ReplyError(res, 413, TooLarge());
             }
             if (!ok) return ReplyError(res, 400, "cannot read the request body");
             handler(req, body, res);
           });
  }

  std::string TooLarge() const {
    return "the request body is larger than the server's limit of " + std::to_string(max_body_) +
           " bytes (larserve serve --max-message-mb)";
  }

  void Statistics(const std::string& name, const std::string& version, httplib::Response& res) {
    auto models = StatisticsModels(*repository_, name, version);
    if (!models.ok()) return ReplyStatus(res, models.status());
    ojson stats = ojson::array();
    for (const ModelHandle& m : *models) stats.push_back(StatisticsJson(*m));
    ReplyJson(res, ojson{{"model_stats", std::move(stats)}});
  }

  void Infer(const httplib::Request& req, const std::string& body, httplib::Response& res) {
    auto model = repository_->Get(req.matches[1].str(), req.matches[2].str());
    if (!model.ok()) return ReplyStatus(res, model.status());
    ModelHandle handle = *model;  // keeps the model alive until the response is written
    auto parsed = ParseInferRequest(handle->name, body, req, *shared_memory_);
    if (!parsed.ok()) return ReplyStatus(res, parsed.status());
    // httplib's model: the worker waits for the scheduler's response (the compute runs on the
    // model's instances, or on this thread when it may run inline). The promise is shared with
    // the callback, which may still be returning from set_value when this thread wakes up.
    auto promise = std::make_shared<std::promise<InferResponse>>();
    std::future<InferResponse> done = promise->get_future();
    handle->scheduler->Enqueue(
        std::move(parsed->request),
        [promise](InferResponse out) { promise->set_value(std::move(out)); }, run_inline_);
    // Poll when nothing else waits for the model (this request may still be in the queue).
    if (busy_wait_us_ > 0 && handle->scheduler->Queued() <= 1) PollFor(done);
    const InferResponse out = done.get();
    if (!out.status.ok()) return ReplyStatus(res, out.status);
    WriteInferResponse(*handle, *parsed, out, res);
  }

  // The optional JSON body of a repository request, as an object ({} when empty).
  static StatusOr<json> OptionalObject(const std::string& body, const std::string& what) {
    if (body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
    json j;
    RETURN_IF_ERROR(ParseJson(body, what, &j));
    if (!j.is_object()) return InvalidArgument(what + " must be a JSON object");
    return j;
  }

  void RepositoryIndex(const std::string& body, httplib::Response& res) {
    auto j = OptionalObject(body, "the repository index request");
    if (!j.ok()) return ReplyStatus(res, j.status());
    bool ready_only = false;
    const Status s = GetBool(*j, "ready", "the repository index request", &ready_only);
    if (!s.ok()) return ReplyStatus(res, s);
    ojson index = ojson::array();
    for (const ModelIndexEntry& e : repository_->Index()) {
      if (ready_only && e.state != ModelState::kReady) continue;
      index.push_back(ojson{{"name", e.name},
                            {"version", e.version},
                            {"state", std::string(ModelStateName(e.state))},
                            {"reason", e.reason}});
    }
    ReplyJson(res, index);
  }

  void Load(const std::string& name, const std::string& body, httplib::Response& res) {
    auto j = OptionalObject(body, "the load request for model '" + name + "'");
    if (!j.ok()) return ReplyStatus(res, j.status());
    if (const json* p = Member(*j, "parameters"); p != nullptr && !p->empty()) {
      return ReplyStatus(res, Unimplemented("model '" + name +
                                            "': load parameters (config or file overrides) are "
                                            "not supported"));
    }
    // Builds can take seconds: this worker waits (loads are serialised by the repository;
    // inference goes on on the other workers).
    ReplyStatus(res, repository_->Load(name));
  }

  void Unload(const std::string& name, const std::string& body, httplib::Response& res) {
    auto j = OptionalObject(body, "the unload request for model '" + name + "'");
    if (!j.ok()) return ReplyStatus(res, j.status());
    if (const json* p = Member(*j, "parameters"); p != nullptr) {
      if (!p->is_object()) {
        return ReplyStatus(res, InvalidArgument("the unload request for model '" + name +
                                                "': \"parameters\" must be an object"));
      }
      // unload_dependents (tritonclient always sends it) has no meaning without ensembles.
      bool dependents = false;
      const Status s = GetBool(*p, "unload_dependents", "unload parameter", &dependents);
      if (!s.ok()) return ReplyStatus(res, s);
    }
    ReplyStatus(res, repository_->Unload(name));
  }

  void ShmStatus(const std::string& name, httplib::Response& res) {
    auto regions = shared_memory_->Regions(name);
    if (!regions.ok()) return ReplyStatus(res, regions.status());
    ojson out = ojson::array();
    for (const SharedMemoryRegionInfo& r : *regions) {
      out.push_back(ojson{
          {"name", r.name}, {"key", r.key}, {"offset", r.offset}, {"byte_size", r.byte_size}});
    }
    ReplyJson(res, out);
  }

  // Body: {"key": ..., "offset": ..., "byte_size": ...} (offset optional).
  void ShmRegister(const std::string& name, const std::string& body, httplib::Response& res) {
    const std::string what = "the register request for shared memory region '" + name + "'";
    auto j = OptionalObject(body, what);
    if (!j.ok()) return ReplyStatus(res, j.status());
    std::string key;
    uint64_t offset = 0, byte_size = 0;
    Status s = GetString(*j, "key", what, &key, true);
    if (s.ok()) s = GetUInt(*j, "offset", what, &offset);
    if (s.ok() && Member(*j, "byte_size") == nullptr) {
      s = InvalidArgument(what + " has no \"byte_size\"");
    }
    if (s.ok()) s = GetUInt(*j, "byte_size", what, &byte_size);
    if (s.ok()) s = shared_memory_->Register(name, key, offset, byte_size);
    ReplyStatus(res, s);
  }

  ModelRepository* repository_;
  const std::size_t max_body_;
  std::shared_ptr<SharedMemoryManager> shared_memory_;
  bool run_inline_ = true;
  int64_t busy_wait_us_ = 0;
  std::atomic<bool> polling_{false};  // a worker is polling for its response (PollFor)

  // Polls `done` for up to busy_wait_us_ unless another worker already polls: at most one
  // core spent on it. Returns when the response is ready or the time is up (then get() sleeps).
  void PollFor(const std::future<InferResponse>& done) {
    if (polling_.exchange(true, std::memory_order_acquire)) return;
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(busy_wait_us_);
    while (done.wait_for(std::chrono::seconds(0)) != std::future_status::ready &&
           std::chrono::steady_clock::now() < until) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    polling_.store(false, std::memory_order_release);
  }
};

// httplib's task queue, growing with demand. httplib ties a worker to each open connection for
// as long as it stays open (keep-alive), so a fixed pool smaller than the number of clients
// leaves the others waiting: with perf_analyzer's 16 connections on 16 workers, its statistics
// query waited minutes. A worker starts whenever a connection arrives and none is idle, up to
// `max_threads`; beyond that, connections wait for a worker as in httplib's pool. Started
// workers stay (idle ones cost a stack and nothing else).
class ElasticTaskQueue : public httplib::TaskQueue {
 public:
  explicit ElasticTaskQueue(std::size_t max_threads) : max_threads_(max_threads) {}
  ~ElasticTaskQueue() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    jobs_.push_back(std::move(fn));
    if (idle_ < jobs_.size() && threads_.size() < max_threads_) {
      ++idle_;  // the new worker counts as idle until it takes a job
      try {
        threads_.emplace_back([this] {
          SetCurrentThreadName("lsv-http");
          Work();
        });
        return;
      } catch (const std::system_error&) {
        --idle_;  // no more threads: the job waits for a running worker
        if (threads_.empty()) {
          std::function<void()> job = std::move(jobs_.back());
          jobs_.pop_back();
          lock.unlock();
          job();  // no worker at all: serve it on the accepting thread
          return;
        }
      }
    }
    lock.unlock();
    cv_.notify_one();
  }

  // Called by httplib when the server stops: the queued connections are served, then the
  // workers end.
  void shutdown() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      threads.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : threads) t.join();
  }

 private:
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) return;  // stopping, nothing left
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      job = nullptr;
      lock.lock();
      ++idle_;
    }
  }

  const std::size_t max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;  // workers waiting for a job (or starting)
  bool stopping_ = false;
};

}  // namespace

struct HttpServer::Impl {
  std::unique_ptr<Frontend> frontend;
  std::unique_ptr<HttpListener> listener;
};

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(ModelRepository* repository,
                                                        const HttpServerOptions& options) {
  if (options.max_request_bytes == 0) {
    return InvalidArgument("the maximum HTTP request size must be positive");
  }
  if (options.threads < 0 || options.threads > 4096) {
    return InvalidArgument("HTTP worker threads must be 0 (automatic) to 4096, got " +
                           std::to_string(options.threads));
  }
  if (options.busy_wait_us < 0) {
    return InvalidArgument("HTTP busy_wait_us must be >= 0, not " +
                           std::to_string(options.busy_wait_us));
  }
  // Each open connection holds a worker while it is open (httplib), and each inference holds
  // one while it runs; workers start as connections need them, up to this many.
  const std::size_t threads =
      options.threads > 0 ? static_cast<std::size_t>(options.threads) : kDefaultHttpThreads;
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->impl_ = std::make_unique<Impl>();
  s->impl_->frontend = std::make_unique<Frontend>(
      repository, options.max_request_bytes,
      options.shared_memory ? options.shared_memory : std::make_shared<SharedMemoryManager>());
  s->impl_->frontend->set_run_inline(options.run_inline);
  s->impl_->frontend->set_busy_wait_us(options.busy_wait_us);
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [threads] { return new ElasticTaskQueue(threads); };
  server->set_payload_max_length(options.max_request_bytes);
  // Responses are written as headers then body: without TCP_NODELAY, Nagle's algorithm and
  // delayed ACKs would add tens of milliseconds to small responses.
  server->set_tcp_nodelay(true);
  server->set_keep_alive_max_count(1000);
  s->impl_->frontend->Register(*server);
  // Errors httplib answers itself (unknown path 404, body too large 413, malformed HTTP 400)
  // get the protocol's {"error": ...} body too.
  server->set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                    httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message;
    if (res.status == 404) {
      message = "no endpoint " + req.method + " " + req.path + " (KServe v2 / Triton HTTP paths)";
    } else if (res.status == 413) {
      message = "the request body is larger than the server's limit";
    } else {
      message = "HTTP error " + std::to_string(res.status) +
                (res.status == 400 ? " (malformed HTTP request)" : "");
    }
    SetBody(res, Dump(ojson{{"error", message}}), kJsonType);
    return httplib::Server::HandlerResponse::Handled;
  }));
  // Nothing of ours throws; std::bad_alloc (a huge JSON request) still must not end the server.
  server->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        ReplyError(res, 500, "internal error: " + what);
      });
  ASSIGN_OR_RETURN(s->impl_->listener,
                   HttpListener::Start(std::move(server), options.host, options.port, "HTTP"));
  return s;
}

HttpServer::~HttpServer() {
  if (impl_) Shutdown();
}

int HttpServer::port() const { return impl_->listener->port(); }

void HttpServer::Shutdown() {
  if (impl_->listener) impl_->listener->Shutdown();
}

}  // namespace larserve::serve
