#include "larserve/serve/grpc_server.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "larserve/core/thread_pool.h"
#include "larserve/proto/grpc_service.grpc.pb.h"
#include "larserve/version.h"
#include "protocol_util.h"

namespace larserve::serve {
namespace {

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // larserve's StatusCode values are gRPC's (core/status.h).
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), s.message());
}

// A tensor of the declared type and shape holding typed contents (`values`, of the protobuf
// type), allocated once their count is known to match the shape.
template <typename Dst, typename Values>
StatusOr<Tensor> FromContents(const Values& values, const InputDecl& decl,
                              const std::string& where) {
  if (static_cast<int64_t>(values.size()) != decl.count) {
    return InvalidArgument(where + " has " + std::to_string(values.size()) +
                           " values in its contents, expected " + std::to_string(decl.count) +
                           " for its shape");
  }
  ASSIGN_OR_RETURN(Tensor t, Tensor::Create(decl.dtype, Shape(decl.shape)));
  auto* dst = static_cast<Dst*>(t.data());
  for (int64_t i = 0; i < decl.count; ++i) dst[i] = static_cast<Dst>(values[static_cast<int>(i)]);
  return t;
}

using ParameterMap = google::protobuf::Map<std::string, inference::InferParameter>;

// A non-negative integer parameter, sent as int64 (tritonclient) or uint64.
StatusOr<uint64_t> UIntParameter(const inference::InferParameter& p, const std::string& where,
                                 const char* key) {
  if (p.parameter_choice_case() == inference::InferParameter::kUint64Param) {
    return p.uint64_param();
  }
  if (p.parameter_choice_case() == inference::InferParameter::kInt64Param && p.int64_param() >= 0) {
    return static_cast<uint64_t>(p.int64_param());
  }
  return InvalidArgument(where + ": parameter '" + key + "' must be a non-negative integer");
}

// A tensor's shared memory parameters (system shared memory extension): none without
// "shared_memory_region".
StatusOr<std::optional<SharedMemoryRef>> SharedMemoryParameters(const ParameterMap& params,
                                                                const std::string& where) {
  auto region = params.find("shared_memory_region");
  if (region == params.end()) return std::optional<SharedMemoryRef>();
  if (region->second.parameter_choice_case() != inference::InferParameter::kStringParam) {
    return InvalidArgument(where + ": parameter 'shared_memory_region' must be a string");
  }
  SharedMemoryRef ref;
  ref.region = region->second.string_param();
  auto size = params.find("shared_memory_byte_size");
  if (size == params.end()) {
    return InvalidArgument(where + ": 'shared_memory_region' needs 'shared_memory_byte_size'");
  }
  ASSIGN_OR_RETURN(ref.byte_size, UIntParameter(size->second, where, "shared_memory_byte_size"));
  if (auto offset = params.find("shared_memory_offset"); offset != params.end()) {
    ASSIGN_OR_RETURN(ref.offset, UIntParameter(offset->second, where, "shared_memory_offset"));
  }
  return std::optional<SharedMemoryRef>(std::move(ref));
}

