#pragma once
// ONNX import through Debian's libonnx: parse (bounded size), onnx::checker, shape inference,
// then conversion into the graph IR. Models of the default domain at opsets 11-17 are accepted.
// Everything wrong with a model is reported with the node name and op type (or the
// initializer / value name) it concerns; nothing is silently dropped.
#include <cstddef>
#include <string>
#include <string_view>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"

namespace larserve::graph {

inline constexpr int64_t kMinOpset = 11;
inline constexpr int64_t kMaxOpset = 17;

struct ImportOptions {
  std::size_t max_bytes = std::size_t{1} << 31;  // protobuf's own limit is 2 GiB
  bool run_checker = true;
  bool infer_shapes = true;
  // Accept opsets below kMinOpset (the conformance suite has some); semantics are ONNX's for
  // the recorded opset as far as the kernels implement them.
  bool allow_old_opsets = false;
  // Accept our own fused ops (domain "larserve"): set when loading the graph stored in a plan.
  bool allow_larserve_domain = false;
};

StatusOr<Graph> ImportOnnxFile(const std::string& path, const ImportOptions& options = {});
StatusOr<Graph> ImportOnnxBytes(std::string_view bytes, const std::string& origin,
                                const ImportOptions& options = {});

// A serialised onnx.TensorProto (the conformance suite's input_K.pb / output_K.pb).
StatusOr<Tensor> ReadTensorProtoFile(const std::string& path);

// ONNX TensorProto.DataType <-> DType.
StatusOr<DType> DTypeFromOnnx(int onnx_type);
int OnnxTypeFromDType(DType dtype);

}  // namespace larserve::graph
