#include "larserve/serve/metrics.h"

#include "http_listener.h"

namespace larserve::serve {
namespace {

struct Family {
  const char* name;
  const char* type;
  const char* help;  // Triton's text, word for word (dashboards and alerts match on the names)
  uint64_t (*value)(const ModelStats&);
};

constexpr uint64_t kNsPerUs = 1000;

const Family kFamilies[] = {
    {"nv_inference_request_success", "counter",
     "Number of successful inference requests, all batch sizes",
     [](const ModelStats& s) { return s.success.count; }},
    {"nv_inference_request_failure", "counter",
     "Number of failed inference requests, all batch sizes",
     [](const ModelStats& s) { return s.fail.count; }},
    {"nv_inference_count", "counter",
     "Number of inferences performed (does not include cached requests)",
     [](const ModelStats& s) { return s.inference_count; }},
    {"nv_inference_exec_count", "counter",
     "Number of model executions performed (does not include cached requests)",
     [](const ModelStats& s) { return s.execution_count; }},
    {"nv_inference_request_duration_us", "counter",
     "Cumulative inference request duration in microseconds (includes cached requests)",
     [](const ModelStats& s) { return s.success.ns / kNsPerUs; }},
    {"nv_inference_queue_duration_us", "counter",
     "Cumulative inference queuing duration in microseconds (includes cached requests)",
     [](const ModelStats& s) { return s.queue.ns / kNsPerUs; }},
    {"nv_inference_compute_input_duration_us", "counter",
     "Cumulative compute input duration in microseconds (does not include cached requests)",
     [](const ModelStats& s) { return s.compute_input.ns / kNsPerUs; }},
    {"nv_inference_compute_infer_duration_us", "counter",
     "Cumulative compute inference duration in microseconds (does not include cached requests)",
     [](const ModelStats& s) { return s.compute_infer.ns / kNsPerUs; }},
    {"nv_inference_compute_output_duration_us", "counter",
     "Cumulative inference compute output duration in microseconds (does not include cached "
     "requests)",
     [](const ModelStats& s) { return s.compute_output.ns / kNsPerUs; }},
    {"nv_inference_pending_request_count", "gauge",
     "Instantaneous number of pending requests awaiting execution per-model.",
     [](const ModelStats& s) { return static_cast<uint64_t>(s.pending > 0 ? s.pending : 0); }},
};

// Label values escape backslash, double quote and line feed (text format 0.0.4).
void AppendLabelValue(std::string& out, const std::string& value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

}  // namespace

std::string FormatPrometheusMetrics(const std::vector<ModelMetricsSample>& samples) {
  std::string out;
  out.reserve(1024 + samples.size() * 1024);
  for (const Family& f : kFamilies) {
    out += "# HELP ";
    out += f.name;
    out += ' ';
    out += f.help;
    out += "\n# TYPE ";
    out += f.name;
    out += ' ';
    out += f.type;
    out += '\n';
    for (const ModelMetricsSample& s : samples) {
      out += f.name;
      out += "{model=\"";
      AppendLabelValue(out, s.model);
      out += "\",version=\"";
      AppendLabelValue(out, s.version);
      out += "\"} ";
      out += std::to_string(f.value(s.stats));
      out += '\n';
    }
  }
  return out;
}

std::string PrometheusMetrics(const ModelRepository& repository) {
  std::vector<ModelMetricsSample> samples;
  for (const ModelHandle& m : repository.AllReady()) {
    samples.push_back({m->name, std::to_string(m->version), m->scheduler->Stats()});
  }
  return FormatPrometheusMetrics(samples);
}

struct MetricsServer::Impl {
  std::unique_ptr<HttpListener> listener;
};

StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const ModelRepository* repository,
                                                              const MetricsServerOptions& options) {
  auto server = std::make_unique<httplib::Server>();
  // Scrapes are rare and cheap: two workers, and no request bodies.
  server->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server->set_payload_max_length(1 << 16);
  server->Get("/metrics", [repository](const httplib::Request&, httplib::Response& res) {
    res.set_content(PrometheusMetrics(*repository), kPrometheusContentType);
  });
  ASSIGN_OR_RETURN(auto listener,
                   HttpListener::Start(std::move(server), options.host, options.port, "metrics"));
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->impl_ = std::make_unique<Impl>();
  s->impl_->listener = std::move(listener);
  return s;
}

MetricsServer::~MetricsServer() {
  if (impl_) Shutdown();
}

int MetricsServer::port() const { return impl_->listener->port(); }

void MetricsServer::Shutdown() { impl_->listener->Shutdown(); }

}  // namespace larserve::serve
