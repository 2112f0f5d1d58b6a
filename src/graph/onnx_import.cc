#include "larserve/graph/onnx_import.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

namespace larserve::graph {
namespace {

template <typename Message>
bool ParseBounded(std::string_view bytes, std::size_t max_bytes, Message* msg) {
  google::protobuf::io::ArrayInputStream raw(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(static_cast<int>(std::min<std::size_t>(max_bytes, INT32_MAX)));
  return msg->ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
}

StatusOr<std::string> ReadFile(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFound("cannot open '" + path + "'");
  const std::streamoff size = in.tellg();
  if (size < 0) return DataLoss("cannot read '" + path + "'");
  if (static_cast<std::size_t>(size) > max_bytes) {
    return ResourceExhausted("'" + path + "' is " + std::to_string(size) +
                             " bytes, above the limit of " + std::to_string(max_bytes));
  }
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) return DataLoss("cannot read '" + path + "'");
  return bytes;
}

// Copies `count` little-endian elements of `size` bytes from raw_data.
Status CopyRaw(const std::string& raw, Tensor& t, const std::string& what) {
  if (raw.size() != t.num_bytes()) {
    return InvalidArgument(what + ": raw_data has " + std::to_string(raw.size()) +
                           " bytes, expected " + std::to_string(t.num_bytes()) + " for shape " +
                           t.shape().ToString());
  }
  if (!raw.empty()) std::memcpy(t.data(), raw.data(), raw.size());
  return Status::Ok();
}

template <typename Src, typename Dst>
Status CopyTyped(const google::protobuf::RepeatedField<Src>& src, Tensor& t,
                 const std::string& what) {
  if (static_cast<int64_t>(src.size()) != t.num_elements()) {
    return InvalidArgument(what + ": has " + std::to_string(src.size()) + " values, expected " +
                           std::to_string(t.num_elements()) + " for shape " + t.shape().ToString());
  }
  auto out = t.Span<Dst>();
  for (int i = 0; i < src.size(); ++i) out[i] = static_cast<Dst>(src.Get(i));
  return Status::Ok();
}

StatusOr<Tensor> ConvertTensor(const onnx::TensorProto& tp, const std::string& what) {
  if (tp.data_location() == onnx::TensorProto::EXTERNAL || tp.external_data_size() > 0) {
    return Unimplemented(what +
                         ": tensors with external data are not supported; re-export the model "
                         "with the weights inside the file");
  }
  if (tp.has_segment()) return Unimplemented(what + ": segmented tensors are not supported");
  ASSIGN_OR_RETURN(DType dtype, DTypeFromOnnx(tp.data_type()));
  std::vector<int64_t> dims(tp.dims().begin(), tp.dims().end());
  int64_t count = 1;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgument(what + ": negative dimension");
    if (d > 0 && count > (int64_t{1} << 40) / d)
      return InvalidArgument(what + ": implausible shape");
    count *= d;
  }
  // The data must be there before anything is allocated for it.
  const std::size_t stored =
      tp.has_raw_data() ? tp.raw_data().size() / std::max<std::size_t>(1, DTypeSize(dtype))
                        : static_cast<std::size_t>(tp.float_data_size() + tp.int32_data_size() +
                                                   tp.int64_data_size() + tp.double_data_size());
  if (static_cast<std::size_t>(count) != stored) {
    return InvalidArgument(what + ": holds " + std::to_string(stored) +
                           " values but its shape needs " + std::to_string(count));
  }
  auto created = Tensor::Create(dtype, Shape(dims));
  if (!created.ok()) return created.status().WithContext(what);
  Tensor t = std::move(created).value();
  if (tp.has_raw_data()) {
    RETURN_IF_ERROR(CopyRaw(tp.raw_data(), t, what));
    return t;
  }
  switch (dtype) {
    case DType::kFloat32:
      RETURN_IF_ERROR((CopyTyped<float, float>(tp.float_data(), t, what)));
      break;
    case DType::kFloat64:
      RETURN_IF_ERROR((CopyTyped<double, double>(tp.double_data(), t, what)));
      break;
    case DType::kInt64:
      RETURN_IF_ERROR((CopyTyped<int64_t, int64_t>(tp.int64_data(), t, what)));
      break;
    case DType::kInt32:
      RETURN_IF_ERROR((CopyTyped<int32_t, int32_t>(tp.int32_data(), t, what)));
      break;
    case DType::kInt16:
      RETURN_IF_ERROR((CopyTyped<int32_t, int16_t>(tp.int32_data(), t, what)));
      break;
    case DType::kUInt16:
      RETURN_IF_ERROR((CopyTyped<int32_t, uint16_t>(tp.int32_data(), t, what)));
      break;
    case DType::kInt8:
      RETURN_IF_ERROR((CopyTyped<int32_t, int8_t>(tp.int32_data(), t, what)));
      break;
    case DType::kUInt8:
      RETURN_IF_ERROR((CopyTyped<int32_t, uint8_t>(tp.int32_data(), t, what)));
      break;
    case DType::kBool:
      RETURN_IF_ERROR((CopyTyped<int32_t, uint8_t>(tp.int32_data(), t, what)));
      break;
    case DType::kFloat16:
    case DType::kBFloat16:  // bit patterns in int32_data
      RETURN_IF_ERROR((CopyTyped<int32_t, uint16_t>(tp.int32_data(), t, what)));
      break;
  }
  return t;
}

bool IsNonTensor(const onnx::ValueInfoProto& vi) {
  return vi.has_type() && !vi.type().has_tensor_type();
}

void ReadValueInfo(const onnx::ValueInfoProto& vi, Value& v) {
  if (!vi.has_type() || !vi.type().has_tensor_type()) return;
  const auto& tt = vi.type().tensor_type();
  if (auto d = DTypeFromOnnx(tt.elem_type()); d.ok()) v.dtype = *d;
  if (!tt.has_shape()) return;
  v.has_shape = true;
  v.dims.clear();
  for (const auto& dim : tt.shape().dim()) {
    v.dims.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
  }
}

StatusOr<Attribute> ConvertAttribute(const onnx::AttributeProto& a, const std::string& where) {
  Attribute out;
  switch (a.type()) {
    case onnx::AttributeProto::INT:
      out.kind = Attribute::Kind::kInt;
      out.i = a.i();
      break;
    case onnx::AttributeProto::FLOAT:
      out.kind = Attribute::Kind::kFloat;
      out.f = a.f();
      break;
    case onnx::AttributeProto::STRING:
      out.kind = Attribute::Kind::kString;
      out.s = a.s();
      break;
    case onnx::AttributeProto::INTS:
      out.kind = Attribute::Kind::kInts;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::FLOATS:
      out.kind = Attribute::Kind::kFloats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::STRINGS:
      out.kind = Attribute::Kind::kStrings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case onnx::AttributeProto::TENSOR: {
      out.kind = Attribute::Kind::kTensor;
      ASSIGN_OR_RETURN(out.t, ConvertTensor(a.t(), where + " attribute '" + a.name() + "'"));
      break;
    }
    default:
      return Unimplemented(where + ": attribute '" + a.name() +
                           "' has a type (graph, sparse tensor or type "
                           "proto) that larserve does not support");
  }
  return out;
}

}  // namespace

