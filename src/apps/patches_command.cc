// `larserve patches`: hits -> truth -> CNN input patches of every event of an events file,
// sampled into a training set (or every hit, for evaluation), written to a patch file.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "larserve/core/rng.h"
#include "larserve/core/thread_pool.h"
#include "larserve/core/timer.h"
#include "larserve/io/event_file.h"
#include "larserve/io/npy.h"
#include "larserve/io/patch_file.h"
#include "larserve/reco/hit_finder.h"
#include "larserve/reco/patch_maker.h"
#include "larserve/reco/patch_selection.h"
#include "larserve/reco/plane_image.h"
#include "larserve/reco/truth_match.h"
#include "larserve/sim/geometry.h"

namespace larserve::apps {
namespace {

struct PatchesOptions {
  std::string input;
  std::string output;
  std::string npy_dir;  // also (or instead) write a directory of .npy files
  std::string planes = "U,V,W";
  std::string balance = "train";
  double track_keep = 0.2;
  double empty_per_hit = 0.1;
  std::string delta_rays = "track";
  bool sampling_given = false;  // --track-keep or --empty-per-hit on the command line
  uint64_t seed = 1;
  int threads = 1;
  int compression = 1;
  bool json = false;
};

// The patches of one plane of one event, ready to be filled from the plane's views.
struct PlaneResult {
  int apa = 0;
  int plane = 0;
  int64_t hits = 0;
  std::array<int64_t, sim::kNumCategories> hit_categories{};
  std::vector<reco::DownsampledView> views;
  std::vector<reco::PatchCenter> centres;
  std::vector<uint8_t> view_of;  // index into views, per patch
  std::vector<io::PatchRecord> records;
};

struct EventResult {
  std::vector<PlaneResult> planes;
  double read_seconds = 0;
  double reco_seconds = 0;
};

struct Job {
  const std::string* input;  // the events file's path, for messages
  const io::EventFileReader* reader;
  const std::vector<int>* planes;
  const reco::HitFinderConfig* hit_config;
  const reco::PatchConfig* patch_config;
  const reco::SelectionConfig* selection;
  uint64_t seed;
};

StatusOr<std::vector<int>> ParsePlanes(const std::string& text) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    std::string name = text.substr(pos, comma - pos);
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    int plane = -1;
    for (int p = 0; p < sim::kNumPlanes; ++p) {
      if (name == sim::PlaneName(p)) plane = p;
    }
    if (plane < 0) {
      return InvalidArgument("--planes: unknown plane '" + name +
                             "': give a comma-separated subset of U,V,W");
    }
    if (std::find(out.begin(), out.end(), plane) != out.end()) {
      return InvalidArgument("--planes: plane " + name + " given twice");
    }
    out.push_back(plane);
    pos = comma + 1;
  }
  std::sort(out.begin(), out.end());
  return out;
}

StatusOr<PlaneResult> ProcessPlane(const Job& job, int64_t event_index,
                                   const std::vector<sim::TruthParticle>& particles,
                                   const sim::PlaneData& pd) {
  PlaneResult r;
  r.apa = pd.apa;
  r.plane = pd.plane;
  ASSIGN_OR_RETURN(reco::PlaneImage image, reco::PlaneImage::Create(pd));
  ASSIGN_OR_RETURN(std::vector<reco::Hit> hits, reco::FindHits(pd, *job.hit_config));
  ASSIGN_OR_RETURN(reco::TruthIndex truth_index, reco::TruthIndex::Create(pd, particles));
  std::vector<reco::HitTruth> truth;
  truth.reserve(hits.size());
  for (const reco::Hit& h : hits) {
    truth.push_back(truth_index.Match(h.wire, h.start_tick, h.end_tick));
    ++r.hit_categories[static_cast<int>(truth.back().category)];
  }
  r.hits = static_cast<int64_t>(hits.size());
  const std::vector<reco::WireRange> views = reco::PlaneViews(pd.plane, pd.n_channels);
  const uint64_t plane_seed =
      DeriveSeed(job.seed, {static_cast<uint64_t>(event_index), static_cast<uint64_t>(pd.apa),
                            static_cast<uint64_t>(pd.plane)});
  ASSIGN_OR_RETURN(
      std::vector<reco::SelectedPatch> selected,
      reco::SelectPatches(hits, truth, truth_index, views, pd.n_ticks, *job.selection, plane_seed));
  for (const reco::WireRange& v : views) {
    ASSIGN_OR_RETURN(reco::DownsampledView view,
                     reco::DownsampledView::Create(image, *job.patch_config, v));
    r.views.push_back(std::move(view));
  }
  r.centres.reserve(selected.size());
  r.records.reserve(selected.size());
  for (const reco::SelectedPatch& s : selected) {
    uint8_t view = 0;
    for (std::size_t v = 0; v < views.size(); ++v) {
      if (views[v].contains(s.centre.wire)) view = static_cast<uint8_t>(v);
    }
    io::PatchRecord rec;
    rec.category = static_cast<uint8_t>(s.truth.category);
    rec.label = static_cast<uint8_t>(reco::LabelOfTruth(s.truth, job.selection->delta_rays));
    rec.michel = s.truth.category == sim::Category::kMichel ? 1 : 0;
    rec.kind = static_cast<uint8_t>(s.empty ? io::PatchKind::kEmpty : io::PatchKind::kHit);
    rec.event = event_index;
    rec.apa = static_cast<int16_t>(pd.apa);
    rec.plane = static_cast<uint8_t>(pd.plane);
    rec.wire = s.centre.wire;
    rec.peak_tick = s.centre.tick;
    rec.integral = s.empty ? 0.0f : hits[s.hit].integral;
    rec.truth_fraction = s.truth.fraction;
    r.centres.push_back(s.centre);
    r.view_of.push_back(view);
    r.records.push_back(rec);
  }
  return r;
}

