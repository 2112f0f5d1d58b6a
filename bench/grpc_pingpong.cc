// grpc_pingpong: the round-trip floor of this machine's gRPC, with no model, scheduler or request
// checking behind it (docs/perf/server.md: what one-patch latency can reach at best).
//
//   build/cpu-release/bench/grpc_pingpong [--bytes 9216] [--seconds 3] [--mode unary|stream|both]
//                                         [--server callback|cq|cq-spin]
//
// The process forks before gRPC starts. The parent serves inference.GRPCInferenceService's
// ModelInfer and ModelStreamInfer with gRPC's callback API, as `larserve serve` does, answering
// every request at once on gRPC's own thread with a fixed one-output response (4 floats, the size
// of one patch's scores); the child is the client, on the generated synchronous stub (as
// tritonclient's C++ client inside perf_analyzer is): ModelInferRequests of one FP32 input
// carrying --bytes of raw_input_contents (9,216 = one 48x48 patch), back to back over loopback
// TCP, one channel. Unary: one ModelInfer call per request. Stream: one ModelStreamInfer stream,
// a write and a read per request. After 200 unmeasured round trips, for --seconds each. Prints
// one JSON line per mode: requests, p50/p90/p99/min in microseconds.
// --server cq serves both on the completion-queue API instead, one thread blocking in Next;
// cq-spin has that thread poll the queue without ever sleeping (one core spent on it).
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "larserve/proto/grpc_service.grpc.pb.h"

namespace {

inference::ModelInferResponse Answer(const inference::ModelInferRequest& req) {
  inference::ModelInferResponse resp;
  resp.set_model_name(req.model_name());
  resp.set_model_version("1");
  resp.set_id(req.id());
  auto* out = resp.add_outputs();
  out->set_name("scores");
  out->set_datatype("FP32");
  out->add_shape(1);
  out->add_shape(4);
  resp.add_raw_output_contents(std::string(16, '\0'));
  return resp;
}

class Echo final : public inference::GRPCInferenceService::CallbackService {
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx,
                                       const inference::ModelInferRequest* req,
                                       inference::ModelInferResponse* resp) override {
    *resp = Answer(*req);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  class Stream : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                inference::ModelStreamInferResponse> {
   public:
    Stream() { StartRead(&req_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      *resp_.mutable_infer_response() = Answer(req_);
      StartWrite(&resp_);
    }
    void OnWriteDone(bool ok) override {
      if (ok) {
        StartRead(&req_);
      } else {
        Finish(grpc::Status::OK);
      }
    }
    void OnDone() override { delete this; }

   private:
    inference::ModelInferRequest req_;
    inference::ModelStreamInferResponse resp_;
  };

  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext*) override {
    return new Stream();
  }
};

// The same answers on gRPC's completion-queue API: one thread takes the queue's events, either
// blocking in Next or (spin) polling it without a timeout, so that it never sleeps. Every tag is
// an Op whose Proceed takes the event.
struct Op {
  virtual ~Op() = default;
  virtual void Proceed(bool ok) = 0;  // may delete the Op
};

using AsyncService = inference::GRPCInferenceService::AsyncService;

class UnaryOp : public Op {
 public:
  UnaryOp(AsyncService* service, grpc::ServerCompletionQueue* cq) : service_(service), cq_(cq) {
    service_->RequestModelInfer(&ctx_, &req_, &writer_, cq_, cq_, this);
  }
  void Proceed(bool ok) override {
    if (finishing_ || !ok) {
      delete this;
      return;
    }
    new UnaryOp(service_, cq_);
    resp_ = Answer(req_);
    finishing_ = true;
    writer_.Finish(resp_, grpc::Status::OK, this);
  }

 private:
  AsyncService* service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;
  inference::ModelInferRequest req_;
  inference::ModelInferResponse resp_;
  grpc::ServerAsyncResponseWriter<inference::ModelInferResponse> writer_{&ctx_};
  bool finishing_ = false;
};

// One request, one response at a time: read, write the answer, read again, until the client
// has finished writing.
class StreamOp : public Op {
 public:
  StreamOp(AsyncService* service, grpc::ServerCompletionQueue* cq) : service_(service), cq_(cq) {
    service_->RequestModelStreamInfer(&ctx_, &stream_, cq_, cq_, this);
  }
  void Proceed(bool ok) override {
    switch (state_) {
      case kConnect:
        if (!ok) {
          delete this;
          return;
        }
        new StreamOp(service_, cq_);
        state_ = kRead;
        stream_.Read(&req_, this);
        return;
      case kRead:
        if (!ok) {  // the client finished writing
          state_ = kFinish;
          stream_.Finish(grpc::Status::OK, this);
          return;
        }
        *resp_.mutable_infer_response() = Answer(req_);
        state_ = kWrite;
        stream_.Write(resp_, this);
        return;
      case kWrite:
        if (!ok) {
          state_ = kFinish;
          stream_.Finish(grpc::Status::OK, this);
          return;
        }
        state_ = kRead;
        stream_.Read(&req_, this);
        return;
      case kFinish:
        delete this;
        return;
    }
  }

