#include "larserve/io/event_file.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <type_traits>

#include "hdf5_util.h"
#include "larserve/version.h"

namespace larserve::io {
namespace {

using namespace internal;  // NOLINT: the shared HDF5 helpers of this module

// On-disk row of the particles table (packed in the file).
struct ParticleRow {
  int32_t id, parent, pdg;
  uint8_t process, category;
  float t_ns;
  float start_x, start_y, start_z, end_x, end_y, end_z;
  float px, py, pz;
  float kinetic_mev, edep_mev, electrons;
};

Handle ParticleMemType() {
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(ParticleRow));
#define LARSERVE_FIELD(name, type) H5Tinsert(t, #name, HOFFSET(ParticleRow, name), type)
  LARSERVE_FIELD(id, H5T_NATIVE_INT32);
  LARSERVE_FIELD(parent, H5T_NATIVE_INT32);
  LARSERVE_FIELD(pdg, H5T_NATIVE_INT32);
  LARSERVE_FIELD(process, H5T_NATIVE_UINT8);
  LARSERVE_FIELD(category, H5T_NATIVE_UINT8);
  LARSERVE_FIELD(t_ns, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(start_x, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(start_y, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(start_z, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(end_x, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(end_y, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(end_z, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(px, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(py, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(pz, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(kinetic_mev, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(edep_mev, H5T_NATIVE_FLOAT);
  LARSERVE_FIELD(electrons, H5T_NATIVE_FLOAT);
#undef LARSERVE_FIELD
  return Handle(t, H5Tclose);
}

std::string EventName(int64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%06lld", static_cast<long long>(index));
  return buf;
}

std::string PlanePath(int64_t index, int apa, int plane) {
  return "/events/" + EventName(index) + "/apa" + std::to_string(apa) + "/" +
         std::string(sim::PlaneName(plane));
}

// ---------------------------------------------------------------- writing helpers

// Compares the CRC-32 stored with a dataset with that of the values read.
Status VerifyCrc(hid_t ds, const std::string& name, const void* data, std::size_t bytes) {
  if (H5Aexists(ds, "crc32") <= 0) return DataLoss("dataset '" + name + "' has no crc32 attribute");
  Handle attr(H5Aopen(ds, "crc32", H5P_DEFAULT), H5Aclose);
  uint32_t stored = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_UINT32, &stored) < 0) {
    return DataLoss("cannot read the crc32 of dataset '" + name + "': " + Hdf5Error());
  }
  if (stored != Crc32(data, bytes)) {
    return DataLoss("dataset '" + name + "' does not match its CRC-32: the file is corrupt");
  }
  return Status::Ok();
}

Status WriteDataset(hid_t loc, const char* name, hid_t mem_type, hid_t file_type, const void* data,
                    std::size_t n, std::size_t elem_size, int level) {
  const hsize_t dims[1] = {n};
  const hsize_t maxdims[1] = {H5S_UNLIMITED};
  Handle space(H5Screate_simple(1, dims, maxdims), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  const hsize_t target = std::max<hsize_t>(1, (1u << 18) / elem_size);  // ~256 KiB chunks
  const hsize_t chunk[1] = {std::clamp<hsize_t>(n, 1, target)};
  H5Pset_chunk(dcpl.get(), 1, chunk);
  H5Pset_obj_track_times(dcpl.get(), false);
  if (level > 0) {
    H5Pset_shuffle(dcpl.get());
    H5Pset_deflate(dcpl.get(), static_cast<unsigned>(level));
  }
  H5Pset_fletcher32(dcpl.get());
  Handle ds(H5Dcreate2(loc, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
            H5Dclose);
  if (!ds.valid())
    return Internal(std::string("cannot create dataset ") + name + ": " + Hdf5Error());
  if (n > 0 && H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    return Internal(std::string("cannot write dataset ") + name + ": " + Hdf5Error());
  }
  // End-to-end check of the contents, independent of HDF5's own checksums (which do not cover
  // every index field): CRC-32 of the values as they are in memory.
  return WriteScalarAttr<uint32_t>(ds.get(), "crc32", Crc32(data, n * elem_size));
}

template <typename T>
Status WriteVector(hid_t loc, const char* name, const std::vector<T>& v, int level) {
  return WriteDataset(loc, name, NativeType<T>(), NativeType<T>(), v.data(), v.size(), sizeof(T),
                      level);
}

// ---------------------------------------------------------------- reading helpers

// Reads a 1-D dataset of T (after checking its stored type class and size) of at most max_n.
template <typename T>
StatusOr<std::vector<T>> ReadVector(hid_t loc, const std::string& name, std::size_t max_n) {
  if (H5Lexists(loc, name.c_str(), H5P_DEFAULT) <= 0) {
    return NotFound("dataset '" + name + "' is missing");
  }
  Handle ds(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) return DataLoss("cannot open dataset '" + name + "': " + Hdf5Error());
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) {
    return InvalidArgument("dataset '" + name + "' is not one-dimensional");
  }
  const H5T_class_t cls = H5Tget_class(type.get());
  const H5T_class_t want = std::is_floating_point_v<T> ? H5T_FLOAT : H5T_INTEGER;
  if (cls != want || H5Tget_size(type.get()) != sizeof(T)) {
    return InvalidArgument("dataset '" + name + "' has the wrong element type");
  }
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  if (dims[0] > max_n) {
    return InvalidArgument("dataset '" + name + "' has " + std::to_string(dims[0]) +
                           " elements, more than the plausible maximum " + std::to_string(max_n));
  }
  std::vector<T> out(dims[0]);
  if (dims[0] > 0 &&
      H5Dread(ds.get(), NativeType<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    return DataLoss("cannot read dataset '" + name +
                    "' (checksum or storage error: the file is corrupt): " + Hdf5Error());
  }
  RETURN_IF_ERROR(VerifyCrc(ds.get(), name, out.data(), out.size() * sizeof(T)));
  return out;
}

}  // namespace

// ======================================================================= writer

struct EventFileWriter::Impl {
  std::string path;
  Handle file;
  Handle events;
  WriterOptions options;
  int num_apas = 0;
  int64_t written = 0;
  int64_t last_index = -1;
  bool closed = false;

  Status Init(const std::string& path, const sim::SimConfig& config, const sim::Geometry& geometry,
              uint64_t run_seed, const WriterOptions& options);
  // Releases the handles of a file that failed to initialise. Caller holds the HDF5 lock.
  void Abandon() {
    closed = true;
    events.Reset();
    file.Reset();
  }
};

StatusOr<std::unique_ptr<EventFileWriter>> EventFileWriter::Create(const std::string& path,
                                                                   const sim::SimConfig& config,
                                                                   const sim::Geometry& geometry,
                                                                   uint64_t run_seed,
                                                                   const WriterOptions& options) {
  if (options.compression_level < 0 || options.compression_level > 9) {
    return InvalidArgument("compression level must be 0-9, got " +
                           std::to_string(options.compression_level));
  }
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  SilenceHdf5();
  std::unique_ptr<EventFileWriter> w(new EventFileWriter());
  w->impl_ = std::make_unique<Impl>();
  Status s = w->impl_->Init(path, config, geometry, run_seed, options);
  if (!s.ok()) {
    w->impl_->Abandon();  // under the lock; the destructor then has nothing to do
    return s;
  }
  return w;
}

Status EventFileWriter::Impl::Init(const std::string& path, const sim::SimConfig& config,
                                   const sim::Geometry& geometry, uint64_t run_seed,
                                   const WriterOptions& options) {
  Impl& im = *this;
  im.path = path;
  im.options = options;
  im.num_apas = geometry.num_apas();
  // The HDF5 1.10 file format: object headers and chunk indexes carry checksums, so corrupt
  // metadata (attributes, groups, the index of a dataset's chunks) is detected, not only
  // corrupt chunk data (Fletcher-32). With the 1.8 format a damaged chunk-index entry made
  // HDF5 return fill values (zeros) without an error. Readers need HDF5 >= 1.10 (h5py has it).
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110);
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  H5Pset_obj_track_times(fcpl.get(), false);  // the root group: no time stamps either
  im.file = Handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose);
  if (!im.file.valid()) {
    return NotFound("cannot create events file '" + path + "': " + Hdf5Error());
  }
  Handle root(H5Gopen2(im.file.get(), "/", H5P_DEFAULT), H5Gclose);
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "format", kEventsFormat));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "schema_version", kEventsSchemaVersion));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "larserve_version", kVersion));
  RETURN_IF_ERROR(WriteScalarAttr<uint64_t>(root.get(), "run_seed", run_seed));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "config", config.ToJson()));
  RETURN_IF_ERROR(WriteScalarAttr<int64_t>(root.get(), "n_events", 0));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "complete", 0));
  Handle geo = CreateGroup(im.file.get(), "geometry");
  const auto& d = config.detector;
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(geo.get(), "n_apas", geometry.num_apas()));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(geo.get(), "n_ticks", d.n_ticks));
  RETURN_IF_ERROR(WriteScalarAttr<double>(geo.get(), "tick_us", d.tick_us));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(geo.get(), "trigger_tick", d.trigger_tick));
  const int32_t channels[3] = {geometry.num_channels(0), geometry.num_channels(1),
                               geometry.num_channels(2)};
  RETURN_IF_ERROR(WriteArrayAttr<int32_t>(geo.get(), "channels", channels, 3));
  RETURN_IF_ERROR(WriteStringAttr(geo.get(), "planes", "U,V,W"));
  RETURN_IF_ERROR(WriteArrayAttr<double>(geo.get(), "wire_pitch_mm", d.wire_pitch_mm.data(), 3));
  RETURN_IF_ERROR(WriteArrayAttr<double>(geo.get(), "wire_angle_deg", d.wire_angle_deg.data(), 3));
  std::vector<double> cx, z0;
  for (int a = 0; a < geometry.num_apas(); ++a) {
    cx.push_back(geometry.apa_center_x(a));
    z0.push_back(geometry.apa_z0(a));
  }
  RETURN_IF_ERROR(WriteArrayAttr<double>(geo.get(), "apa_center_x_cm", cx.data(), cx.size()));
  RETURN_IF_ERROR(WriteArrayAttr<double>(geo.get(), "apa_z0_cm", z0.data(), z0.size()));
  im.events = CreateGroup(im.file.get(), "events");
  if (!im.events.valid())
    return Internal("cannot create /events in '" + path + "': " + Hdf5Error());
  return Status::Ok();
}