// Input k of a ModelInferRequest as a tensor: datatype, shape and byte count checked, data from
// shared memory, raw_input_contents (the next one, `*raw`) or the typed contents (one source
// only; FP16/BF16 never typed).
StatusOr<Tensor> InputTensor(const inference::ModelInferRequest& req, int k,
                             const std::optional<SharedMemoryRef>& shm, int* raw,
                             const SharedMemoryManager& manager, SharedMemoryUse* use) {
  const auto& in = req.inputs(k);
  const std::string where = InputWhere(req.model_name(), in.name());
  ASSIGN_OR_RETURN(InputDecl decl,
                   CheckInputDecl(where, in.datatype(),
                                  std::vector<int64_t>(in.shape().begin(), in.shape().end())));
  if (shm) {
    if (in.has_contents()) {
      return InvalidArgument(where +
                             " has typed contents and shared memory parameters: use one or the "
                             "other");
    }
    return InputFromSharedMemory(manager, *shm, decl, where, use);
  }
  if (req.raw_input_contents_size() > 0) {
    if (in.has_contents()) {
      return InvalidArgument(where +
                             " has typed contents while the request also carries "
                             "raw_input_contents: use one or the other");
    }
    const std::string& bytes = req.raw_input_contents((*raw)++);
    RETURN_IF_ERROR(CheckInputBytes(where, bytes.size(), decl));
    // No copy: a view of the request's bytes, which the caller keeps alive (and unchanged) until
    // the response is sent. Element-misaligned bytes (not seen from protobuf's heap strings) are
    // copied, as kernels may rely on the alignment of their element type.
    if (decl.bytes > 0 && reinterpret_cast<uintptr_t>(bytes.data()) % DTypeSize(decl.dtype) == 0) {
      return Tensor::View(decl.dtype, Shape(decl.shape), const_cast<char*>(bytes.data()));
    }
    ASSIGN_OR_RETURN(Tensor t, Tensor::Create(decl.dtype, Shape(decl.shape)));
    if (decl.bytes > 0) std::memcpy(t.data(), bytes.data(), decl.bytes);
    return t;
  }
  if (!in.has_contents()) return InvalidArgument(where + " carries no data");
  const auto& c = in.contents();
  switch (decl.dtype) {
    case DType::kFloat32:
      return FromContents<float>(c.fp32_contents(), decl, where);
    case DType::kFloat64:
      return FromContents<double>(c.fp64_contents(), decl, where);
    case DType::kInt8:
      return FromContents<int8_t>(c.int_contents(), decl, where);
    case DType::kInt16:
      return FromContents<int16_t>(c.int_contents(), decl, where);
    case DType::kInt32:
      return FromContents<int32_t>(c.int_contents(), decl, where);
    case DType::kInt64:
      return FromContents<int64_t>(c.int64_contents(), decl, where);
    case DType::kUInt8:
      return FromContents<uint8_t>(c.uint_contents(), decl, where);
    case DType::kUInt16:
      return FromContents<uint16_t>(c.uint_contents(), decl, where);
    case DType::kBool:
      return FromContents<bool>(c.bool_contents(), decl, where);
    default:
      return InvalidArgument(where + ": " + in.datatype() +
                             " data can only be sent as raw_input_contents");
  }
}

// The scheduler's request for a ModelInferRequest. Raw inputs are views of `req`'s bytes and
// inputs in shared memory views of their regions: `req` and `use` (the regions read and written)
// must outlive the scheduler's response callback.
StatusOr<InferRequest> ToInferRequest(const inference::ModelInferRequest& req,
                                      const SharedMemoryManager& manager, SharedMemoryUse* use) {
  InferRequest r;
  r.id = req.id();
  // As Triton: raw_input_contents are for the inputs not in shared memory, one each, in order.
  std::vector<std::optional<SharedMemoryRef>> shm(static_cast<std::size_t>(req.inputs_size()));
  int raw_inputs = 0;
  for (int k = 0; k < req.inputs_size(); ++k) {
    ASSIGN_OR_RETURN(shm[k],
                     SharedMemoryParameters(req.inputs(k).parameters(),
                                            InputWhere(req.model_name(), req.inputs(k).name())));
    if (!shm[k]) ++raw_inputs;
  }
  if (req.raw_input_contents_size() > 0 && req.raw_input_contents_size() != raw_inputs) {
    return InvalidArgument("model '" + req.model_name() +
                           "': " + std::to_string(req.raw_input_contents_size()) +
                           " raw_input_contents for " + std::to_string(raw_inputs) +
                           " inputs; there must be one per input (not counting inputs in "
                           "shared memory), in the order of inputs");
  }
  int raw = 0;
  r.inputs.reserve(static_cast<std::size_t>(req.inputs_size()));
  for (int k = 0; k < req.inputs_size(); ++k) {
    ASSIGN_OR_RETURN(Tensor t, InputTensor(req, k, shm[k], &raw, manager, use));
    r.inputs.push_back({req.inputs(k).name(), std::move(t)});
  }
  for (const auto& o : req.outputs()) {
    r.outputs.push_back(o.name());
    const std::string where = "model '" + req.model_name() + "': output '" + o.name() + "'";
    ASSIGN_OR_RETURN(std::optional<SharedMemoryRef> ref,
                     SharedMemoryParameters(o.parameters(), where));
    if (ref) RETURN_IF_ERROR(BindOutputToSharedMemory(manager, o.name(), *ref, where, use));
  }
  if (auto it = req.parameters().find("timeout"); it != req.parameters().end()) {
    if (it->second.parameter_choice_case() != inference::InferParameter::kInt64Param ||
        it->second.int64_param() < 0) {
      return InvalidArgument("model '" + req.model_name() +
                             "': request parameter 'timeout' must be a non-negative int64 "
                             "(microseconds)");
    }
    r.timeout_us = static_cast<uint64_t>(it->second.int64_param());
  }
  return r;
}

