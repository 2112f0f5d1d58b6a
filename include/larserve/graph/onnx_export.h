#pragma once
// Graph IR -> ONNX ModelProto bytes. Fused ops of ours keep their domain ("larserve"), so an
// exported optimised graph is inspectable with ONNX tools and can be imported back by larserve
// (ImportOnnxBytes with run_checker = false, since the checker does not know our domain).
#include <string>

#include "larserve/core/status.h"
#include "larserve/graph/graph.h"

namespace larserve::graph {

StatusOr<std::string> ExportOnnxBytes(const Graph& g);

}  // namespace larserve::graph
