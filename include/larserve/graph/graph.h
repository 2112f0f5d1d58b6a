#pragma once
// The graph IR: a model as values (tensors) and nodes (ops) in SSA form, imported from ONNX.
//
// Values are referred to by index. A value is produced by at most one node, or is a graph
// input, or is a constant (initializer) with its data. Nodes are kept in a topological order
// (Graph::Verify checks it). Op semantics follow ONNX (op_type and attribute names are ONNX's);
// the opset version of the default domain is recorded so that version-dependent semantics can be
// honoured. Not synchronised: a Graph is built and rewritten by one thread, then shared read-only.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"

namespace larserve::graph {

struct Attribute {
  enum class Kind : uint8_t { kInt, kFloat, kString, kInts, kFloats, kStrings, kTensor };
  Kind kind = Kind::kInt;
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;
  Tensor t;
};

struct Value {
  std::string name;
  DType dtype = DType::kFloat32;
  // Dimensions; -1 = unknown or symbolic (the batch dimension, usually). Rank unknown if
  // !has_shape.
  std::vector<int64_t> dims;
  bool has_shape = false;
  std::optional<Tensor> constant;  // initializers and folded constants
  int producer = -1;               // node index, -1 for inputs and constants
};

struct Node {
  std::string name;          // unique within the graph (made unique on import if empty)
  std::string op_type;       // ONNX op type, or a fused op of ours ("larserve.ConvAct", ...)
  std::string domain;        // "" for the ONNX default domain
  std::vector<int> inputs;   // value indices; -1 for an omitted optional input
  std::vector<int> outputs;  // value indices; -1 for an omitted optional output
  std::map<std::string, Attribute> attrs;

  bool Has(std::string_view key) const { return attrs.count(std::string(key)) != 0; }
  int64_t GetInt(std::string_view key, int64_t fallback) const;
  float GetFloat(std::string_view key, float fallback) const;
  std::string GetString(std::string_view key, std::string_view fallback) const;
  std::vector<int64_t> GetInts(std::string_view key, std::vector<int64_t> fallback = {}) const;
  std::vector<float> GetFloats(std::string_view key, std::vector<float> fallback = {}) const;
  const Tensor* GetTensor(std::string_view key) const;
  // "'name' (OpType)": how errors name a node.
  std::string Describe() const { return "node '" + name + "' (" + op_type + ")"; }
};

class Graph {
 public:
  std::string name;
  int64_t opset = 0;  // default-domain opset version
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<int> inputs;  // graph inputs (not constants)
  std::vector<int> outputs;

  int AddValue(Value v);
  int FindValue(std::string_view name) const;  // -1 if absent
  // Checks SSA form, index ranges and topological order; message names the offending node.
  Status Verify() const;
  // Recomputes Value::producer from the nodes.
  void RebuildProducers();
  // Per value: the nodes that consume it (in node order).
  std::vector<std::vector<int>> Consumers() const;
  bool IsConstant(int value) const { return value >= 0 && values[value].constant.has_value(); }
};

}  // namespace larserve::graph
