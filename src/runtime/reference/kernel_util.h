#pragma once
// Internal: input validation shared by the reference kernel files. Every message names the node.
#include <span>
#include <string>
#include <string_view>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/graph/graph.h"

namespace larserve::runtime::ref::internal {

inline Status Invalid(const graph::Node& node, const std::string& what) {
  return InvalidArgument(node.Describe() + ": " + what);
}

// An optional input is omitted when the runtime passes an empty (undefined) Tensor, or none.
inline bool IsPresent(std::span<const Tensor> inputs, std::size_t i) {
  return i < inputs.size() && !inputs[i].empty();
}

// Checks what a kernel relies on before reading a tensor: known dimensions and a buffer.
inline Status CheckTensor(const graph::Node& node, const Tensor& t, std::string_view what) {
  for (int64_t d : t.shape().dims()) {
    if (d < 0) {
      return Invalid(
          node, std::string(what) + " has an unknown dimension in shape " + t.shape().ToString());
    }
  }
  if (t.data() == nullptr && t.num_elements() != 0) {
    return Invalid(node, std::string(what) + " has no data");
  }
  return Status::Ok();
}

inline StatusOr<const Tensor*> Input(const graph::Node& node, std::span<const Tensor> inputs,
                                     std::size_t i, std::string_view what) {
  if (!IsPresent(inputs, i)) return Invalid(node, "missing required input " + std::string(what));
  RETURN_IF_ERROR(CheckTensor(node, inputs[i], "input " + std::string(what)));
  return &inputs[i];
}

// nullptr when the optional input is omitted.
inline StatusOr<const Tensor*> OptionalInput(const graph::Node& node,
                                             std::span<const Tensor> inputs, std::size_t i,
                                             std::string_view what) {
  if (!IsPresent(inputs, i)) return nullptr;
  return Input(node, inputs, i, what);
}

}  // namespace larserve::runtime::ref::internal