// Reads event i and makes its hits and selection (runs on a worker thread; the HDF5 reads are
// serialised by the io module's lock).
StatusOr<EventResult> ProcessEvent(const Job& job, int64_t i) {
  EventResult out;
  Timer timer;
  ASSIGN_OR_RETURN(int64_t event_index, job.reader->EventIndex(i));
  ASSIGN_OR_RETURN(std::vector<sim::TruthParticle> particles, job.reader->ReadParticles(i));
  const int apas = job.reader->info().num_apas;
  for (int apa = 0; apa < apas; ++apa) {
    for (int plane : *job.planes) {
      timer.Reset();
      ASSIGN_OR_RETURN(sim::PlaneData pd, job.reader->ReadPlane(i, apa, plane));
      out.read_seconds += timer.Seconds();
      timer.Reset();
      auto r = ProcessPlane(job, event_index, particles, pd);
      if (!r.ok()) {
        return r.status().WithContext("'" + *job.input + "' event " + std::to_string(event_index));
      }
      out.reco_seconds += timer.Seconds();
      out.planes.push_back(std::move(r).value());
    }
  }
  return out;
}

// The patch set as a directory of .npy files (patches.npy [N, W, D, 1] float32 and one file per
// record field, dtypes as in the HDF5 file, plus meta.json with the root attributes), for
// machines whose Python has numpy but no h5py (python/patchdata.py reads both). Streamed: the
// arrays never need to fit in memory.
class NpySink {
 public:
  static StatusOr<std::unique_ptr<NpySink>> Create(const std::string& dir,
                                                   const io::PatchFileInfo& h) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return NotFound("cannot create directory '" + dir + "': " + ec.message());
    std::unique_ptr<NpySink> sink(new NpySink());
    sink->dir_ = dir;
    sink->header_ = h;
    ASSIGN_OR_RETURN(sink->patches_,
                     io::NpyStreamWriter::Create(dir + "/patches.npy", DType::kFloat32,
                                                 {h.patch_wires, h.patch_drifts, 1}));
    for (const auto& [name, dtype] : kColumns) {
      ASSIGN_OR_RETURN(auto w, io::NpyStreamWriter::Create(dir + "/" + name + ".npy", dtype, {}));
      sink->columns_.push_back(std::move(w));
    }
    return sink;
  }

  Status Append(std::span<const float> pixels, std::span<const io::PatchRecord> records) {
    const int64_t n = static_cast<int64_t>(records.size());
    RETURN_IF_ERROR(patches_->Append(pixels.data(), n));
    std::vector<uint8_t> bytes(records.size() * 8);
    std::size_t c = 0;
    auto column = [&](auto get) -> Status {
      using T = decltype(get(records[0]));
      T* out = reinterpret_cast<T*>(bytes.data());
      for (std::size_t i = 0; i < records.size(); ++i) out[i] = get(records[i]);
      return columns_[c++]->Append(bytes.data(), n);
    };
    if (records.empty()) return Status::Ok();
    // In kColumns order.
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.label; }));
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.michel; }));
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.category; }));
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.event; }));
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.apa; }));
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.plane; }));
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.wire; }));
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.peak_tick; }));
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.integral; }));
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.truth_fraction; }));
    RETURN_IF_ERROR(column([](const io::PatchRecord& r) { return r.kind; }));
    return Status::Ok();
  }

  // Finishes every array and writes meta.json (the HDF5 file's root attributes).
  Status Close(int64_t num_patches) {
    RETURN_IF_ERROR(patches_->Close());
    for (auto& w : columns_) RETURN_IF_ERROR(w->Close());
    const io::PatchFileInfo& h = header_;
    nlohmann::json attrs = {{"format", io::kPatchesFormat},
                            {"schema_version", io::kPatchesSchemaVersion},
                            {"source", h.source},
                            {"patch_wires", h.patch_wires},
                            {"patch_drifts", h.patch_drifts},
                            {"drift_window", h.drift_window},
                            {"adc_min", h.adc_min},
                            {"adc_max", h.adc_max},
                            {"out_min", h.out_min},
                            {"out_max", h.out_max},
                            {"zero_level", h.zero_level},
                            {"selection", h.selection},
                            {"class_names", h.class_names},
                            {"delta_rays", io::DeltaRaysName(h.delta_rays)},
                            {"n_patches", num_patches},
                            {"complete", 1}};
    std::FILE* f = std::fopen((dir_ + "/meta.json").c_str(), "w");
    if (!f) return NotFound("cannot create '" + dir_ + "/meta.json'");
    const std::string text = nlohmann::json({{"attrs", attrs}}).dump(2);
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    if (std::fclose(f) != 0 || !ok) return DataLoss("cannot write '" + dir_ + "/meta.json'");
    return Status::Ok();
  }

 private:
  NpySink() = default;
  static constexpr std::pair<const char*, DType> kColumns[] = {
      {"label", DType::kUInt8},      {"michel", DType::kUInt8},
      {"category", DType::kUInt8},   {"event", DType::kInt64},
      {"apa", DType::kInt16},        {"plane", DType::kUInt8},
      {"wire", DType::kInt32},       {"peak_tick", DType::kFloat32},
      {"integral", DType::kFloat32}, {"truth_fraction", DType::kFloat32},
      {"kind", DType::kUInt8}};
  std::string dir_;
  io::PatchFileInfo header_;
  std::unique_ptr<io::NpyStreamWriter> patches_;
  std::vector<std::unique_ptr<io::NpyStreamWriter>> columns_;
};

