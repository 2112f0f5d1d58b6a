#include "protocol_util.h"

#include <cstring>
#include <limits>

namespace larserve::serve {

std::vector<std::string> ServerExtensions() {
  return {"model_repository", "model_configuration", "statistics", "system_shared_memory"};
}

std::string ModelPlatform(const LoadedModel& model) {
  return model.config->platform().empty() ? model.config->backend() : model.config->platform();
}

StatusOr<std::vector<ModelHandle>> StatisticsModels(const ModelRepository& repository,
                                                    std::string_view name,
                                                    std::string_view version) {
  if (name.empty()) return repository.AllReady();
  if (version.empty()) {
    std::vector<ModelHandle> models = repository.ReadyVersions(name);
    if (!models.empty()) return models;
    auto m = repository.Get(name, version);
    if (!m.ok()) return m.status();
    return std::vector<ModelHandle>{*m};
  }
  auto m = repository.Get(name, version);
  if (!m.ok()) return m.status();
  return std::vector<ModelHandle>{*m};
}

std::string InputWhere(std::string_view model, std::string_view input) {
  return "model '" + std::string(model) + "': input '" + std::string(input) + "'";
}

StatusOr<InputDecl> CheckInputDecl(const std::string& where, std::string_view datatype,
                                   std::vector<int64_t> shape) {
  auto dtype = DTypeFromName(datatype);
  if (!dtype.ok()) {
    return InvalidArgument(where + " has unsupported datatype '" + std::string(datatype) + "'");
  }
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument(where + " has a negative dimension in its shape");
    if (d > 0 && count > std::numeric_limits<int64_t>::max() / 16 / d) {
      return InvalidArgument(where + " has an implausibly large shape");
    }
    count *= d;
  }
  InputDecl decl;
  decl.dtype = *dtype;
  decl.shape = std::move(shape);
  decl.count = count;
  decl.bytes = static_cast<std::size_t>(count) * DTypeSize(*dtype);
  return decl;
}

Status CheckInputBytes(const std::string& where, std::size_t bytes, const InputDecl& decl) {
  if (bytes == decl.bytes) return Status::Ok();
  return InvalidArgument(where + " has " + std::to_string(bytes) + " bytes, expected " +
                         std::to_string(decl.bytes) + " for shape " + Shape(decl.shape).ToString() +
                         " " + std::string(DTypeName(decl.dtype)));
}

StatusOr<Tensor> InputFromSharedMemory(const SharedMemoryManager& manager,
                                       const SharedMemoryRef& ref, const InputDecl& decl,
                                       const std::string& where, SharedMemoryUse* use) {
  if (ref.byte_size != decl.bytes) {
    return InvalidArgument(where + " has shared_memory_byte_size " + std::to_string(ref.byte_size) +
                           ", expected " + std::to_string(decl.bytes) + " for shape " +
                           Shape(decl.shape).ToString() + " " + std::string(DTypeName(decl.dtype)));
  }
  ASSIGN_OR_RETURN(SharedMemoryBlock block, manager.Get(ref, where));
  use->inputs.push_back(block.region);
  if (decl.bytes > 0 && reinterpret_cast<uintptr_t>(block.data) % DTypeSize(decl.dtype) == 0) {
    return Tensor::View(decl.dtype, Shape(decl.shape), block.data);
  }
  ASSIGN_OR_RETURN(Tensor t, Tensor::Create(decl.dtype, Shape(decl.shape)));
  if (decl.bytes > 0) std::memcpy(t.data(), block.data, decl.bytes);
  return t;
}

Status BindOutputToSharedMemory(const SharedMemoryManager& manager, const std::string& output,
                                const SharedMemoryRef& ref, const std::string& where,
                                SharedMemoryUse* use) {
  ASSIGN_OR_RETURN(SharedMemoryBlock block, manager.Get(ref, where));
  use->outputs[output] = {ref, std::move(block)};
  return Status::Ok();
}

Status WriteToSharedMemory(const Tensor& tensor, const SharedMemoryUse::Output& out,
                           const std::string& where) {
  if (tensor.num_bytes() > out.block.byte_size) {
    return InvalidArgument(where + ": shared_memory_byte_size " +
                           std::to_string(out.block.byte_size) + " of region '" + out.ref.region +
                           "' is too small for the result, " + tensor.shape().ToString() + " " +
                           std::string(DTypeName(tensor.dtype())) + " (" +
                           std::to_string(tensor.num_bytes()) + " bytes)");
  }
  if (tensor.num_bytes() > 0) std::memcpy(out.block.data, tensor.data(), tensor.num_bytes());
  return Status::Ok();
}

}  // namespace larserve::serve
