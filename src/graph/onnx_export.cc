#include "larserve/graph/onnx_export.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <set>

#include "larserve/graph/onnx_import.h"

namespace larserve::graph {
namespace {

void FillTensor(const Tensor& t, const std::string& name, onnx::TensorProto* tp) {
  tp->set_name(name);
  tp->set_data_type(OnnxTypeFromDType(t.dtype()));
  for (int64_t d : t.shape().dims()) tp->add_dims(d);
  tp->set_raw_data(std::string(static_cast<const char*>(t.data()), t.num_bytes()));
}

void FillValueInfo(const Value& v, onnx::ValueInfoProto* vi) {
  vi->set_name(v.name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(OnnxTypeFromDType(v.dtype));
  if (!v.has_shape) return;
  auto* shape = tt->mutable_shape();
  for (int64_t d : v.dims) {
    auto* dim = shape->add_dim();
    if (d >= 0) {
      dim->set_dim_value(d);
    } else {
      dim->set_dim_param("N");
    }
  }
}

}  // namespace

StatusOr<std::string> ExportOnnxBytes(const Graph& g) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.set_producer_name("larserve");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(g.opset);
  std::set<std::string> domains;
  for (const auto& n : g.nodes) {
    if (!n.domain.empty()) domains.insert(n.domain);
  }
  for (const auto& d : domains) {
    auto* o = model.add_opset_import();
    o->set_domain(d);
    o->set_version(1);
  }
  onnx::GraphProto* gp = model.mutable_graph();
  gp->set_name(g.name.empty() ? "larserve" : g.name);
  for (std::size_t v = 0; v < g.values.size(); ++v) {
    if (g.values[v].constant)
      FillTensor(*g.values[v].constant, g.values[v].name, gp->add_initializer());
  }
  for (int i : g.inputs) FillValueInfo(g.values[i], gp->add_input());
  for (int o : g.outputs) FillValueInfo(g.values[o], gp->add_output());
  for (std::size_t v = 0; v < g.values.size(); ++v) {
    const Value& val = g.values[v];
    if (!val.constant && val.producer >= 0 && val.has_shape)
      FillValueInfo(val, gp->add_value_info());
  }
  for (const auto& n : g.nodes) {
    onnx::NodeProto* np = gp->add_node();
    np->set_name(n.name);
    np->set_op_type(n.op_type);
    np->set_domain(n.domain);
    for (int i : n.inputs) np->add_input(i >= 0 ? g.values[i].name : "");
    for (int o : n.outputs) np->add_output(o >= 0 ? g.values[o].name : "");
    for (const auto& [key, a] : n.attrs) {
      onnx::AttributeProto* ap = np->add_attribute();
      ap->set_name(key);
      switch (a.kind) {
        case Attribute::Kind::kInt:
          ap->set_type(onnx::AttributeProto::INT);
          ap->set_i(a.i);
          break;
        case Attribute::Kind::kFloat:
          ap->set_type(onnx::AttributeProto::FLOAT);
          ap->set_f(a.f);
          break;
        case Attribute::Kind::kString:
          ap->set_type(onnx::AttributeProto::STRING);
          ap->set_s(a.s);
          break;
        case Attribute::Kind::kInts:
          ap->set_type(onnx::AttributeProto::INTS);
          for (int64_t x : a.ints) ap->add_ints(x);
          break;
        case Attribute::Kind::kFloats:
          ap->set_type(onnx::AttributeProto::FLOATS);
          for (float x : a.floats) ap->add_floats(x);
          break;
        case Attribute::Kind::kStrings:
          ap->set_type(onnx::AttributeProto::STRINGS);
          for (const auto& x : a.strings) ap->add_strings(x);
          break;
        case Attribute::Kind::kTensor:
          ap->set_type(onnx::AttributeProto::TENSOR);
          FillTensor(a.t, "", ap->mutable_t());
          break;
      }
    }
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes))
    return Internal("cannot serialise the graph to ONNX (is it over 2 GiB?)");
  return bytes;
}

}  // namespace larserve::graph