int RunPatches(const PatchesOptions& o) {
  const char* cmd = "patches";
  auto planes = ParsePlanes(o.planes);
  if (!planes.ok()) return Fail(cmd, planes.status().message());
  if (o.balance != "train" && o.balance != "none") {
    return Fail(cmd, "--balance must be 'train' or 'none', got '" + o.balance + "'");
  }
  if (o.balance == "none" && o.sampling_given) {
    return Fail(cmd,
                "--balance none keeps every hit and adds no empty patch: it cannot be combined "
                "with --track-keep or --empty-per-hit");
  }
  if (o.output.empty() && o.npy_dir.empty()) {
    return Fail(cmd, "no output: give -o patches.h5 and/or --npy-dir DIR");
  }
  std::error_code ec;
  if (std::filesystem::exists(o.output, ec) && std::filesystem::equivalent(o.input, o.output, ec)) {
    return Fail(cmd, "the output '" + o.output + "' is the input events file");
  }
  reco::SelectionConfig selection;
  selection.balance = o.balance == "train";
  selection.track_keep = o.track_keep;
  selection.empty_per_hit = o.empty_per_hit;
  if (auto d = io::ParseDeltaRays(o.delta_rays); d.ok()) {
    selection.delta_rays = *d;
  } else {
    return Fail(cmd, "--delta-rays: " + d.status().message());
  }
  if (Status s = selection.Validate(); !s.ok()) return Fail(cmd, s.message());
  const reco::HitFinderConfig hit_config;
  const reco::PatchConfig patch_config;

  auto reader = io::EventFileReader::Open(o.input);
  if (!reader.ok()) return Fail(cmd, reader.status().message());
  const io::EventFileReader& in = **reader;
  if (in.num_events() == 0) return Fail(cmd, "events file '" + o.input + "' holds no events");

  nlohmann::json sel;
  sel["balance"] = o.balance;
  sel["seed"] = o.seed;
  sel["delta_rays"] = io::DeltaRaysName(selection.delta_rays);
  std::string plane_names;
  for (int p : *planes)
    plane_names += (plane_names.empty() ? "" : ",") + std::string(sim::PlaneName(p));
  sel["planes"] = plane_names;
  if (selection.balance) {
    sel["track_keep"] = selection.track_keep;
    sel["empty_per_hit"] = selection.empty_per_hit;
    sel["empty_max_wire_offset"] = selection.empty_max_wire_offset;
    sel["empty_max_tick_offset"] = selection.empty_max_tick_offset;
    sel["empty_clear_wires"] = selection.empty_clear_wires;
    sel["empty_clear_ticks"] = selection.empty_clear_ticks;
  }
  sel["hit_threshold_sigma"] = hit_config.threshold_sigma;
  io::PatchFileInfo header;
  header.source = o.input;
  header.delta_rays = selection.delta_rays;
  header.patch_wires = patch_config.patch_wires;
  header.patch_drifts = patch_config.patch_drifts;
  header.drift_window = patch_config.drift_window;
  header.adc_min = patch_config.adc_min;
  header.adc_max = patch_config.adc_max;
  header.out_min = patch_config.out_min;
  header.out_max = patch_config.out_max;
  header.zero_level = patch_config.zero_level();
  header.selection = sel.dump();
  io::PatchWriterOptions wopt;
  wopt.compression_level = o.compression;
  std::unique_ptr<io::PatchFileWriter> writer;
  if (!o.output.empty()) {
    auto created = io::PatchFileWriter::Create(o.output, header, wopt);
    if (!created.ok()) return Fail(cmd, created.status().message());
    writer = std::move(created).value();
  }
  std::unique_ptr<NpySink> npy;
  if (!o.npy_dir.empty()) {
    auto created = NpySink::Create(o.npy_dir, header);
    if (!created.ok()) return Fail(cmd, created.status().message());
    npy = std::move(created).value();
  }

  const Job job{&o.input, &in, &*planes, &hit_config, &patch_config, &selection, o.seed};
  const int64_t n_events = in.num_events();
  const bool progress = !o.json && isatty(STDERR_FILENO);
  std::array<int64_t, 3> hits_by_plane{};
  std::array<int64_t, sim::kNumCategories> hit_categories{};
  std::array<std::array<int64_t, io::kNumPatchLabels>, 3> by_plane_label{};
  int64_t michel = 0, empty = 0, total = 0;
  double read_s = 0, reco_s = 0, write_s = 0;
  const std::size_t psize = static_cast<std::size_t>(patch_config.patch_size());
  constexpr std::size_t kFillBlock = 1024;
  std::vector<float> pixels(kFillBlock * psize);

  Timer timer;
  // Events are processed by `threads` workers while this thread fills and writes the finished
  // ones in event order: the file does not depend on the thread count. At most threads + 1
  // events are in flight (enough to keep every worker busy), which bounds memory. The pool is
  // declared last so that it is destroyed (joining any queued work) before what the tasks refer to.
  ThreadPool pool(o.threads > 1 ? o.threads + 1 : 1);
  std::deque<std::future<StatusOr<EventResult>>> in_flight;
  const int64_t window = o.threads > 1 ? o.threads + 1 : 1;
  int64_t next = 0;
  auto submit = [&]() {
    auto task = std::make_shared<std::packaged_task<StatusOr<EventResult>()>>(
        [&job, i = next] { return ProcessEvent(job, i); });
    in_flight.push_back(task->get_future());
    pool.Submit([task] { (*task)(); });
    ++next;
  };
  // On an error the patches written so far stay in the file, which is then not marked complete.
  auto abort_run = [&](const std::string& message) {
    for (auto& f : in_flight) f.wait();
    if (progress) std::fprintf(stderr, "\n");
    if (!writer) return Fail(cmd, message);
    const int64_t kept = writer->num_patches();
    writer.reset();  // closes without marking the file complete
    return Fail(cmd, message + " (the " + std::to_string(kept) + " patches made before are in '" +
                         o.output + "', marked incomplete)");
  };
  for (int64_t done = 0; done < n_events; ++done) {
    while (next < n_events && static_cast<int64_t>(in_flight.size()) < window) submit();
    StatusOr<EventResult> result = in_flight.front().get();
    in_flight.pop_front();
    if (!result.ok()) return abort_run(result.status().message());
    read_s += result->read_seconds;
    reco_s += result->reco_seconds;
    Timer write_timer;
    for (const PlaneResult& pr : result->planes) {
      hits_by_plane[pr.plane] += pr.hits;
      for (int c = 0; c < sim::kNumCategories; ++c) hit_categories[c] += pr.hit_categories[c];
      for (std::size_t first = 0; first < pr.records.size(); first += kFillBlock) {
        const std::size_t n = std::min(kFillBlock, pr.records.size() - first);
        for (std::size_t k = 0; k < n; ++k) {
          const reco::PatchCenter& c = pr.centres[first + k];
          pr.views[pr.view_of[first + k]].FillPatch(c.wire, c.tick, pixels.data() + k * psize);
          const io::PatchRecord& rec = pr.records[first + k];
          ++by_plane_label[pr.plane][rec.label];
          michel += rec.michel;
          empty += rec.kind == static_cast<uint8_t>(io::PatchKind::kEmpty) ? 1 : 0;
        }
        const std::span<const float> block(pixels.data(), n * psize);
        const std::span<const io::PatchRecord> recs(pr.records.data() + first, n);
        if (writer) {
          if (Status s = writer->Append(block, recs); !s.ok()) return abort_run(s.message());
        }
        if (npy) {
          if (Status s = npy->Append(block, recs); !s.ok()) return abort_run(s.message());
        }
        total += static_cast<int64_t>(n);
      }
    }
    write_s += write_timer.Seconds();
    if (progress) {
      const double t = timer.Seconds();
      std::fprintf(stderr, "\r[larserve patches] %lld/%lld events  %lld patches  %.0f patches/s   ",
                   static_cast<long long>(done + 1), static_cast<long long>(n_events),
                   static_cast<long long>(total), total / std::max(t, 1e-9));
      std::fflush(stderr);
    }
  }
  Timer close_timer;
  if (writer) {
    if (Status s = writer->Close(); !s.ok()) return Fail(cmd, s.message());
  }
  if (npy) {
    if (Status s = npy->Close(total); !s.ok()) return Fail(cmd, s.message());
  }
  write_s += close_timer.Seconds();
  const double seconds = timer.Seconds();
  if (progress) std::fprintf(stderr, "\n");

  const auto bytes = std::filesystem::file_size(o.output, ec);
  const char* label_names[io::kNumPatchLabels] = {"track", "em", "none"};
  nlohmann::json j;
  j["input"] = o.input;
  j["output"] = o.output;
  j["npy_dir"] = o.npy_dir;
  j["events"] = n_events;
  j["apas"] = in.info().num_apas;
  j["selection"] = sel;
  j["threads"] = o.threads;
  nlohmann::json hits_json, hits_per_event, by_plane, by_label;
  std::array<int64_t, io::kNumPatchLabels> label_total{};
  for (int p : *planes) {
    const std::string name(sim::PlaneName(p));
    hits_json[name] = hits_by_plane[p];
    hits_per_event[name] = static_cast<double>(hits_by_plane[p]) / n_events;
    nlohmann::json lp;
    for (int l = 0; l < io::kNumPatchLabels; ++l) {
      lp[label_names[l]] = by_plane_label[p][l];
      label_total[l] += by_plane_label[p][l];
    }
    by_plane[name] = lp;
  }
  for (int l = 0; l < io::kNumPatchLabels; ++l) by_label[label_names[l]] = label_total[l];
  nlohmann::json cats;
  for (int c = 0; c < sim::kNumCategories; ++c) {
    cats[std::string(sim::CategoryName(static_cast<sim::Category>(c)))] = hit_categories[c];
  }
  j["hits"] = hits_json;
  j["hits_per_event"] = hits_per_event;
  j["hit_categories"] = cats;
  j["patches"] = total;
  j["by_label"] = by_label;
  j["by_plane"] = by_plane;
  j["michel"] = michel;
  j["empty"] = empty;
  j["file_bytes"] = ec ? 0 : static_cast<int64_t>(bytes);
  j["seconds"] = seconds;
  j["patches_per_second"] = total / std::max(seconds, 1e-9);
  j["seconds_read"] = read_s;    // summed over workers
  j["seconds_reco"] = reco_s;    // hits, truth, selection, views; summed over workers
  j["seconds_write"] = write_s;  // patch filling and HDF5 writing (one thread)
  j["peak_rss_mb"] = PeakRssBytes() / 1048576.0;
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("larserve patches: %lld event%s from %s -> %s (%lld patches, %.1f MB)\n",
              static_cast<long long>(n_events), n_events > 1 ? "s" : "", o.input.c_str(),
              o.output.c_str(), static_cast<long long>(total),
              j["file_bytes"].get<int64_t>() / 1e6);
  std::printf("  %-6s %10s %10s %10s %10s\n", "plane", "hits", "track", "em", "none");
  for (int p : *planes) {
    std::printf(
        "  %-6s %10lld %10lld %10lld %10lld\n", std::string(sim::PlaneName(p)).c_str(),
        static_cast<long long>(hits_by_plane[p]), static_cast<long long>(by_plane_label[p][0]),
        static_cast<long long>(by_plane_label[p][1]), static_cast<long long>(by_plane_label[p][2]));
  }
  int64_t all_hits = 0;
  for (int64_t h : hits_by_plane) all_hits += h;
  std::printf("  %-6s %10lld %10lld %10lld %10lld\n", "total", static_cast<long long>(all_hits),
              static_cast<long long>(label_total[0]), static_cast<long long>(label_total[1]),
              static_cast<long long>(label_total[2]));
  std::printf("  of which %lld Michel, %lld empty patches; selection: balance %s",
              static_cast<long long>(michel), static_cast<long long>(empty), o.balance.c_str());
  if (selection.balance) {
    std::printf(", track keep %g, empty per hit %g", selection.track_keep, selection.empty_per_hit);
  }
  std::printf(", seed %llu\n", static_cast<unsigned long long>(o.seed));
  std::printf("  %.2f s, %.0f patches/s (%d thread%s), peak memory %.0f MB\n", seconds,
              total / std::max(seconds, 1e-9), o.threads, o.threads > 1 ? "s" : "",
              PeakRssBytes() / 1048576.0);
  return 0;
}

}  // namespace