EventFileWriter::~EventFileWriter() {
  if (impl_ && !impl_->closed) (void)Close();
}

Status EventFileWriter::Write(const sim::SimEvent& ev) {
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  Impl& im = *impl_;
  if (im.closed) return FailedPrecondition("events file '" + im.path + "' is already closed");
  if (ev.index <= im.last_index) {
    return InvalidArgument("event " + std::to_string(ev.index) + " written after event " +
                           std::to_string(im.last_index) + ": indices must increase");
  }
  if (static_cast<int>(ev.planes.size()) != im.num_apas * sim::kNumPlanes) {
    return InvalidArgument("event has " + std::to_string(ev.planes.size()) + " planes, expected " +
                           std::to_string(im.num_apas * sim::kNumPlanes));
  }
  const int level = im.options.compression_level;
  Handle g = CreateGroup(im.events.get(), EventName(ev.index));
  if (!g.valid()) return Internal("cannot create event group: " + Hdf5Error());
  RETURN_IF_ERROR(WriteScalarAttr<int64_t>(g.get(), "event_index", ev.index));
  RETURN_IF_ERROR(WriteScalarAttr<uint64_t>(g.get(), "event_seed", ev.seed));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(g.get(), "n_cosmics", ev.n_cosmics));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(g.get(), "n_beam", ev.n_beam));
  RETURN_IF_ERROR(WriteScalarAttr<int64_t>(g.get(), "n_deposits", ev.n_deposits));
  RETURN_IF_ERROR(WriteScalarAttr<double>(g.get(), "deposited_mev", ev.deposited_mev));
  RETURN_IF_ERROR(WriteScalarAttr<double>(g.get(), "electrons_at_wires", ev.electrons_at_wires));

  std::vector<ParticleRow> rows(ev.particles.size());
  std::memset(rows.data(), 0, rows.size() * sizeof(ParticleRow));  // padding bytes too
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& p = ev.particles[i];
    auto& r = rows[i];
    r.id = p.id;
    r.parent = p.parent;
    r.pdg = p.pdg;
    r.process = static_cast<uint8_t>(p.process);
    r.category = static_cast<uint8_t>(p.category);
    r.t_ns = p.t_ns;
    r.start_x = p.start[0];
    r.start_y = p.start[1];
    r.start_z = p.start[2];
    r.end_x = p.end[0];
    r.end_y = p.end[1];
    r.end_z = p.end[2];
    r.px = p.momentum[0];
    r.py = p.momentum[1];
    r.pz = p.momentum[2];
    r.kinetic_mev = p.kinetic_mev;
    r.edep_mev = p.edep_mev;
    r.electrons = p.electrons;
  }
  Handle mem = ParticleMemType();
  Handle packed(H5Tcopy(mem.get()), H5Tclose);
  H5Tpack(packed.get());
  RETURN_IF_ERROR(WriteDataset(g.get(), "particles", mem.get(), packed.get(), rows.data(),
                               rows.size(), sizeof(ParticleRow), level));
  {
    Handle ds(H5Dopen2(g.get(), "particles", H5P_DEFAULT), H5Dclose);
    std::string procs, cats;
    for (int i = 0; i <= static_cast<int>(sim::Process::kPhotoelectric); ++i) {
      procs += (i ? "," : "") + std::string(sim::ProcessName(static_cast<sim::Process>(i)));
    }
    for (int i = 0; i < sim::kNumCategories; ++i) {
      cats += (i ? "," : "") + std::string(sim::CategoryName(static_cast<sim::Category>(i)));
    }
    RETURN_IF_ERROR(WriteStringAttr(ds.get(), "process_names", procs));
    RETURN_IF_ERROR(WriteStringAttr(ds.get(), "category_names", cats));
  }
  for (int apa = 0; apa < im.num_apas; ++apa) {
    Handle ga = CreateGroup(g.get(), "apa" + std::to_string(apa));
    for (int plane = 0; plane < sim::kNumPlanes; ++plane) {
      const sim::PlaneData& pd = ev.planes[apa * sim::kNumPlanes + plane];
      Handle gp = CreateGroup(ga.get(), std::string(sim::PlaneName(plane)));
      if (!gp.valid()) return Internal("cannot create plane group: " + Hdf5Error());
      RETURN_IF_ERROR(WriteScalarAttr<int32_t>(gp.get(), "n_channels", pd.n_channels));
      RETURN_IF_ERROR(WriteScalarAttr<int32_t>(gp.get(), "n_ticks", pd.n_ticks));
      RETURN_IF_ERROR(WriteScalarAttr<float>(gp.get(), "noise_rms_adc", pd.noise_rms_adc));
      RETURN_IF_ERROR(WriteVector(gp.get(), "roi_channel", pd.roi_channel, level));
      RETURN_IF_ERROR(WriteVector(gp.get(), "roi_start", pd.roi_start, level));
      RETURN_IF_ERROR(WriteVector(gp.get(), "roi_length", pd.roi_length, level));
      RETURN_IF_ERROR(WriteVector(gp.get(), "roi_offset", pd.roi_offset, level));
      RETURN_IF_ERROR(WriteVector(gp.get(), "signal", pd.signal, level));
      RETURN_IF_ERROR(WriteVector(gp.get(), "truth_channel", pd.truth_channel, level));
      RETURN_IF_ERROR(WriteVector(gp.get(), "truth_tick", pd.truth_tick, level));
      RETURN_IF_ERROR(WriteVector(gp.get(), "truth_id", pd.truth_id, level));
      RETURN_IF_ERROR(WriteVector(gp.get(), "truth_charge", pd.truth_charge, level));
    }
  }
  im.last_index = ev.index;
  ++im.written;
  Handle root(H5Gopen2(im.file.get(), "/", H5P_DEFAULT), H5Gclose);
  RETURN_IF_ERROR(UpdateScalarAttr<int64_t>(root.get(), "n_events", im.written));
  return Status::Ok();
}

