// client_latency: round trips of one small request through larserve's own C++ client library
// (larserve::client, synchronous Infer over unary gRPC) against a running server, back to back;
// prints the client-side latency percentiles. With bench/floor_model.py's near-empty model it
// separates the server's share of the gRPC floor from perf_analyzer's client (docs/perf/server.md).
//
//   build/cpu-release/bench/client_latency HOST:PORT MODEL [BATCH] [SECONDS]
//
// The model's first input gets BATCH rows of random floats (shape from the server's
// ModelMetadata is not read: the input must be [BATCH, 48, 48, 1] float32, as EmTrackMichelId's
// and floor9k's).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "larserve/client/client.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s HOST:PORT MODEL [BATCH] [SECONDS]\n", argv[0]);
    return 2;
  }
  const int64_t batch = argc > 3 ? std::atoll(argv[3]) : 1;
  const double seconds = argc > 4 ? std::atof(argv[4]) : 3.0;
  if (batch < 1 || seconds <= 0) {
    std::fprintf(stderr, "client_latency: BATCH must be >= 1 and SECONDS > 0\n");
    return 2;
  }
  larserve::client::ClientOptions o;
  o.servers = {argv[1]};
  o.model_name = argv[2];
  o.retry.max_attempts = 1;
  auto client = larserve::client::Client::Create(o);
  if (!client.ok()) {
    std::fprintf(stderr, "client_latency: %s\n", client.status().message().c_str());
    return 1;
  }
  auto info = (*client)->GetModelInfo();
  if (!info.ok() || info->inputs.empty()) {
    std::fprintf(stderr, "client_latency: model %s: %s\n", argv[2],
                 info.ok() ? "no inputs" : info.status().message().c_str());
    return 1;
  }
  auto t = larserve::Tensor::Create(larserve::DType::kFloat32,
                                    larserve::Shape({batch, 48, 48, 1}));
  if (!t.ok()) return 1;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-10.f, 30.f);
  for (float& v : t->Span<float>()) v = u(rng);
  std::vector<larserve::client::NamedTensor> in{{info->inputs[0], *t}};
  std::vector<double> us;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (int warm = 0; warm < 100; ++warm) (void)(*client)->Infer(in);
  while (std::chrono::steady_clock::now() < end) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = (*client)->Infer(in);
    const auto t1 = std::chrono::steady_clock::now();
    if (!r.ok()) {
      std::fprintf(stderr, "client_latency: %s\n", r.status().message().c_str());
      return 1;
    }
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  auto q = [&](double f) { return us[std::min(us.size() - 1, static_cast<size_t>(f * us.size()))]; };
  std::printf("{\"model\": \"%s\", \"batch\": %lld, \"requests\": %zu, \"p50_us\": %.1f, "
              "\"p90_us\": %.1f, \"p99_us\": %.1f, \"min_us\": %.1f}\n",
              argv[2], static_cast<long long>(batch), us.size(), q(0.5), q(0.9), q(0.99), us[0]);
  return 0;
}