StatusOr<DType> DTypeFromOnnx(int t) {
  switch (t) {
    case onnx::TensorProto::FLOAT:
      return DType::kFloat32;
    case onnx::TensorProto::UINT8:
      return DType::kUInt8;
    case onnx::TensorProto::INT8:
      return DType::kInt8;
    case onnx::TensorProto::UINT16:
      return DType::kUInt16;
    case onnx::TensorProto::INT16:
      return DType::kInt16;
    case onnx::TensorProto::INT32:
      return DType::kInt32;
    case onnx::TensorProto::INT64:
      return DType::kInt64;
    case onnx::TensorProto::BOOL:
      return DType::kBool;
    case onnx::TensorProto::FLOAT16:
      return DType::kFloat16;
    case onnx::TensorProto::DOUBLE:
      return DType::kFloat64;
    case onnx::TensorProto::BFLOAT16:
      return DType::kBFloat16;
    default:
      return Unimplemented("ONNX tensor data type " + std::to_string(t) + " is not supported");
  }
}

int OnnxTypeFromDType(DType d) {
  switch (d) {
    case DType::kFloat32:
      return onnx::TensorProto::FLOAT;
    case DType::kUInt8:
      return onnx::TensorProto::UINT8;
    case DType::kInt8:
      return onnx::TensorProto::INT8;
    case DType::kUInt16:
      return onnx::TensorProto::UINT16;
    case DType::kInt16:
      return onnx::TensorProto::INT16;
    case DType::kInt32:
      return onnx::TensorProto::INT32;
    case DType::kInt64:
      return onnx::TensorProto::INT64;
    case DType::kBool:
      return onnx::TensorProto::BOOL;
    case DType::kFloat16:
      return onnx::TensorProto::FLOAT16;
    case DType::kFloat64:
      return onnx::TensorProto::DOUBLE;
    case DType::kBFloat16:
      return onnx::TensorProto::BFLOAT16;
  }
  return onnx::TensorProto::UNDEFINED;
}

StatusOr<Tensor> ReadTensorProtoFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, std::size_t{1} << 31));
  onnx::TensorProto tp;
  if (!ParseBounded(bytes, bytes.size() + 1, &tp)) {
    return InvalidArgument("'" + path + "' is not a serialised onnx.TensorProto");
  }
  return ConvertTensor(tp, "tensor '" + path + "'");
}

StatusOr<Graph> ImportOnnxFile(const std::string& path, const ImportOptions& options) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, options.max_bytes));
  return ImportOnnxBytes(bytes, path, options);
}