// The response message; outputs bound to shared memory are written there and sent without data
// (an empty raw_output_contents keeps them in step with the outputs, as Triton does).
Status FillResponse(const LoadedModel& model, InferResponse&& out, const SharedMemoryUse* use,
                    inference::ModelInferResponse* resp) {
  resp->set_model_name(model.name);
  resp->set_model_version(std::to_string(model.version));
  resp->set_id(out.id);
  for (NamedTensor& o : out.outputs) {
    auto* t = resp->add_outputs();
    t->set_name(o.name);
    t->set_datatype(std::string(DTypeName(o.tensor.dtype())));
    for (int64_t d : o.tensor.shape().dims()) t->add_shape(d);
    if (use != nullptr) {
      if (auto it = use->outputs.find(o.name); it != use->outputs.end()) {
        RETURN_IF_ERROR(WriteToSharedMemory(o.tensor, it->second,
                                            "model '" + model.name + "': output '" + o.name + "'"));
        auto& params = *t->mutable_parameters();
        params["shared_memory_region"].set_string_param(it->second.ref.region);
        params["shared_memory_byte_size"].set_int64_param(
            static_cast<int64_t>(it->second.ref.byte_size));
        if (it->second.ref.offset != 0) {
          params["shared_memory_offset"].set_int64_param(
              static_cast<int64_t>(it->second.ref.offset));
        }
        resp->add_raw_output_contents();
        continue;
      }
    }
    resp->add_raw_output_contents(static_cast<const char*>(o.tensor.data()), o.tensor.num_bytes());
  }
  return Status::Ok();
}

void FillDuration(const DurationStat& d, inference::StatisticDuration* out) {
  out->set_count(d.count);
  out->set_ns(d.ns);
}

void FillStatistics(const LoadedModel& model, inference::ModelStatistics* out) {
  const ModelStats s = model.scheduler->Stats();
  out->set_name(model.name);
  out->set_version(std::to_string(model.version));
  out->set_last_inference(s.last_inference_ms);
  out->set_inference_count(s.inference_count);
  out->set_execution_count(s.execution_count);
  auto* is = out->mutable_inference_stats();
  FillDuration(s.success, is->mutable_success());
  FillDuration(s.fail, is->mutable_fail());
  FillDuration(s.queue, is->mutable_queue());
  FillDuration(s.compute_input, is->mutable_compute_input());
  FillDuration(s.compute_infer, is->mutable_compute_infer());
  FillDuration(s.compute_output, is->mutable_compute_output());
  FillDuration(s.cache_hit, is->mutable_cache_hit());
  FillDuration(s.cache_miss, is->mutable_cache_miss());
  for (const auto& [size, b] : s.batch_stats) {
    auto* bs = out->add_batch_stats();
    bs->set_batch_size(static_cast<uint64_t>(size));
    FillDuration(b.compute_input, bs->mutable_compute_input());
    FillDuration(b.compute_infer, bs->mutable_compute_infer());
    FillDuration(b.compute_output, bs->mutable_compute_output());
  }
}