Status EventFileWriter::Close() {
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  Impl& im = *impl_;
  if (im.closed) return Status::Ok();
  im.closed = true;
  Handle root(H5Gopen2(im.file.get(), "/", H5P_DEFAULT), H5Gclose);
  Status s = UpdateScalarAttr<int32_t>(root.get(), "complete", 1);
  root.Reset();
  im.events.Reset();
  const hid_t f = im.file.get();
  if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 && s.ok()) {
    s = DataLoss("cannot flush events file '" + im.path + "': " + Hdf5Error());
  }
  im.file.Reset();
  return s;
}

// ======================================================================= reader

struct EventFileReader::Impl {
  std::string path;
  Handle file;
  EventFileInfo info;
  std::vector<std::string> event_names;  // sorted
  std::vector<int64_t> event_indices;
};

StatusOr<std::unique_ptr<EventFileReader>> EventFileReader::Open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return NotFound("events file '" + path + "' does not exist");
  if (!std::filesystem::is_regular_file(path, ec)) {
    return InvalidArgument("events file '" + path + "' is not a regular file");
  }
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  SilenceHdf5();
  std::unique_ptr<EventFileReader> r(new EventFileReader());
  r->impl_ = std::make_unique<Impl>();
  Impl& im = *r->impl_;
  im.path = path;
  const std::string where = "events file '" + path + "'";
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return InvalidArgument(
        where +
        " is not an HDF5 file (wrong signature: not an events file, or its header is corrupt)");
  }
  im.file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!im.file.valid()) {
    return DataLoss(where + " cannot be opened: it is truncated or corrupt (HDF5: " + Hdf5Error() +
                    ")");
  }
  Handle root(H5Gopen2(im.file.get(), "/", H5P_DEFAULT), H5Gclose);
  if (!root.valid()) return DataLoss(where + ": cannot open the root group: " + Hdf5Error());
  auto format = ReadStringAttr(root.get(), "format");
  if (!format.ok() || *format != kEventsFormat) {
    return InvalidArgument(where +
                           " is an HDF5 file but not a larserve events file (root attribute "
                           "'format' is not '" +
                           std::string(kEventsFormat) + "')");
  }
  EventFileInfo& info = im.info;
  auto version = ReadScalarAttr<int32_t>(root.get(), "schema_version");
  if (!version.ok()) return version.status().WithContext(where);
  info.schema_version = *version;
  if (info.schema_version != kEventsSchemaVersion) {
    return FailedPrecondition(where + " has schema version " + std::to_string(info.schema_version) +
                              "; this larserve reads version " +
                              std::to_string(kEventsSchemaVersion) +
                              ": regenerate it with this version's `larserve sim`");
  }
  auto ctx = [&](const Status& s) { return s.WithContext(where); };
  {
    auto v = ReadStringAttr(root.get(), "larserve_version");
    if (!v.ok()) return ctx(v.status());
    info.larserve_version = *v;
    auto seed = ReadScalarAttr<uint64_t>(root.get(), "run_seed");
    if (!seed.ok()) return ctx(seed.status());
    info.run_seed = *seed;
    auto cfg = ReadStringAttr(root.get(), "config");
    if (!cfg.ok()) return ctx(cfg.status());
    info.config_json = *cfg;
    auto complete = ReadScalarAttr<int32_t>(root.get(), "complete");
    if (!complete.ok()) return ctx(complete.status());
    info.complete = *complete == 1;
  }
  Handle geo(H5Gopen2(im.file.get(), "geometry", H5P_DEFAULT), H5Gclose);
  if (!geo.valid()) return DataLoss(where + ": the /geometry group is missing");
  {
    auto n_apas = ReadScalarAttr<int32_t>(geo.get(), "n_apas");
    auto n_ticks = ReadScalarAttr<int32_t>(geo.get(), "n_ticks");
    auto tick_us = ReadScalarAttr<double>(geo.get(), "tick_us");
    auto trig = ReadScalarAttr<int32_t>(geo.get(), "trigger_tick");
    auto channels = ReadArrayAttr<int32_t>(geo.get(), "channels", 3);
    for (const Status& s :
         {n_apas.status(), n_ticks.status(), tick_us.status(), trig.status(), channels.status()}) {
      if (!s.ok()) return ctx(s.WithContext("/geometry (the file is corrupt or not written by larserve)"));
    }
    info.num_apas = *n_apas;
    info.n_ticks = *n_ticks;
    info.tick_us = *tick_us;
    info.trigger_tick = *trig;
    if (info.num_apas < 1 || info.num_apas > 12 || info.n_ticks < 1 || info.n_ticks > 65535 ||
        channels->size() != 3 || !(info.tick_us > 0)) {
      return InvalidArgument(where + ": /geometry has impossible values (n_apas " +
                             std::to_string(info.num_apas) + ", n_ticks " +
                             std::to_string(info.n_ticks) + ")");
    }
    for (int p = 0; p < 3; ++p) {
      info.channels[p] = (*channels)[p];
      if (info.channels[p] < 1 || info.channels[p] > 65535) {
        return InvalidArgument(where + ": /geometry channels[" + std::to_string(p) +
                               "] = " + std::to_string(info.channels[p]) + " is impossible");
      }
    }
  }
  Handle events(H5Gopen2(im.file.get(), "events", H5P_DEFAULT), H5Gclose);
  if (!events.valid()) return DataLoss(where + ": the /events group is missing");
  H5G_info_t ginfo;
  if (H5Gget_info(events.get(), &ginfo) < 0)
    return DataLoss(where + ": cannot list /events: " + Hdf5Error());
  for (hsize_t i = 0; i < ginfo.nlinks; ++i) {
    char name[64] = {0};
    const ssize_t len = H5Lget_name_by_idx(events.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name,
                                           sizeof(name), H5P_DEFAULT);
    if (len <= 0 || len >= static_cast<ssize_t>(sizeof(name))) {
      return DataLoss(where + ": unreadable entry in /events");
    }
    char* end = nullptr;
    const long long idx = std::strtoll(name, &end, 10);
    if (*end != '\0' || idx < 0) {
      return InvalidArgument(where + ": unexpected entry '/events/" + name + "'");
    }
    im.event_names.push_back(name);
    im.event_indices.push_back(idx);
  }
  info.num_events = static_cast<int64_t>(im.event_names.size());
  return r;
}

