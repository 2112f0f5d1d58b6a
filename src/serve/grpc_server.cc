#include "larserve/serve/grpc_server.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>

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

// Input k of a ModelInferRequest as a tensor: datatype, shape and byte count checked, data
// from raw_input_contents or from the typed contents (never both, FP16/BF16 only raw).
StatusOr<Tensor> InputTensor(const inference::ModelInferRequest& req, int k) {
  const auto& in = req.inputs(k);
  const std::string where = InputWhere(req.model_name(), in.name());
  ASSIGN_OR_RETURN(InputDecl decl,
                   CheckInputDecl(where, in.datatype(),
                                  std::vector<int64_t>(in.shape().begin(), in.shape().end())));
  if (req.raw_input_contents_size() > 0) {
    if (in.has_contents()) {
      return InvalidArgument(where +
                             " has typed contents while the request also carries "
                             "raw_input_contents: use one or the other");
    }
    if (req.raw_input_contents_size() != req.inputs_size()) {
      return InvalidArgument("model '" + req.model_name() +
                             "': " + std::to_string(req.raw_input_contents_size()) +
                             " raw_input_contents for " + std::to_string(req.inputs_size()) +
                             " inputs; there must be one per input, in the order of inputs");
    }
    const std::string& raw = req.raw_input_contents(k);
    RETURN_IF_ERROR(CheckInputBytes(where, raw.size(), decl));
    ASSIGN_OR_RETURN(Tensor t, Tensor::Create(decl.dtype, Shape(decl.shape)));
    if (decl.bytes > 0) std::memcpy(t.data(), raw.data(), decl.bytes);
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

// The scheduler's request for a ModelInferRequest.
StatusOr<InferRequest> ToInferRequest(const inference::ModelInferRequest& req) {
  InferRequest r;
  r.id = req.id();
  for (int k = 0; k < req.inputs_size(); ++k) {
    ASSIGN_OR_RETURN(Tensor t, InputTensor(req, k));
    r.inputs.push_back({req.inputs(k).name(), std::move(t)});
  }
  for (const auto& o : req.outputs()) r.outputs.push_back(o.name());
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

void FillResponse(const LoadedModel& model, InferResponse&& out,
                  inference::ModelInferResponse* resp) {
  resp->set_model_name(model.name);
  resp->set_model_version(std::to_string(model.version));
  resp->set_id(out.id);
  for (NamedTensor& o : out.outputs) {
    auto* t = resp->add_outputs();
    t->set_name(o.name);
    t->set_datatype(std::string(DTypeName(o.tensor.dtype())));
    for (int64_t d : o.tensor.shape().dims()) t->add_shape(d);
    resp->add_raw_output_contents(static_cast<const char*>(o.tensor.data()), o.tensor.num_bytes());
  }
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

// ModelStreamInfer: requests are read one after the other and handed to their model's
// scheduler; responses are written in the order they complete (each carries its request id),
// one write at a time. The stream ends when the client has finished writing and every response
// has been written.
class StreamReactor : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                     inference::ModelStreamInferResponse> {
 public:
  explicit StreamReactor(ModelRepository* repository) : repository_(repository) {
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
    auto model = repository_->Get(request_.model_name(), request_.model_version());
    StatusOr<InferRequest> r =
        model.ok() ? ToInferRequest(request_) : StatusOr<InferRequest>(model.status());
    if (!r.ok()) {
      Complete(Error(request_.id(), r.status()));
    } else {
      ModelHandle handle = *model;
      handle->scheduler->Enqueue(std::move(r).value(), [this, handle](InferResponse out) {
        if (!out.status.ok()) {
          Complete(Error(out.id, out.status));
          return;
        }
        inference::ModelStreamInferResponse resp;
        FillResponse(*handle, std::move(out), resp.mutable_infer_response());
        Complete(std::move(resp));
      });
    }
    StartRead(&request_);  // request_ was copied into the scheduler's request above
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
  inference::ModelInferRequest request_;
  std::mutex mu_;
  std::deque<inference::ModelStreamInferResponse> queue_;  // front: being written
  int64_t in_flight_ = 0;
  bool writing_ = false;
  bool reading_done_ = false;
  bool finished_ = false;
};

class Service final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit Service(ModelRepository* repository) : repository_(repository) {}

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

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx,
                                       const inference::ModelInferRequest* req,
                                       inference::ModelInferResponse* resp) override {
    auto model = repository_->Get(req->model_name(), req->model_version());
    if (!model.ok()) return Done(ctx, model.status());
    auto r = ToInferRequest(*req);
    if (!r.ok()) return Done(ctx, r.status());
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    ModelHandle handle = *model;  // keeps the model alive until the response is sent
    handle->scheduler->Enqueue(std::move(r).value(), [reactor, resp, handle](InferResponse out) {
      if (!out.status.ok()) {
        reactor->Finish(ToGrpc(out.status));
        return;
      }
      FillResponse(*handle, std::move(out), resp);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext*) override {
    return new StreamReactor(repository_);
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

 private:
  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const Status& s) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(ToGrpc(s));
    return reactor;
  }

  ModelRepository* repository_;
};

}  // namespace

struct GrpcServer::Impl {
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  bool stopped = false;
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
  s->impl_->service = std::make_unique<Service>(repository);
  grpc::ServerBuilder builder;
  const std::string address = options.host.find(':') != std::string::npos
                                  ? "[" + options.host + "]:" + std::to_string(options.port)
                                  : options.host + ":" + std::to_string(options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &s->impl_->port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(s->impl_->service.get());
  s->impl_->server = builder.BuildAndStart();
  if (!s->impl_->server || s->impl_->port == 0) {
    return Unavailable("cannot serve gRPC on " + address +
                       " (address in use, or not an address of this machine)");
  }
  return s;
}

GrpcServer::~GrpcServer() {
  if (impl_) Shutdown();
}

int GrpcServer::port() const { return impl_->port; }

void GrpcServer::Shutdown() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->server->Shutdown();
  impl_->server->Wait();
}

}  // namespace larserve::serve