// Sends responses for the instances. Sending one (serialising it, gRPC's batch operation, the
// socket write, completion kicks to gRPC's threads) costs tens of microseconds, about as much as
// a one-patch inference: done on the instance thread for every request of a batch, it would hold
// the instance (and leave its intra-op threads spinning) while requests wait. So when requests
// are queued for the model, the response goes to these threads and the instance starts the next
// batch at once; with nothing queued it is sent on the instance thread, saving a thread hand-off
// on the latency of a lone request.
class Responder {
 public:
  Responder(int threads, bool run_inline) : run_inline_(run_inline) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        SetCurrentThreadName("lsv-responder");
        Loop();
      });
    }
  }
  ~Responder() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();  // after the queue is drained
  }

  // Whether a lone small request may run on the gRPC thread that received it.
  bool run_inline() const { return run_inline_; }

  // Runs `send` now when the model's instances have no queued work waiting, else on a
  // responder thread.
  void Send(const Scheduler& scheduler, std::function<void()> send) {
    if (scheduler.Queued() == 0) {
      send();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(send));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      std::function<void()> send = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      send();
      send = nullptr;  // releases what it captured (the model handle) outside the lock
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  const bool run_inline_;
  std::vector<std::thread> threads_;
};

// ModelStreamInfer: requests are read one after the other and handed to their model's
// scheduler; responses are written in the order they complete (each carries its request id),
// one write at a time. The stream ends when the client has finished writing and every response
// has been written.
class StreamReactor : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                     inference::ModelStreamInferResponse> {
 public:
  StreamReactor(ModelRepository* repository, Responder* responder,
                SharedMemoryManager* shared_memory)
      : repository_(repository), responder_(responder), shared_memory_(shared_memory) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard<std::mutex> lock(mu_);
      reading_done_ = true;
      MaybeFinishLocked();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++in_flight_;
    }
    // The message moves out of request_ (the next read fills it again) into a holder that the
    // response callback keeps alive: the scheduler's input tensors are views of its bytes.
    auto held = std::make_shared<inference::ModelInferRequest>();
    held->Swap(&request_);
    auto use = std::make_shared<SharedMemoryUse>();
    auto model = repository_->Get(held->model_name(), held->model_version());
    StatusOr<InferRequest> r = model.ok() ? ToInferRequest(*held, *shared_memory_, use.get())
                                          : StatusOr<InferRequest>(model.status());
    if (!r.ok()) {
      Complete(Error(held->id(), r.status()));
    } else {
      ModelHandle handle = *model;
      handle->scheduler->Enqueue(
          std::move(r).value(),
          [this, handle, held, use](InferResponse out) {
            if (!out.status.ok()) {
              Complete(Error(out.id, out.status));
              return;
            }
            responder_->Send(*handle->scheduler,
                             [this, handle, use, out = std::move(out)]() mutable {
                               inference::ModelStreamInferResponse resp;
                               const std::string id = out.id;
                               Status s = FillResponse(*handle, std::move(out), use.get(),
                                                       resp.mutable_infer_response());
                               Complete(s.ok() ? std::move(resp) : Error(id, s));
                             });
          },
          responder_->run_inline());
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.pop_front();
    if (!queue_.empty()) {
      StartWrite(&queue_.front());
    } else {
      writing_ = false;
      MaybeFinishLocked();
    }
  }

  void OnDone() override { delete this; }

 private:
  static inference::ModelStreamInferResponse Error(const std::string& id, const Status& s) {
    inference::ModelStreamInferResponse resp;
    resp.set_error_message(s.message());
    resp.mutable_infer_response()->set_id(id);
    return resp;
  }

  void Complete(inference::ModelStreamInferResponse resp) {
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    queue_.push_back(std::move(resp));
    if (!writing_) {
      writing_ = true;
      StartWrite(&queue_.front());
    }
  }

  void MaybeFinishLocked() {
    if (reading_done_ && in_flight_ == 0 && !writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  ModelRepository* repository_;
  Responder* responder_;
  SharedMemoryManager* shared_memory_;
  inference::ModelInferRequest request_;
  std::mutex mu_;
  std::deque<inference::ModelStreamInferResponse> queue_;  // front: being written
  int64_t in_flight_ = 0;
  bool writing_ = false;
  bool reading_done_ = false;
  bool finished_ = false;
};

// Every RPC on gRPC's callback API except ModelInfer, which InferQueues serves on completion
// queues (the innermost wrapper, so that its "async" mark comes first: gRPC 1.51 keeps a callback
// handler that was marked before it).
using GS = inference::GRPCInferenceService;
using ServiceBase = GS::WithCallbackMethod_ServerLive<GS::WithCallbackMethod_ServerReady<
    GS::WithCallbackMethod_ModelReady<GS::WithCallbackMethod_ServerMetadata<
        GS::WithCallbackMethod_ModelMetadata<GS::WithCallbackMethod_ModelStreamInfer<
            GS::WithCallbackMethod_ModelConfig<GS::WithCallbackMethod_ModelStatistics<
                GS::WithCallbackMethod_RepositoryIndex<GS::WithCallbackMethod_RepositoryModelLoad<
                    GS::WithCallbackMethod_RepositoryModelUnload<
                        GS::WithCallbackMethod_SystemSharedMemoryStatus<
                            GS::WithCallbackMethod_SystemSharedMemoryRegister<
                                GS::WithCallbackMethod_SystemSharedMemoryUnregister<
                                    GS::WithCallbackMethod_CudaSharedMemoryStatus<
                                        GS::WithCallbackMethod_CudaSharedMemoryRegister<
                                            GS::WithCallbackMethod_CudaSharedMemoryUnregister<
                                                GS::WithCallbackMethod_TraceSetting<
                                                    GS::WithCallbackMethod_LogSettings<
                                                        GS::WithAsyncMethod_ModelInfer<
                                                            GS::Service>>>>>>>>>>>>>>>>>>>>;

class Service final : public ServiceBase {
 public:
  Service(ModelRepository* repository, Responder* responder, SharedMemoryManager* shared_memory)
      : repository_(repository), responder_(responder), shared_memory_(shared_memory) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx,
                                       const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* resp) override {
    resp->set_live(true);
    return Done(ctx, Status::Ok());
  }

  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx,
                                        const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* resp) override {
    resp->set_ready(true);
    return Done(ctx, Status::Ok());
  }

  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx,
                                       const inference::ModelReadyRequest* req,
                                       inference::ModelReadyResponse* resp) override {
    resp->set_ready(repository_->Get(req->name(), req->version()).ok());
    return Done(ctx, Status::Ok());
  }

  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* ctx,
                                           const inference::ServerMetadataRequest*,
                                           inference::ServerMetadataResponse* resp) override {
    resp->set_name(std::string(kServerName));
    resp->set_version(kVersion);
    for (const std::string& e : ServerExtensions()) resp->add_extensions(e);
    return Done(ctx, Status::Ok());
  }

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx,
                                          const inference::ModelMetadataRequest* req,
                                          inference::ModelMetadataResponse* resp) override {
    auto model = repository_->Get(req->name(), req->version());
    if (!model.ok()) return Done(ctx, model.status());
    const LoadedModel& m = **model;
    resp->set_name(m.name);
    for (const ModelHandle& v : repository_->ReadyVersions(m.name)) {
      resp->add_versions(std::to_string(v->version));
    }
    resp->set_platform(ModelPlatform(m));
    auto fill = [](const runtime::TensorSpec& spec,
                   inference::ModelMetadataResponse::TensorMetadata* t) {
      t->set_name(spec.name);
      t->set_datatype(std::string(DTypeName(spec.dtype)));
      for (int64_t d : spec.dims) t->add_shape(d);
    };
    for (const auto& s : m.inputs) fill(s, resp->add_inputs());
    for (const auto& s : m.outputs) fill(s, resp->add_outputs());
    return Done(ctx, Status::Ok());
  }

  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext*) override {
    return new StreamReactor(repository_, responder_, shared_memory_);
  }

  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* ctx,
                                        const inference::ModelConfigRequest* req,
                                        inference::ModelConfigResponse* resp) override {
    auto model = repository_->Get(req->name(), req->version());
    if (!model.ok()) return Done(ctx, model.status());
    resp->mutable_config()->CopyFrom(*(*model)->config);
    return Done(ctx, Status::Ok());
  }

  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* ctx,
                                            const inference::ModelStatisticsRequest* req,
                                            inference::ModelStatisticsResponse* resp) override {
    auto models = StatisticsModels(*repository_, req->name(), req->version());
    if (!models.ok()) return Done(ctx, models.status());
    for (const ModelHandle& m : *models) FillStatistics(*m, resp->add_model_stats());
    return Done(ctx, Status::Ok());
  }

  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* ctx,
                                            const inference::RepositoryIndexRequest* req,
                                            inference::RepositoryIndexResponse* resp) override {
    for (const ModelIndexEntry& e : repository_->Index()) {
      if (req->ready() && e.state != ModelState::kReady) continue;
      auto* m = resp->add_models();
      m->set_name(e.name);
      m->set_version(e.version);
      m->set_state(std::string(ModelStateName(e.state)));
      m->set_reason(e.reason);
    }
    return Done(ctx, Status::Ok());
  }

  grpc::ServerUnaryReactor* RepositoryModelLoad(grpc::CallbackServerContext* ctx,
                                                const inference::RepositoryModelLoadRequest* req,
                                                inference::RepositoryModelLoadResponse*) override {
    if (!req->parameters().empty()) {
      return Done(ctx, Unimplemented("RepositoryModelLoad parameters (config or file overrides) "
                                     "are not supported"));
    }
    // Builds can take seconds: gRPC's callback threads may block here (loads are serialised by
    // the repository, inference continues on other threads).
    return Done(ctx, repository_->Load(req->model_name()));
  }

  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* ctx, const inference::RepositoryModelUnloadRequest* req,
      inference::RepositoryModelUnloadResponse*) override {
    return Done(ctx, repository_->Unload(req->model_name()));
  }

  grpc::ServerUnaryReactor* SystemSharedMemoryStatus(
      grpc::CallbackServerContext* ctx, const inference::SystemSharedMemoryStatusRequest* req,
      inference::SystemSharedMemoryStatusResponse* resp) override {
    auto regions = shared_memory_->Regions(req->name());
    if (!regions.ok()) return Done(ctx, regions.status());
    for (const SharedMemoryRegionInfo& r : *regions) {
      auto& out = (*resp->mutable_regions())[r.name];
      out.set_name(r.name);
      out.set_key(r.key);
      out.set_offset(r.offset);
      out.set_byte_size(r.byte_size);
    }
    return Done(ctx, Status::Ok());
  }

  grpc::ServerUnaryReactor* SystemSharedMemoryRegister(
      grpc::CallbackServerContext* ctx, const inference::SystemSharedMemoryRegisterRequest* req,
      inference::SystemSharedMemoryRegisterResponse*) override {
    return Done(ctx,
                shared_memory_->Register(req->name(), req->key(), req->offset(), req->byte_size()));
  }

  grpc::ServerUnaryReactor* SystemSharedMemoryUnregister(
      grpc::CallbackServerContext* ctx, const inference::SystemSharedMemoryUnregisterRequest* req,
      inference::SystemSharedMemoryUnregisterResponse*) override {
    return Done(ctx, shared_memory_->Unregister(req->name()));
  }

 private:
  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const Status& s) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(ToGrpc(s));
    return reactor;
  }

  ModelRepository* repository_;
  Responder* responder_;
  SharedMemoryManager* shared_memory_;
};

