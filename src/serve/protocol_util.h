#pragma once
// What the gRPC and HTTP frontends share (private to src/serve): the KServe v2 answers that do
// not depend on the transport, so that both frontends say the same thing in the same words.
//
// Thread-safety: free functions; the repository's own guarantees apply (model_repository.h).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"
#include "larserve/serve/model_repository.h"
#include "larserve/serve/shared_memory.h"

namespace larserve::serve {

// ServerMetadata: name and the protocol extensions both frontends support.
inline constexpr std::string_view kServerName = "larserve";
std::vector<std::string> ServerExtensions();

// ModelMetadata's platform: the config's platform, else its backend.
std::string ModelPlatform(const LoadedModel& model);

// The model versions ModelStatistics reports for (name, version), as Triton: every ready version
// of every model for an empty name, every ready version of the model for an empty version (an
// error from Get when there is none), else that version.
StatusOr<std::vector<ModelHandle>> StatisticsModels(const ModelRepository& repository,
                                                    std::string_view name,
                                                    std::string_view version);

// "model 'm': input 'x'": how request errors name what they are about.
std::string InputWhere(std::string_view model, std::string_view input);

// A request input as declared (datatype and shape), checked: the datatype is known, no
// dimension is negative and the byte count does not overflow. Nothing is allocated yet, so that
// the data received can be checked against it first (a small request declaring a huge shape
// must not make the server allocate that much). Errors are INVALID_ARGUMENT and start with
// `where`.
struct InputDecl {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  int64_t count = 0;      // elements
  std::size_t bytes = 0;  // count * DTypeSize(dtype)
};
StatusOr<InputDecl> CheckInputDecl(const std::string& where, std::string_view datatype,
                                   std::vector<int64_t> shape);

// INVALID_ARGUMENT unless `bytes` is the declared byte size: "where has N bytes, expected M for
// shape [..] FP32".
Status CheckInputBytes(const std::string& where, std::size_t bytes, const InputDecl& decl);

// Shared memory (shared_memory.h) a request reads or writes; kept by the frontend until the
// response is sent, so that the regions stay mapped even if unregistered meanwhile.
struct SharedMemoryUse {
  std::vector<std::shared_ptr<const SharedMemoryRegion>> inputs;
  struct Output {
    SharedMemoryRef ref;
    SharedMemoryBlock block;
  };
  std::map<std::string, Output, std::less<>> outputs;  // by output name
};

// An input read from shared memory: `ref` must name a registered region, lie within it and hold
// exactly the declared bytes. A view of the region where it is aligned for the type (else a
// copy); the region is added to `use->inputs`.
StatusOr<Tensor> InputFromSharedMemory(const SharedMemoryManager& manager,
                                       const SharedMemoryRef& ref, const InputDecl& decl,
                                       const std::string& where, SharedMemoryUse* use);

// A requested output to be written to shared memory, checked now (before inference) and added
// to `use->outputs`.
Status BindOutputToSharedMemory(const SharedMemoryManager& manager, const std::string& output,
                                const SharedMemoryRef& ref, const std::string& where,
                                SharedMemoryUse* use);

// Writes an output into its block; INVALID_ARGUMENT if the block is smaller than the tensor.
Status WriteToSharedMemory(const Tensor& tensor, const SharedMemoryUse::Output& out,
                           const std::string& where);

}  // namespace larserve::serve
