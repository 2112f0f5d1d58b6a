#include "larserve/runtime/calibration.h"

#include "larserve/runtime/backend.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "larserve/runtime/engine.h"

namespace larserve::runtime {
namespace {

constexpr const char* kCacheHeader = "larserve-calibration 1";
constexpr int kQuantLevels = 128;

uint32_t Crc(const std::string& s) {
  return static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(s.data()),
                                     static_cast<uInt>(s.size())));
}

// Names may hold any byte: escape the three that would break the line format.
std::string Escape(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '%' || c == '\t' || c == '\n') {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

bool Unescape(const std::string& in, std::string* out) {
  out->clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    unsigned v = 0;
    if (std::sscanf(in.substr(i + 1, 2).c_str(), "%2X", &v) != 1) return false;
    *out += static_cast<char>(v);
    i += 2;
  }
  return true;
}

double Kl(const std::vector<double>& p, const std::vector<double>& q) {
  double kl = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] > 0) kl += p[i] * std::log(p[i] / q[i]);
  }
  return kl;
}

// Normalises h to sum 1, giving zero bins a tiny mass taken from the non-zero ones (so that
// log(p/q) is defined): the smoothing of MXNet's and TensorRT's implementations.
void SmoothNormalise(std::vector<double>& h) {
  constexpr double kEps = 1e-4;
  double total = 0;
  int zeros = 0;
  for (double v : h) {
    total += v;
    zeros += v == 0;
  }
  if (total <= 0) return;
  const int nonzeros = static_cast<int>(h.size()) - zeros;
  const double take = nonzeros > 0 ? kEps * zeros / nonzeros : 0;
  for (double& v : h) v = v == 0 ? kEps : std::max(v / total - take, kEps * 0.5);
  double s = 0;
  for (double v : h) s += v;
  for (double& v : h) v /= s;
}

}  // namespace

std::string_view CalibrationMethodName(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::kEntropy:
      return "entropy";
    case CalibrationMethod::kMinMax:
      return "minmax";
    case CalibrationMethod::kPercentile:
      return "percentile";
  }
  return "?";
}

StatusOr<CalibrationMethod> CalibrationMethodFromName(std::string_view name) {
  for (auto m :
       {CalibrationMethod::kEntropy, CalibrationMethod::kMinMax, CalibrationMethod::kPercentile}) {
    if (CalibrationMethodName(m) == name) return m;
  }
  return InvalidArgument("unknown calibration method '" + std::string(name) +
                         "': use entropy, minmax or percentile");
}

float EntropyThreshold(const std::vector<double>& hist, float max_abs) {
  const int n = static_cast<int>(hist.size());
  if (n <= kQuantLevels) return max_abs;
  const double width = max_abs / n;
  double best_kl = INFINITY;
  int best = n;
  std::vector<double> p, q;
  for (int i = kQuantLevels; i <= n; ++i) {
    p.assign(hist.begin(), hist.begin() + i);
    double outliers = 0;
    for (int k = i; k < n; ++k) outliers += hist[k];
    p[i - 1] += outliers;
    // Quantise hist[0, i) into 128 levels, then spread each level's count evenly over the bins
    // of its range that were non-zero.
    q.assign(i, 0.0);
    const double step = static_cast<double>(i) / kQuantLevels;
    for (int j = 0; j < kQuantLevels; ++j) {
      const int start = static_cast<int>(std::floor(j * step));
      const int stop = j == kQuantLevels - 1 ? i : static_cast<int>(std::floor((j + 1) * step));
      double sum = 0;
      int nonzero = 0;
      for (int k = start; k < stop; ++k) {
        sum += hist[k];
        nonzero += hist[k] != 0;
      }
      if (nonzero == 0) continue;
      for (int k = start; k < stop; ++k) q[k] = hist[k] != 0 ? sum / nonzero : 0.0;
    }
    SmoothNormalise(p);
    SmoothNormalise(q);
    const double kl = Kl(p, q);
    if (kl < best_kl) {
      best_kl = kl;
      best = i;
    }
  }
  return static_cast<float>((best + 0.5) * width);
}

float PercentileThreshold(const std::vector<double>& hist, float max_abs, double percentile) {
  double total = 0;
  for (double v : hist) total += v;
  if (total <= 0) return max_abs;
  const double target = total * percentile / 100.0;
  double acc = 0;
  const double width = static_cast<double>(max_abs) / hist.size();
  for (std::size_t b = 0; b < hist.size(); ++b) {
    acc += hist[b];
    if (acc >= target) return static_cast<float>((b + 1) * width);
  }
  return max_abs;
}

std::shared_ptr<const CalibrationTable> WithExplicitQuantization(
    const std::shared_ptr<const CalibrationTable>& base, const opt::ExplicitQuantization& q) {
  auto t = base ? std::make_shared<CalibrationTable>(*base) : std::make_shared<CalibrationTable>();
  t->method = base ? base->method + "+qdq" : "qdq";
  for (const auto& [name, amax] : q.activation_amax) t->amax[name] = amax;
  for (const auto& [node, scales] : q.weight_scales) t->weight_scales[node] = scales;
  return t;
}