// ModelInfer (unary) on gRPC's completion-queue API: each queue has one thread that takes its
// events (new calls, finished responses) itself. On the callback API a call's event was picked
// up by one of gRPC's threads and handed to another to run the handler: bench/grpc_pingpong's
// bare round trip took 114-144 us that way on the GPU machine's host against 67-75 us on a
// completion queue (docs/perf/server.md). The handler is the same: checks, the model's
// scheduler, the response sent by the instance thread or a responder, Finish's event back here.
class InferQueues {
 public:
  InferQueues(Service* service, ModelRepository* repository, Responder* responder,
              SharedMemoryManager* shared_memory, int threads)
      : service_(service),
        repository_(repository),
        responder_(responder),
        shared_memory_(shared_memory),
        threads_wanted_(threads) {}

  ~InferQueues() { Stop(); }

  // Before the server is built.
  void AddTo(grpc::ServerBuilder& builder) {
    for (int i = 0; i < threads_wanted_; ++i) queues_.push_back(builder.AddCompletionQueue());
  }

  // After the server is built.
  void Start() {
    for (auto& q : queues_) {
      grpc::ServerCompletionQueue* cq = q.get();
      for (int k = 0; k < kExpected; ++k) Expect(cq);
      threads_.emplace_back([this, cq] {
        SetCurrentThreadName("lsv-grpc-infer");
        Loop(cq);
      });
    }
  }

