#include "larserve/graph/graph.h"

#include <set>

namespace larserve::graph {

int64_t Node::GetInt(std::string_view key, int64_t fallback) const {
  auto it = attrs.find(std::string(key));
  return it == attrs.end() ? fallback : it->second.i;
}
float Node::GetFloat(std::string_view key, float fallback) const {
  auto it = attrs.find(std::string(key));
  return it == attrs.end() ? fallback : it->second.f;
}
std::string Node::GetString(std::string_view key, std::string_view fallback) const {
  auto it = attrs.find(std::string(key));
  return it == attrs.end() ? std::string(fallback) : it->second.s;
}
std::vector<int64_t> Node::GetInts(std::string_view key, std::vector<int64_t> fallback) const {
  auto it = attrs.find(std::string(key));
  return it == attrs.end() ? fallback : it->second.ints;
}
std::vector<float> Node::GetFloats(std::string_view key, std::vector<float> fallback) const {
  auto it = attrs.find(std::string(key));
  return it == attrs.end() ? fallback : it->second.floats;
}
const Tensor* Node::GetTensor(std::string_view key) const {
  auto it = attrs.find(std::string(key));
  return it == attrs.end() || it->second.kind != Attribute::Kind::kTensor ? nullptr : &it->second.t;
}

int Graph::AddValue(Value v) {
  values.push_back(std::move(v));
  return static_cast<int>(values.size()) - 1;
}

int Graph::FindValue(std::string_view n) const {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i].name == n) return static_cast<int>(i);
  }
  return -1;
}

void Graph::RebuildProducers() {
  for (auto& v : values) v.producer = -1;
  for (std::size_t n = 0; n < nodes.size(); ++n) {
    for (int o : nodes[n].outputs) {
      if (o >= 0) values[o].producer = static_cast<int>(n);
    }
  }
}

std::vector<std::vector<int>> Graph::Consumers() const {
  std::vector<std::vector<int>> out(values.size());
  for (std::size_t n = 0; n < nodes.size(); ++n) {
    for (int i : nodes[n].inputs) {
      if (i >= 0) out[i].push_back(static_cast<int>(n));
    }
  }
  return out;
}

Status Graph::Verify() const {
  const int nv = static_cast<int>(values.size());
  std::vector<int> produced_by(values.size(), -1);
  std::vector<bool> available(values.size(), false);
  for (int i : inputs) {
    if (i < 0 || i >= nv) return Internal("graph input index out of range");
    available[i] = true;
  }
  for (int v = 0; v < nv; ++v) {
    if (values[v].constant) available[v] = true;
  }
  std::set<std::string> names;
  for (std::size_t n = 0; n < nodes.size(); ++n) {
    const Node& node = nodes[n];
    if (!names.insert(node.name).second) return Internal("duplicate node name: " + node.Describe());
    for (int i : node.inputs) {
      if (i < -1 || i >= nv) return Internal(node.Describe() + ": input index out of range");
      if (i >= 0 && !available[i]) {
        return Internal(node.Describe() + ": input '" + values[i].name +
                        "' is not produced before it is used (graph not in topological order)");
      }
    }
    for (int o : node.outputs) {
      if (o < -1 || o >= nv) return Internal(node.Describe() + ": output index out of range");
      if (o < 0) continue;
      if (produced_by[o] >= 0 || values[o].constant) {
        return Internal(node.Describe() + ": output '" + values[o].name + "' is assigned twice");
      }
      produced_by[o] = static_cast<int>(n);
      available[o] = true;
    }
  }
  for (int o : outputs) {
    if (o < 0 || o >= nv || !available[o]) return Internal("graph output is never produced");
  }
  return Status::Ok();
}

}  // namespace larserve::graph