StatusOr<CalibrationTable> Calibrate(const graph::Graph& graph,
                                     const std::vector<std::vector<Tensor>>& batches,
                                     const CalibrationOptions& options) {
  if (batches.empty()) return InvalidArgument("calibration needs at least one batch of data");
  if (options.bins < kQuantLevels * 2 || options.bins > (1 << 16)) {
    return InvalidArgument("calibration histogram bins must be in [256, 65536]");
  }
  if (!(options.percentile > 0 && options.percentile <= 100)) {
    return InvalidArgument("calibration percentile must be in (0, 100]");
  }
  // fp32: the distributions the model really has. On the cpu backend when it is built: the
  // same values as the reference kernels up to float rounding (its kernels are tested against
  // them), and about 100x faster, which matters with thousands of calibration patches.
  BuildOptions bo;
  bo.backend = FindBackend("cpu") ? "cpu" : "reference";
  ASSIGN_OR_RETURN(auto engine, Engine::Build(graph, bo));
  const graph::Graph& g = engine->graph();
  auto ctx = engine->CreateContext();
  std::vector<float> amax(g.values.size(), 0.0f);
  std::vector<bool> seen(g.values.size(), false);
  std::vector<Tensor> outputs;
  // Pass 1: the largest |x| of every float32 value.
  ctx->SetObserver([&](int v, const Tensor& t) {
    if (t.dtype() != DType::kFloat32) return;
    seen[v] = true;
    for (float x : t.Span<float>()) amax[v] = std::max(amax[v], std::fabs(x));
  });
  for (const auto& batch : batches)
    RETURN_IF_ERROR(ctx->Run(batch, &outputs).WithContext("calibration"));
  // Pass 2: histograms of |x| over [0, amax].
  std::vector<std::vector<double>> hist(g.values.size());
  ctx->SetObserver([&](int v, const Tensor& t) {
    if (t.dtype() != DType::kFloat32 || !(amax[v] > 0)) return;
    auto& h = hist[v];
    if (h.empty()) h.assign(options.bins, 0.0);
    const float scale = options.bins / amax[v];
    for (float x : t.Span<float>()) {
      const int b = std::min(options.bins - 1, static_cast<int>(std::fabs(x) * scale));
      h[b] += 1;
    }
  });
  if (options.method != CalibrationMethod::kMinMax) {
    for (const auto& batch : batches)
      RETURN_IF_ERROR(ctx->Run(batch, &outputs).WithContext("calibration"));
  }
  CalibrationTable table;
  table.method = std::string(CalibrationMethodName(options.method));
  for (std::size_t v = 0; v < g.values.size(); ++v) {
    if (!seen[v] || g.values[v].constant) continue;
    float a = amax[v];
    if (a > 0 && options.method == CalibrationMethod::kEntropy)
      a = EntropyThreshold(hist[v], amax[v]);
    if (a > 0 && options.method == CalibrationMethod::kPercentile) {
      a = PercentileThreshold(hist[v], amax[v], options.percentile);
    }
    table.amax[g.values[v].name] = a > 0 ? a : 1e-8f;  // an all-zero tensor still gets a scale
  }
  return table;
}

Status CalibrationTable::Save(const std::string& path) const {
  std::ostringstream body;
  body << kCacheHeader << "\n"
       << "method " << method << "\n"
       << "count " << amax.size() << "\n";
  for (const auto& [name, a] : amax) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%a", static_cast<double>(a));  // exact round trip
    body << Escape(name) << "\t" << buf << "\n";
  }
  const std::string text = body.str();
  std::ofstream out(path, std::ios::trunc);
  if (!out) return NotFound("cannot create calibration file '" + path + "'");
  char crc[32];
  std::snprintf(crc, sizeof(crc), "crc32 %08x\n", Crc(text));
  out << text << crc;
  if (!out) return DataLoss("cannot write calibration file '" + path + "'");
  return Status::Ok();
}

StatusOr<CalibrationTable> CalibrationTable::Load(const std::string& path) {
  const std::string where = "calibration file '" + path + "'";
  std::ifstream in(path);
  if (!in) return NotFound("cannot open " + where);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  const auto crc_pos = all.rfind("crc32 ");
  if (all.rfind(kCacheHeader, 0) != 0) {
    return InvalidArgument(where + " is not a larserve calibration cache (first line must be '" +
                           std::string(kCacheHeader) + "')");
  }
  if (crc_pos == std::string::npos) return DataLoss(where + " is truncated (no crc32 line)");
  unsigned stored = 0;
  if (std::sscanf(all.c_str() + crc_pos, "crc32 %8x", &stored) != 1 ||
      stored != Crc(all.substr(0, crc_pos))) {
    return DataLoss(where + " is corrupt (checksum mismatch); recalibrate with --calib");
  }
  std::istringstream lines(all.substr(0, crc_pos));
  std::string line;
  std::getline(lines, line);  // header
  CalibrationTable t;
  std::size_t count = 0;
  if (!std::getline(lines, line) || line.rfind("method ", 0) != 0)
    return InvalidArgument(where + ": no method line");
  t.method = line.substr(7);
  if (!CalibrationMethodFromName(t.method).ok())
    return InvalidArgument(where + ": unknown method '" + t.method + "'");
  if (!std::getline(lines, line) || std::sscanf(line.c_str(), "count %zu", &count) != 1) {
    return InvalidArgument(where + ": no count line");
  }
  while (std::getline(lines, line)) {
    const auto tab = line.rfind('\t');
    std::string name;
    if (tab == std::string::npos || !Unescape(line.substr(0, tab), &name)) {
      return InvalidArgument(where + ": malformed line '" + line.substr(0, 80) + "'");
    }
    char* end = nullptr;
    const double a = std::strtod(line.c_str() + tab + 1, &end);
    if (*end != '\0' || !std::isfinite(a) || a <= 0) {
      return InvalidArgument(where + ": value '" + name + "' has an invalid range '" +
                             line.substr(tab + 1) + "'");
    }
    t.amax[name] = static_cast<float>(a);
  }
  if (t.amax.size() != count) {
    return InvalidArgument(where + ": says " + std::to_string(count) + " values but holds " +
                           std::to_string(t.amax.size()));
  }
  return t;
}

}  // namespace larserve::runtime