  // After the server's Shutdown returned. Calls still with their model (the client may have
  // gone) are answered first, since their response needs the queue; then the queues drain and
  // their threads end. The queues themselves are destroyed with this object, after the server
  // (GrpcServer::Impl's order), which holds references to them until it is destroyed.
  void Stop() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      answered_.wait(lock, [this] { return unanswered_ == 0; });
    }
    if (stopped_) return;
    stopped_ = true;
    for (auto& q : queues_) q->Shutdown();
    for (auto& t : threads_) t.join();
    if (threads_.empty()) {  // never started (the server was not built): drain them here
      void* tag = nullptr;
      bool ok = false;
      for (auto& q : queues_) {
        while (q->Next(&tag, &ok)) delete static_cast<Call*>(tag);
      }
    }
    threads_.clear();
  }

 private:
  static constexpr int kExpected = 8;  // calls each queue is ready to take at once

  struct Call {
    grpc::ServerContext ctx;
    inference::ModelInferRequest request;  // the scheduler's input tensors are views of it
    inference::ModelInferResponse response;
    grpc::ServerAsyncResponseWriter<inference::ModelInferResponse> writer{&ctx};
    bool finishing = false;  // the next event is Finish's
  };

  void Expect(grpc::ServerCompletionQueue* cq) {
    auto* call = new Call;
    service_->RequestModelInfer(&call->ctx, &call->request, &call->writer, cq, cq, call);
  }

  void Loop(grpc::ServerCompletionQueue* cq) {
    void* tag = nullptr;
    bool ok = false;
    while (cq->Next(&tag, &ok)) {
      auto* call = static_cast<Call*>(tag);
      if (call->finishing || !ok) {  // sent (or the client left), or the server is stopping
        delete call;
        continue;
      }
      Expect(cq);
      Handle(call);
    }
  }

  static void Fail(Call* call, const Status& s) {
    call->finishing = true;
    call->writer.FinishWithError(ToGrpc(s), call);
  }

  void Handle(Call* call) {
    auto model = repository_->Get(call->request.model_name(), call->request.model_version());
    if (!model.ok()) return Fail(call, model.status());
    SharedMemoryUse use;
    auto r = ToInferRequest(call->request, *shared_memory_, &use);
    if (!r.ok()) return Fail(call, r.status());
    ModelHandle handle = *model;  // keeps the model alive until the response is sent
    Responder* responder = responder_;
    // Only requests using shared memory pay for holding it.
    std::shared_ptr<const SharedMemoryUse> held;
    if (!use.inputs.empty() || !use.outputs.empty()) {
      held = std::make_shared<const SharedMemoryUse>(std::move(use));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++unanswered_;
    }
    handle->scheduler->Enqueue(
        std::move(r).value(),
        [this, call, handle, responder, held](InferResponse out) {
          if (!out.status.ok()) {
            Fail(call, out.status);
            return Answered();
          }
          responder->Send(
              *handle->scheduler, [this, call, handle, held, out = std::move(out)]() mutable {
                const Status s = FillResponse(*handle, std::move(out), held.get(), &call->response);
                if (s.ok()) {
                  call->finishing = true;
                  call->writer.Finish(call->response, grpc::Status::OK, call);
                } else {
                  Fail(call, s);
                }
                Answered();
              });
        },
        responder->run_inline());
  }

  void Answered() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--unanswered_ == 0) answered_.notify_all();
  }

  Service* service_;
  ModelRepository* repository_;
  Responder* responder_;
  SharedMemoryManager* shared_memory_;
  const int threads_wanted_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable answered_;
  int64_t unanswered_ = 0;  // calls handed to a scheduler whose Finish is not started yet
  bool stopped_ = false;
};

}  // namespace