StatusOr<Graph> ImportOnnxBytes(std::string_view bytes, const std::string& origin,
                                const ImportOptions& options) {
  const std::string where = "ONNX model '" + origin + "'";
  if (bytes.size() > options.max_bytes)
    return ResourceExhausted(where + " is larger than the limit");
  onnx::ModelProto model;
  if (bytes.empty() || !ParseBounded(bytes, options.max_bytes, &model)) {
    return InvalidArgument(where + " cannot be parsed: not an ONNX protobuf, truncated or corrupt");
  }
  if (!model.has_graph()) return InvalidArgument(where + " has no graph");
  int64_t opset = -1;
  for (const auto& imp : model.opset_import()) {
    if (imp.domain().empty() || imp.domain() == "ai.onnx") opset = imp.version();
  }
  if (opset < 0) {
    std::string domains;
    for (const auto& imp : model.opset_import())
      domains += (domains.empty() ? "'" : ", '") + imp.domain() + "'";
    if (domains.empty()) return InvalidArgument(where + " has no opset_import");
    return Unimplemented(where + " uses only domain(s) " + domains +
                         "; larserve supports the default ONNX domain");
  }
  if (opset > kMaxOpset || (opset < kMinOpset && !options.allow_old_opsets)) {
    return Unimplemented(where + " uses opset " + std::to_string(opset) +
                         "; larserve supports opsets " + std::to_string(kMinOpset) + " to " +
                         std::to_string(kMaxOpset) + " (convert it with onnx.version_converter)");
  }
  if (options.run_checker) {
    try {
      onnx::checker::check_model(model);
    } catch (const std::exception& e) {
      return InvalidArgument(where + " fails the ONNX checker: " + e.what());
    }
  }
  if (options.infer_shapes) {
    try {
      onnx::shape_inference::InferShapes(model);
    } catch (const std::exception& e) {
      return InvalidArgument(where + " fails ONNX shape inference: " + e.what());
    }
  }
  const onnx::GraphProto& gp = model.graph();
  Graph g;
  g.name = gp.name();
  g.opset = opset;
  std::unordered_map<std::string, int> by_name;
  auto value_of = [&](const std::string& name) -> int {
    auto it = by_name.find(name);
    if (it != by_name.end()) return it->second;
    Value v;
    v.name = name;
    const int id = g.AddValue(std::move(v));
    by_name.emplace(name, id);
    return id;
  };
  for (const auto& init : gp.initializer()) {
    if (by_name.count(init.name()))
      return InvalidArgument(where + ": initializer '" + init.name() + "' is defined twice");
    auto t = ConvertTensor(init, where + ": initializer '" + init.name() + "'");
    if (!t.ok()) return t.status();
    const int id = value_of(init.name());
    Value& v = g.values[id];
    v.dtype = t->dtype();
    v.dims = t->shape().dims();
    v.has_shape = true;
    v.constant = std::move(t).value();
  }
  for (const auto* list : {&gp.input(), &gp.output()}) {
    for (const auto& vi : *list) {
      if (IsNonTensor(vi)) {
        return Unimplemented(where + ": graph input/output '" + vi.name() +
                             "' is a sequence, map or optional; larserve supports tensors only");
      }
    }
  }
  for (const auto& in : gp.input()) {
    const int id = value_of(in.name());
    if (g.values[id].constant)
      continue;  // an initializer listed as input (IR < 4 style): a constant
    ReadValueInfo(in, g.values[id]);
    g.inputs.push_back(id);
  }
  for (const auto& vi : gp.value_info()) ReadValueInfo(vi, g.values[value_of(vi.name())]);
  for (const auto& out : gp.output()) ReadValueInfo(out, g.values[value_of(out.name())]);
  std::set<std::string> node_names;
  for (int n = 0; n < gp.node_size(); ++n) {
    const onnx::NodeProto& np = gp.node(n);
    Node node;
    node.op_type = np.op_type();
    node.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    node.name = np.name().empty() ? np.op_type() + "_" + std::to_string(n) : np.name();
    while (!node_names.insert(node.name).second) node.name += "_" + std::to_string(n);
    if (!node.domain.empty() && !(options.allow_larserve_domain && node.domain == "larserve")) {
      return Unimplemented(where + ": " + node.Describe() + " is in domain '" + node.domain +
                           "'; larserve supports the default ONNX domain only");
    }
    for (const auto& a : np.attribute()) {
      auto attr = ConvertAttribute(a, where + ": " + node.Describe());
      if (!attr.ok()) return attr.status();
      node.attrs.emplace(a.name(), std::move(attr).value());
    }
    for (const auto& in : np.input()) node.inputs.push_back(in.empty() ? -1 : value_of(in));
    for (const auto& out : np.output()) node.outputs.push_back(out.empty() ? -1 : value_of(out));
    g.nodes.push_back(std::move(node));
  }
  for (const auto& out : gp.output()) g.outputs.push_back(value_of(out.name()));
  g.RebuildProducers();
  if (Status s = g.Verify(); !s.ok()) return InvalidArgument(where + ": " + s.message());
  return g;
}

}  // namespace larserve::graph
