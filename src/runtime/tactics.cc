#include "larserve/runtime/tactics.h"

#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace larserve::runtime {
namespace {

// File layout: one JSON object {"format", "version", "entries"} on the first line, then a line
// "crc32 XXXXXXXX" over the JSON text, so truncation and corruption are detected.
constexpr const char* kFormat = "larserve-timing-cache";
constexpr int kVersion = 1;

uint32_t Crc(const std::string& s) {
  return static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(s.data()),
                                     static_cast<uInt>(s.size())));
}

void AppendAttribute(std::ostringstream& out, const graph::Attribute& a) {
  using Kind = graph::Attribute::Kind;
  char buf[32];
  switch (a.kind) {
    case Kind::kInt:
      out << a.i;
      break;
    case Kind::kFloat:
      std::snprintf(buf, sizeof(buf), "%a", static_cast<double>(a.f));
      out << buf;
      break;
    case Kind::kString:
      out << '"' << a.s << '"';
      break;
    case Kind::kInts:
      for (int64_t v : a.ints) out << v << ',';
      break;
    case Kind::kFloats:
      for (float v : a.floats) {
        std::snprintf(buf, sizeof(buf), "%a", static_cast<double>(v));
        out << buf << ',';
      }
      break;
    case Kind::kStrings:
      for (const auto& s : a.strings) out << '"' << s << "\",";
      break;
    case Kind::kTensor:
      // Tensor attributes are constants; their shape decides the timing, not their values.
      out << "tensor" << a.t.shape().ToString();
      break;
  }
}

}  // namespace

std::string_view TacticSourceName(TacticReport::Source s) {
  switch (s) {
    case TacticReport::Source::kTimed:
      return "timed";
    case TacticReport::Source::kCache:
      return "timing cache";
    case TacticReport::Source::kPlan:
      return "plan";
    case TacticReport::Source::kDefault:
      return "default (no --batch profile to time at)";
  }
  return "?";
}

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(colon + 1);
        const auto first = name.find_first_not_of(' ');
        return first == std::string::npos ? "unknown CPU" : name.substr(first);
      }
    }
  }
  return "unknown CPU";
}

std::string TimingKey(const std::string& device, const graph::Node& node,
                      const std::vector<std::vector<int64_t>>& input_dims) {
  std::ostringstream out;
  out << device << " | " << (node.domain.empty() ? "" : node.domain + ".") << node.op_type;
  for (const auto& [name, a] : node.attrs) {
    out << ' ' << name << '=';
    AppendAttribute(out, a);
  }
  out << " |";
  for (const auto& d : input_dims) {
    out << " [";
    for (std::size_t i = 0; i < d.size(); ++i) out << (i ? "," : "") << d[i];
    out << ']';
  }
  return out.str();
}

const TimingEntry* TimingCache::Find(const std::string& key) const {
  const auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

void TimingCache::Insert(const std::string& key, TimingEntry entry) {
  entries_[key] = std::move(entry);
}

Status TimingCache::Save(const std::string& path) const {
  nlohmann::json entries = nlohmann::json::object();
  for (const auto& [key, e] : entries_) {
    nlohmann::json timings = nlohmann::json::array();
    for (const auto& t : e.timings) timings.push_back({{"tactic", t.tactic}, {"ms", t.ms}});
    entries[key] = {{"chosen", e.chosen}, {"timings", timings}};
  }
  const nlohmann::json j = {{"format", kFormat}, {"version", kVersion}, {"entries", entries}};
  const std::string text = j.dump();
  // Write a sibling file and rename it over the old one, so an interrupted save never leaves a
  // half-written cache behind.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return NotFound("cannot create timing cache '" + tmp + "'");
    char crc[32];
    std::snprintf(crc, sizeof(crc), "\ncrc32 %08x\n", Crc(text));
    out << text << crc;
    if (!out) return DataLoss("cannot write timing cache '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return DataLoss("cannot replace timing cache '" + path + "'");
  }
  return Status::Ok();
}

StatusOr<TimingCache> TimingCache::Load(const std::string& path) {
  const std::string where = "timing cache '" + path + "'";
  const std::string fix = "; delete it (it is rebuilt by timing) or name another file";
  std::ifstream in(path);
  if (!in) return TimingCache();  // created on save
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  const auto crc_pos = all.rfind("\ncrc32 ");
  if (crc_pos == std::string::npos) return DataLoss(where + " is truncated (no crc32 line)" + fix);
  const std::string text = all.substr(0, crc_pos);
  unsigned stored = 0;
  if (std::sscanf(all.c_str() + crc_pos + 1, "crc32 %8x", &stored) != 1 || stored != Crc(text)) {
    return DataLoss(where + " is corrupt (checksum mismatch)" + fix);
  }
  TimingCache cache;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    if (j.at("format").get<std::string>() != kFormat) {
      return InvalidArgument(where + " is not a larserve timing cache" + fix);
    }
    if (j.at("version").get<int>() != kVersion) {
      return FailedPrecondition(where + " has version " +
                                std::to_string(j.at("version").get<int>()) +
                                ", this larserve reads " + std::to_string(kVersion) + fix);
    }
    for (const auto& [key, e] : j.at("entries").items()) {
      TimingEntry entry;
      entry.chosen = e.at("chosen").get<std::string>();
      for (const auto& t : e.at("timings")) {
        const double ms = t.at("ms").get<double>();
        if (!std::isfinite(ms) || ms < 0) {
          return InvalidArgument(where + ": entry '" + key + "' has an invalid time" + fix);
        }
        entry.timings.push_back({t.at("tactic").get<std::string>(), ms});
      }
      cache.entries_[key] = std::move(entry);
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(where + " is malformed (" + std::string(e.what()) + ")" + fix);
  }
  return cache;
}

}  // namespace larserve::runtime