struct GrpcServer::Impl {
  // Destroyed last: the server's Shutdown waits for the responses it sends.
  std::unique_ptr<Responder> responder;
  std::shared_ptr<SharedMemoryManager> shared_memory;
  std::unique_ptr<Service> service;
  // Stopped after the server's Shutdown, destroyed after the server (which refers to its queues).
  std::unique_ptr<InferQueues> infer_queues;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  bool stopped = false;
  std::chrono::milliseconds exit_timeout{0};
};

StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(ModelRepository* repository,
                                                        const GrpcServerOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return InvalidArgument("gRPC port " + std::to_string(options.port) + " is out of range");
  }
  if (options.max_message_bytes <= 0) {
    return InvalidArgument("the maximum gRPC message size must be positive");
  }
  std::unique_ptr<GrpcServer> s(new GrpcServer());
  s->impl_ = std::make_unique<Impl>();
  s->impl_->exit_timeout = std::max(std::chrono::milliseconds(0), options.exit_timeout);
  // A quarter of the cores (at least one) send responses when the instances are busy.
  s->impl_->responder = std::make_unique<Responder>(
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency() / 4)), options.run_inline);
  s->impl_->shared_memory =
      options.shared_memory ? options.shared_memory : std::make_shared<SharedMemoryManager>();
  s->impl_->service = std::make_unique<Service>(repository, s->impl_->responder.get(),
                                                s->impl_->shared_memory.get());
  grpc::ServerBuilder builder;
  const std::string address = options.host.find(':') != std::string::npos
                                  ? "[" + options.host + "]:" + std::to_string(options.port)
                                  : options.host + ":" + std::to_string(options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &s->impl_->port);
  // gRPC sets SO_REUSEPORT by default: a second server on a port in use would bind it too and
  // silently take part of its connections. One server per port, as HTTP's.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(s->impl_->service.get());
  // As many ModelInfer queues (and threads) as responders: a quarter of the cores, at least one.
  s->impl_->infer_queues = std::make_unique<InferQueues>(
      s->impl_->service.get(), repository, s->impl_->responder.get(), s->impl_->shared_memory.get(),
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency() / 4)));
  s->impl_->infer_queues->AddTo(builder);
  s->impl_->server = builder.BuildAndStart();
  if (!s->impl_->server || s->impl_->port == 0) {
    return Unavailable("cannot serve gRPC on " + address +
                       " (address in use, or not an address of this machine)");
  }
  s->impl_->infer_queues->Start();
  return s;
}

GrpcServer::~GrpcServer() {
  if (impl_) Shutdown();
}

int GrpcServer::port() const { return impl_->port; }

void GrpcServer::Shutdown() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  if (!impl_->server) return;  // Start failed
  // After the deadline gRPC cancels what is still open (a client's idle stream would otherwise
  // hold the server forever); answers for cancelled calls still in a scheduler are then dropped.
  impl_->server->Shutdown(std::chrono::system_clock::now() + impl_->exit_timeout);
  impl_->infer_queues->Stop();
  impl_->server->Wait();
}

}  // namespace larserve::serve