void RegisterPatches(CLI::App& app, RunFn* run) {
  auto opts = std::make_shared<PatchesOptions>();
  CLI::App* cmd = app.add_subcommand(
      "patches",
      "Find hits on every plane of every event of an events file, match them to the truth and "
      "write 48x48 CNN input patches (LArSoft PointIdAlg, ProtoDUNE-SP settings) with labels to "
      "an HDF5 patch file (docs/formats.md). By default a training set: every em and Michel "
      "hit, 1 in 5 track hits, and empty patches near signal; --balance none keeps every hit.");
  cmd->add_option("events", opts->input, "input events file (from larserve sim)")->required();
  cmd->add_option("-o,--output", opts->output, "output patch file (.h5)");
  cmd->add_option("--npy-dir", opts->npy_dir,
                  "also (or instead) write the patches as .npy files in this directory, for "
                  "Python without h5py (python/patchdata.py reads both)");
  cmd->add_option("--planes", opts->planes, "planes to use, a subset of U,V,W");
  cmd->add_option("--balance", opts->balance,
                  "train: sample a training set (default); none: keep every hit, no empty "
                  "patches (an evaluation set)");
  auto* keep = cmd->add_option("--track-keep", opts->track_keep,
                               "fraction of track-labelled hits kept (train)");
  auto* empty = cmd->add_option("--empty-per-hit", opts->empty_per_hit,
                                "empty patches drawn per hit (train)");
  cmd->add_option("--delta-rays", opts->delta_rays,
                  "label of delta-ray hits: track (the original 3-class scheme, default), em "
                  "(later schemes) or size:E (E in MeV, e.g. size:5: a delta ray whose electron "
                  "had less than E MeV of kinetic energy at creation is track, the others em); "
                  "with --balance train, em-labelled delta rays are all kept")
      ->check(DeltaRaysValidator());
  cmd->add_option("--seed,-s", opts->seed, "seed of the sampling");
  cmd->add_option("--threads,-t", opts->threads, "worker threads (events in parallel)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--compression", opts->compression, "HDF5 deflate level 0-9 (0 = none)")
      ->check(CLI::Range(0, 9));
  cmd->add_flag("--json", opts->json, "print the summary as JSON (no progress line)");
  cmd->callback([opts, run, keep, empty] {
    opts->sampling_given = keep->count() > 0 || empty->count() > 0;
    *run = [opts] { return RunPatches(*opts); };
  });
}

}  // namespace larserve::apps