EventFileReader::~EventFileReader() {
  if (impl_) {
    std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
    impl_->file.Reset();
  }
}

const EventFileInfo& EventFileReader::info() const { return impl_->info; }

StatusOr<int64_t> EventFileReader::EventIndex(int64_t i) const {
  if (i < 0 || i >= num_events()) {
    return OutOfRange("event " + std::to_string(i) + " requested but '" + impl_->path + "' holds " +
                      std::to_string(num_events()) + " events (0 to " +
                      std::to_string(num_events() - 1) + ")");
  }
  return impl_->event_indices[i];
}

StatusOr<std::vector<sim::TruthParticle>> EventFileReader::ReadParticles(int64_t i) const {
  ASSIGN_OR_RETURN(int64_t index, EventIndex(i));
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  const std::string path = "/events/" + EventName(index);
  const std::string where = "'" + impl_->path + "' " + path;
  Handle g(H5Gopen2(impl_->file.get(), path.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) return DataLoss(where + ": cannot open the event group: " + Hdf5Error());
  if (H5Lexists(g.get(), "particles", H5P_DEFAULT) <= 0)
    return DataLoss(where + ": no particles table");
  Handle ds(H5Dopen2(g.get(), "particles", H5P_DEFAULT), H5Dclose);
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  Handle ftype(H5Dget_type(ds.get()), H5Tclose);
  if (!ds.valid() || H5Sget_simple_extent_ndims(space.get()) != 1 ||
      H5Tget_class(ftype.get()) != H5T_COMPOUND) {
    return InvalidArgument(where + "/particles is not a 1-D compound table");
  }
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  if (n > (1u << 26)) return InvalidArgument(where + "/particles has an implausible size");
  std::vector<ParticleRow> rows(n);
  Handle mem = ParticleMemType();
  if (n > 0 && H5Dread(ds.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()) < 0) {
    return DataLoss(where +
                    "/particles cannot be read (corrupt or missing fields): " + Hdf5Error());
  }
  if (Status c = VerifyCrc(ds.get(), "particles", rows.data(), rows.size() * sizeof(ParticleRow)); !c.ok()) {
    return c.WithContext(where);
  }
  std::vector<sim::TruthParticle> out(n);
  for (std::size_t k = 0; k < n; ++k) {
    const ParticleRow& r = rows[k];
    if (r.id != static_cast<int32_t>(k) || r.parent < -1 || r.parent >= static_cast<int32_t>(n) ||
        r.process > static_cast<uint8_t>(sim::Process::kPhotoelectric) ||
        r.category >= sim::kNumCategories) {
      return InvalidArgument(where + "/particles row " + std::to_string(k) +
                             " is inconsistent (id " + std::to_string(r.id) + ", parent " +
                             std::to_string(r.parent) + ")");
    }
    auto& p = out[k];
    p.id = r.id;
    p.parent = r.parent;
    p.pdg = r.pdg;
    p.process = static_cast<sim::Process>(r.process);
    p.category = static_cast<sim::Category>(r.category);
    p.t_ns = r.t_ns;
    p.start[0] = r.start_x;
    p.start[1] = r.start_y;
    p.start[2] = r.start_z;
    p.end[0] = r.end_x;
    p.end[1] = r.end_y;
    p.end[2] = r.end_z;
    p.momentum[0] = r.px;
    p.momentum[1] = r.py;
    p.momentum[2] = r.pz;
    p.kinetic_mev = r.kinetic_mev;
    p.edep_mev = r.edep_mev;
    p.electrons = r.electrons;
  }
  return out;
}

StatusOr<sim::PlaneData> EventFileReader::ReadPlane(int64_t i, int apa, int plane) const {
  ASSIGN_OR_RETURN(int64_t index, EventIndex(i));
  const EventFileInfo& info = impl_->info;
  if (apa < 0 || apa >= info.num_apas) {
    return OutOfRange("APA " + std::to_string(apa) + " requested but '" + impl_->path + "' has " +
                      std::to_string(info.num_apas) + " APAs (0 to " +
                      std::to_string(info.num_apas - 1) + ")");
  }
  if (plane < 0 || plane >= sim::kNumPlanes)
    return OutOfRange("plane must be 0 (U), 1 (V) or 2 (W)");
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  const std::string path = PlanePath(index, apa, plane);
  const std::string where = "'" + impl_->path + "' " + path;
  Handle g(H5Gopen2(impl_->file.get(), path.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) return DataLoss(where + ": the plane group is missing or unreadable");
  sim::PlaneData pd;
  pd.apa = apa;
  pd.plane = plane;
  auto nch = ReadScalarAttr<int32_t>(g.get(), "n_channels");
  auto nt = ReadScalarAttr<int32_t>(g.get(), "n_ticks");
  auto rms = ReadScalarAttr<float>(g.get(), "noise_rms_adc");
  for (const Status& s : {nch.status(), nt.status(), rms.status()}) {
    if (!s.ok()) return s.WithContext(where);
  }
  if (*nch != info.channels[plane] || *nt != info.n_ticks) {
    return InvalidArgument(where + ": plane size " + std::to_string(*nch) + " x " +
                           std::to_string(*nt) + " disagrees with the geometry " +
                           std::to_string(info.channels[plane]) + " x " +
                           std::to_string(info.n_ticks));
  }
  pd.n_channels = *nch;
  pd.n_ticks = *nt;
  pd.noise_rms_adc = *rms;
  const std::size_t npix = static_cast<std::size_t>(pd.n_channels) * pd.n_ticks;
  auto read_all = [&]() -> Status {
    ASSIGN_OR_RETURN(pd.roi_channel, ReadVector<int32_t>(g.get(), "roi_channel", npix));
    ASSIGN_OR_RETURN(pd.roi_start, ReadVector<int32_t>(g.get(), "roi_start", npix));
    ASSIGN_OR_RETURN(pd.roi_length, ReadVector<int32_t>(g.get(), "roi_length", npix));
    ASSIGN_OR_RETURN(pd.roi_offset, ReadVector<int64_t>(g.get(), "roi_offset", npix));
    ASSIGN_OR_RETURN(pd.signal, ReadVector<float>(g.get(), "signal", npix));
    ASSIGN_OR_RETURN(pd.truth_channel, ReadVector<uint16_t>(g.get(), "truth_channel", npix));
    ASSIGN_OR_RETURN(pd.truth_tick, ReadVector<uint16_t>(g.get(), "truth_tick", npix));
    ASSIGN_OR_RETURN(pd.truth_id, ReadVector<int32_t>(g.get(), "truth_id", npix));
    ASSIGN_OR_RETURN(pd.truth_charge, ReadVector<float>(g.get(), "truth_charge", npix));
    return Status::Ok();
  };
  Status s = read_all();
  if (!s.ok()) return s.WithContext(where);
  const std::size_t nroi = pd.roi_channel.size();
  if (pd.roi_start.size() != nroi || pd.roi_length.size() != nroi || pd.roi_offset.size() != nroi) {
    return InvalidArgument(where + ": ROI arrays have different lengths");
  }
  for (std::size_t r = 0; r < nroi; ++r) {
    const int64_t off = pd.roi_offset[r], len = pd.roi_length[r], start = pd.roi_start[r];
    if (pd.roi_channel[r] < 0 || pd.roi_channel[r] >= pd.n_channels || start < 0 || len < 0 ||
        start + len > pd.n_ticks || off < 0 || off + len > static_cast<int64_t>(pd.signal.size())) {
      return InvalidArgument(where + ": ROI " + std::to_string(r) + " (channel " +
                             std::to_string(pd.roi_channel[r]) + ", ticks " +
                             std::to_string(start) + "+" + std::to_string(len) + ", offset " +
                             std::to_string(off) + ") lies outside the plane or the signal array");
    }
  }
  const std::size_t ntruth = pd.truth_channel.size();
  if (pd.truth_tick.size() != ntruth || pd.truth_id.size() != ntruth ||
      pd.truth_charge.size() != ntruth) {
    return InvalidArgument(where + ": truth arrays have different lengths");
  }
  for (std::size_t k = 0; k < ntruth; ++k) {
    if (pd.truth_channel[k] >= pd.n_channels || pd.truth_tick[k] >= pd.n_ticks ||
        pd.truth_id[k] < -1) {
      return InvalidArgument(where + ": truth pixel " + std::to_string(k) +
                             " lies outside the plane");
    }
  }
  return pd;
}

StatusOr<sim::SimEvent> EventFileReader::ReadEvent(int64_t i) const {
  ASSIGN_OR_RETURN(int64_t index, EventIndex(i));
  sim::SimEvent ev;
  ev.index = index;
  {
    std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
    const std::string path = "/events/" + EventName(index);
    Handle g(H5Gopen2(impl_->file.get(), path.c_str(), H5P_DEFAULT), H5Gclose);
    if (!g.valid())
      return DataLoss("'" + impl_->path + "' " + path + ": cannot open the event group");
    auto seed = ReadScalarAttr<uint64_t>(g.get(), "event_seed");
    auto nc = ReadScalarAttr<int32_t>(g.get(), "n_cosmics");
    auto nb = ReadScalarAttr<int32_t>(g.get(), "n_beam");
    auto nd = ReadScalarAttr<int64_t>(g.get(), "n_deposits");
    auto e = ReadScalarAttr<double>(g.get(), "deposited_mev");
    auto q = ReadScalarAttr<double>(g.get(), "electrons_at_wires");
    for (const Status& s :
         {seed.status(), nc.status(), nb.status(), nd.status(), e.status(), q.status()}) {
      if (!s.ok()) return s.WithContext("'" + impl_->path + "' " + path);
    }
    ev.seed = *seed;
    ev.n_cosmics = *nc;
    ev.n_beam = *nb;
    ev.n_deposits = *nd;
    ev.deposited_mev = *e;
    ev.electrons_at_wires = *q;
  }
  ASSIGN_OR_RETURN(ev.particles, ReadParticles(i));
  for (int apa = 0; apa < impl_->info.num_apas; ++apa) {
    for (int plane = 0; plane < sim::kNumPlanes; ++plane) {
      ASSIGN_OR_RETURN(sim::PlaneData pd, ReadPlane(i, apa, plane));
      for (int32_t id : pd.truth_id) {
        if (id >= static_cast<int32_t>(ev.particles.size())) {
          return InvalidArgument("'" + impl_->path + "' " + PlanePath(index, apa, plane) +
                                 ": truth_id " + std::to_string(id) + " refers to no particle (" +
                                 std::to_string(ev.particles.size()) + " particles)");
        }
      }
      ev.planes.push_back(std::move(pd));
    }
  }
  return ev;
}

}  // namespace larserve::io