 private:
  enum State { kConnect, kRead, kWrite, kFinish };
  AsyncService* service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>
      stream_{&ctx_};
  inference::ModelInferRequest req_;
  inference::ModelStreamInferResponse resp_;
  State state_ = kConnect;
};

void ServeQueue(AsyncService* service, grpc::ServerCompletionQueue* cq, bool spin) {
  new UnaryOp(service, cq);
  new StreamOp(service, cq);
  for (;;) {
    void* tag = nullptr;
    bool ok = false;
    if (spin) {
      const auto st = cq->AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC));
      if (st == grpc::CompletionQueue::TIMEOUT) continue;
      if (st == grpc::CompletionQueue::SHUTDOWN) return;
    } else if (!cq->Next(&tag, &ok)) {
      return;
    }
    static_cast<Op*>(tag)->Proceed(ok);
  }
}

struct Result {
  std::vector<double> us;
  std::string error;
};

template <class Call>
Result Time(double seconds, Call&& call) {
  Result r;
  for (int i = 0; i < 200; ++i) {
    if (!call(&r.error)) return r;
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!call(&r.error)) return r;
    r.us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  return r;
}

int Report(const char* mode, size_t bytes, Result r) {
  if (!r.error.empty() || r.us.empty()) {
    std::fprintf(stderr, "grpc_pingpong: %s: %s\n", mode,
                 r.error.empty() ? "no round trips" : r.error.c_str());
    return 1;
  }
  std::sort(r.us.begin(), r.us.end());
  auto q = [&](double f) {
    return r.us[std::min(r.us.size() - 1, static_cast<size_t>(f * r.us.size()))];
  };
  std::printf(
      "{\"mode\": \"%s\", \"request_bytes\": %zu, \"requests\": %zu, \"p50_us\": %.1f, "
      "\"p90_us\": %.1f, \"p99_us\": %.1f, \"min_us\": %.1f}\n",
      mode, bytes, r.us.size(), q(0.5), q(0.9), q(0.99), r.us[0]);
  std::fflush(stdout);
  return 0;
}

int Client(int port, size_t bytes, double seconds, const std::string& mode) {
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  inference::ModelInferRequest req;
  req.set_model_name("pingpong");
  auto* in = req.add_inputs();
  in->set_name("main_input");
  in->set_datatype("FP32");
  in->add_shape(1);
  in->add_shape(static_cast<int64_t>(bytes / 4));
  req.add_raw_input_contents(std::string(bytes, '\1'));
  int rc = 0;
  if (mode == "unary" || mode == "both") {
    rc |= Report("unary", bytes, Time(seconds, [&](std::string* error) {
                   grpc::ClientContext ctx;
                   inference::ModelInferResponse resp;
                   grpc::Status s = stub->ModelInfer(&ctx, req, &resp);
                   if (!s.ok()) *error = s.error_message();
                   return s.ok();
                 }));
  }
  if (mode == "stream" || mode == "both") {
    grpc::ClientContext ctx;
    auto stream = stub->ModelStreamInfer(&ctx);
    inference::ModelStreamInferResponse resp;
    rc |= Report("stream", bytes, Time(seconds, [&](std::string* error) {
                   if (!stream->Write(req) || !stream->Read(&resp)) {
                     *error = "the stream broke";
                     return false;
                   }
                   return true;
                 }));
    stream->WritesDone();
    grpc::Status s = stream->Finish();
    if (!s.ok()) {
      std::fprintf(stderr, "grpc_pingpong: stream: %s\n", s.error_message().c_str());
      rc = 1;
    }
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  size_t bytes = 9216;
  double seconds = 3;
  std::string mode = "both";
  std::string server_api = "callback";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 < argc && a == "--bytes") {
      bytes = std::strtoull(argv[++i], nullptr, 10);
    } else if (i + 1 < argc && a == "--seconds") {
      seconds = std::atof(argv[++i]);
    } else if (i + 1 < argc && a == "--mode") {
      mode = argv[++i];
    } else if (i + 1 < argc && a == "--server") {
      server_api = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--bytes 9216] [--seconds 3] [--mode unary|stream|both]\n"
                   "          [--server callback|cq|cq-spin]\n"
                   "gRPC round trips with nothing behind the server (see the file's header)\n",
                   argv[0]);
      return 2;
    }
  }
  const bool queue = server_api == "cq" || server_api == "cq-spin";
  if (bytes % 4 != 0 || seconds <= 0 || (mode != "unary" && mode != "stream" && mode != "both") ||
      (server_api != "callback" && !queue)) {
    std::fprintf(stderr,
                 "grpc_pingpong: --bytes must be a multiple of 4, --seconds > 0, "
                 "--mode unary, stream or both, --server callback, cq or cq-spin\n");
    return 2;
  }
  int ports[2];
  if (pipe(ports) != 0) return 1;
  const pid_t child = fork();  // before gRPC starts any thread
  if (child < 0) return 1;
  if (child == 0) {
    close(ports[1]);
    int port = 0;
    if (read(ports[0], &port, sizeof port) != sizeof port || port <= 0) return 1;
    return Client(port, bytes, seconds, mode);
  }
  close(ports[0]);
  Echo service;
  inference::GRPCInferenceService::AsyncService async_service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  if (queue) {
    builder.RegisterService(&async_service);
    cq = builder.AddCompletionQueue();
  } else {
    builder.RegisterService(&service);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port <= 0) {
    std::fprintf(stderr, "grpc_pingpong: the server did not start\n");
    kill(child, SIGTERM);
    return 1;
  }
  std::thread poller;
  if (queue) {
    poller = std::thread([&] { ServeQueue(&async_service, cq.get(), server_api == "cq-spin"); });
  }
  if (write(ports[1], &port, sizeof port) != sizeof port) return 1;
  int status = 0;
  waitpid(child, &status, 0);
  server->Shutdown();
  if (queue) {
    cq->Shutdown();
    poller.join();
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
