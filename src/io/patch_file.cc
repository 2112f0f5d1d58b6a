#include "larserve/io/patch_file.h"

#include <hdf5.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <span>
#include <type_traits>

#include "hdf5_util.h"
#include "larserve/version.h"

namespace larserve::io {
namespace {

using namespace internal;  // NOLINT: the shared HDF5 helpers of this module

constexpr int kMaxPatchSide = 1024;
constexpr int kMaxBlockRows = 1 << 20;
// Rows per chunk of the 1-D datasets; the patches dataset uses chunks of ~576 KiB instead, so a
// chunk fits HDF5's default 1 MiB chunk cache (h5py reading small slices stays fast).
constexpr hsize_t kColumnChunkRows = 4096;
constexpr std::size_t kPatchChunkBytes = 576u << 10;

// Column buffers of the 1-D datasets, in the schema order (which is also the order in which the
// block CRC covers them, after the pixels).
struct Columns {
  std::vector<uint8_t> label, michel, category;
  std::vector<int64_t> event;
  std::vector<int16_t> apa;
  std::vector<uint8_t> plane;
  std::vector<int32_t> wire;
  std::vector<float> peak_tick, integral, truth_fraction;
  std::vector<uint8_t> kind;

  // fn(name, column vector) for every column, in schema order.
  template <typename Fn>
  void ForEach(Fn&& fn) {
    fn("label", label);
    fn("michel", michel);
    fn("category", category);
    fn("event", event);
    fn("apa", apa);
    fn("plane", plane);
    fn("wire", wire);
    fn("peak_tick", peak_tick);
    fn("integral", integral);
    fn("truth_fraction", truth_fraction);
    fn("kind", kind);
  }

  void Resize(std::size_t n) {
    ForEach([n](const char*, auto& v) { v.resize(n); });
  }

  void Gather(std::span<const PatchRecord> rows) {
    Resize(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const PatchRecord& r = rows[i];
      label[i] = r.label;
      michel[i] = r.michel;
      category[i] = r.category;
      event[i] = r.event;
      apa[i] = r.apa;
      plane[i] = r.plane;
      wire[i] = r.wire;
      peak_tick[i] = r.peak_tick;
      integral[i] = r.integral;
      truth_fraction[i] = r.truth_fraction;
      kind[i] = r.kind;
    }
  }

  void Scatter(std::size_t first, std::size_t n, std::vector<PatchRecord>* rows) const {
    rows->resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t k = first + i;
      PatchRecord& r = (*rows)[i];
      r.label = label[k];
      r.michel = michel[k];
      r.category = category[k];
      r.event = event[k];
      r.apa = apa[k];
      r.plane = plane[k];
      r.wire = wire[k];
      r.peak_tick = peak_tick[k];
      r.integral = integral[k];
      r.truth_fraction = truth_fraction[k];
      r.kind = kind[k];
    }
  }
};

// "" if the record is valid, else what is wrong with it.
std::string RecordError(const PatchRecord& r, DeltaRays delta) {
  if (r.category >= sim::kNumCategories) return "category " + std::to_string(r.category) + " > 4";
  const auto cat = static_cast<sim::Category>(r.category);
  if (cat == sim::Category::kDelta && delta.scheme == DeltaRays::Scheme::kSize) {
    // The size scheme labels a delta ray by its electron's energy, which the file does not
    // store: either track or em is consistent with the category, none is not.
    if (r.label != static_cast<uint8_t>(PatchLabel::kTrack) &&
        r.label != static_cast<uint8_t>(PatchLabel::kEm)) {
      return "label " + std::to_string(r.label) + " disagrees with category delta (delta rays " +
             DeltaRaysName(delta) + ": track or em by the delta ray's energy)";
    }
  } else if (r.label != static_cast<uint8_t>(LabelOfCategory(cat, delta))) {
    return "label " + std::to_string(r.label) + " disagrees with category " +
           std::string(sim::CategoryName(cat)) + " (delta rays " + DeltaRaysName(delta) + ")";
  }
  if (r.michel != (cat == sim::Category::kMichel ? 1 : 0)) {
    return "michel flag " + std::to_string(r.michel) + " disagrees with category " +
           std::string(sim::CategoryName(cat));
  }
  if (r.plane > 2) return "plane " + std::to_string(r.plane) + " is not 0 (U), 1 (V) or 2 (W)";
  if (r.kind > 1) return "kind " + std::to_string(r.kind) + " is not 0 (hit) or 1 (empty)";
  if (r.kind == static_cast<uint8_t>(PatchKind::kEmpty) && cat != sim::Category::kNone) {
    return "an empty patch has category " + std::string(sim::CategoryName(cat));
  }
  if (r.apa < 0 || r.wire < 0 || r.event < 0) return "negative apa, wire or event";
  if (!std::isfinite(r.peak_tick) || !std::isfinite(r.integral)) {
    return "peak_tick or integral is not finite";
  }
  if (!(r.truth_fraction >= 0.0f && r.truth_fraction <= 1.0f)) {
    return "truth_fraction " + std::to_string(r.truth_fraction) + " is outside [0, 1]";
  }
  return "";
}

Status ValidateHeader(const PatchFileInfo& h, const std::string& where) {
  auto bad = [&](const std::string& what) { return InvalidArgument(where + ": " + what); };
  if (h.patch_wires < 1 || h.patch_wires > kMaxPatchSide || h.patch_drifts < 1 ||
      h.patch_drifts > kMaxPatchSide) {
    return bad("patch size " + std::to_string(h.patch_wires) + " x " +
               std::to_string(h.patch_drifts) + " is outside 1 to " +
               std::to_string(kMaxPatchSide));
  }
  if (h.drift_window < 1 || h.drift_window > 1000) {
    return bad("drift_window " + std::to_string(h.drift_window) + " is outside 1 to 1000");
  }
  if (!std::isfinite(h.adc_min) || !std::isfinite(h.adc_max) || !(h.adc_max > h.adc_min)) {
    return bad("adc_min/adc_max must be finite with adc_max > adc_min");
  }
  if (!std::isfinite(h.out_min) || !std::isfinite(h.out_max) || h.out_max == h.out_min ||
      !std::isfinite(h.zero_level)) {
    return bad("out_min/out_max/zero_level must be finite with out_max != out_min");
  }
  if (h.block_rows < 1 || h.block_rows > kMaxBlockRows) {
    return bad("block_rows " + std::to_string(h.block_rows) + " is outside 1 to " +
               std::to_string(kMaxBlockRows));
  }
  if (h.delta_rays.scheme == DeltaRays::Scheme::kSize &&
      !(std::isfinite(h.delta_rays.size_mev) && h.delta_rays.size_mev > 0)) {
    return bad("delta_rays size threshold " + std::to_string(h.delta_rays.size_mev) +
               " MeV is not a finite number > 0");
  }
  if (h.class_names != kPatchClassNames) {
    return bad("class_names '" + h.class_names + "' is not '" + kPatchClassNames + "'");
  }
  return Status::Ok();
}

// CRC-32 of rows [first, first + n) of a block: the pixels, then every column in schema order.
uint32_t BlockCrc(const float* pixels, int64_t patch_size, Columns& cols, std::size_t first,
                  std::size_t n) {
  uint32_t crc = Crc32(pixels + first * patch_size, n * patch_size * sizeof(float));
  cols.ForEach([&](const char*, auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    crc = Crc32(v.data() + first, n * sizeof(T), crc);
  });
  return crc;
}

}  // namespace

std::string DeltaRaysName(DeltaRays d) {
  switch (d.scheme) {
    case DeltaRays::Scheme::kTrack:
      break;
    case DeltaRays::Scheme::kEm:
      return kDeltaRaysEm;
    case DeltaRays::Scheme::kSize: {
      // Shortest form that reads back as the same float: "size:5", "size:2.5".
      char buf[32];
      const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d.size_mev);
      return std::string(kDeltaRaysSizePrefix) + std::string(buf, ec == std::errc() ? end : buf);
    }
  }
  return kDeltaRaysTrack;
}

StatusOr<DeltaRays> ParseDeltaRays(std::string_view name) {
  if (name == kDeltaRaysTrack) return DeltaRays::Track();
  if (name == kDeltaRaysEm) return DeltaRays::Em();
  const std::string_view prefix = kDeltaRaysSizePrefix;
  if (name.starts_with(prefix)) {
    const std::string_view number = name.substr(prefix.size());
    float mev = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), mev);
    if (number.empty() || ec != std::errc() || end != number.data() + number.size() ||
        !std::isfinite(mev) || !(mev > 0)) {
      return InvalidArgument("delta-ray scheme '" + std::string(name) +
                             "': E in 'size:E' must be a positive number of MeV (e.g. size:5)");
    }
    return DeltaRays::Size(mev);
  }
  return InvalidArgument("delta-ray scheme '" + std::string(name) +
                         "': expected 'track' (the original 3-class scheme), 'em' or 'size:E' "
                         "(delta rays below E MeV track, the others em; e.g. size:5)");
}

PatchLabel LabelOfCategory(sim::Category category, DeltaRays delta, float delta_kinetic_mev) {
  switch (category) {
    case sim::Category::kTrack:
      return PatchLabel::kTrack;
    case sim::Category::kDelta:
      switch (delta.scheme) {
        case DeltaRays::Scheme::kTrack:
          return PatchLabel::kTrack;
        case DeltaRays::Scheme::kEm:
          return PatchLabel::kEm;
        case DeltaRays::Scheme::kSize:
          // NaN (unknown energy) is not below the threshold: em.
          return delta_kinetic_mev < delta.size_mev ? PatchLabel::kTrack : PatchLabel::kEm;
      }
      return PatchLabel::kTrack;
    case sim::Category::kShower:
    case sim::Category::kMichel:
      return PatchLabel::kEm;
    case sim::Category::kNone:
      break;
  }
  return PatchLabel::kNone;
}

// ======================================================================= writer

struct PatchFileWriter::Impl {
  std::string path;
  PatchFileInfo header;
  int level = 1;
  Handle file;
  Handle patches;
  std::vector<Handle> columns;  // the 1-D datasets, schema order
  Handle crc;
  int64_t written = 0;  // rows in the file
  std::vector<float> pixel_buf;
  std::vector<PatchRecord> record_buf;
  Columns cols;
  std::vector<uint32_t> block_crc;  // scratch
  bool closed = false;

  Status Init();
  StatusOr<Handle> CreateColumn(const char* name, hid_t type);
  Status WriteBlock(std::size_t rows);
  // Writes the buffered patches and closes the file; marks it complete if asked.
  Status Finish(bool mark_complete);
  void Abandon() {
    closed = true;
    columns.clear();
    patches.Reset();
    crc.Reset();
    file.Reset();
  }
};

StatusOr<Handle> PatchFileWriter::Impl::CreateColumn(const char* name, hid_t type) {
  const hsize_t dims[1] = {0};
  const hsize_t maxdims[1] = {H5S_UNLIMITED};
  Handle space(H5Screate_simple(1, dims, maxdims), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  const hsize_t chunk[1] = {kColumnChunkRows};
  H5Pset_chunk(dcpl.get(), 1, chunk);
  H5Pset_obj_track_times(dcpl.get(), false);
  if (level > 0) {
    H5Pset_shuffle(dcpl.get());
    H5Pset_deflate(dcpl.get(), static_cast<unsigned>(level));
  }
  H5Pset_fletcher32(dcpl.get());
  Handle ds(H5Dcreate2(file.get(), name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
            H5Dclose);
  if (!ds.valid()) {
    return Internal("cannot create dataset /" + std::string(name) + " in '" + path +
                    "': " + Hdf5Error());
  }
  return ds;
}

Status PatchFileWriter::Impl::Init() {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // HDF5 1.10 format: checksummed object headers and chunk indexes (see event_file.cc).
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110);
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  H5Pset_obj_track_times(fcpl.get(), false);
  file = Handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose);
  if (!file.valid()) return NotFound("cannot create patch file '" + path + "': " + Hdf5Error());
  Handle root(H5Gopen2(file.get(), "/", H5P_DEFAULT), H5Gclose);
  const PatchFileInfo& h = header;
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "format", kPatchesFormat));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "schema_version", kPatchesSchemaVersion));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "larserve_version", kVersion));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "source", h.source));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "patch_wires", h.patch_wires));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "patch_drifts", h.patch_drifts));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "drift_window", h.drift_window));
  RETURN_IF_ERROR(WriteScalarAttr<float>(root.get(), "adc_min", h.adc_min));
  RETURN_IF_ERROR(WriteScalarAttr<float>(root.get(), "adc_max", h.adc_max));
  RETURN_IF_ERROR(WriteScalarAttr<float>(root.get(), "out_min", h.out_min));
  RETURN_IF_ERROR(WriteScalarAttr<float>(root.get(), "out_max", h.out_max));
  RETURN_IF_ERROR(WriteScalarAttr<float>(root.get(), "zero_level", h.zero_level));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "selection", h.selection));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "class_names", h.class_names));
  RETURN_IF_ERROR(WriteStringAttr(root.get(), "delta_rays", DeltaRaysName(h.delta_rays)));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "block_rows", h.block_rows));
  RETURN_IF_ERROR(WriteScalarAttr<int64_t>(root.get(), "n_patches", 0));
  RETURN_IF_ERROR(WriteScalarAttr<int32_t>(root.get(), "complete", 0));

  {
    const hsize_t dims[4] = {0, static_cast<hsize_t>(h.patch_wires),
                             static_cast<hsize_t>(h.patch_drifts), 1};
    const hsize_t maxdims[4] = {H5S_UNLIMITED, dims[1], dims[2], 1};
    Handle space(H5Screate_simple(4, dims, maxdims), H5Sclose);
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    const std::size_t patch_bytes = static_cast<std::size_t>(h.patch_size()) * sizeof(float);
    const hsize_t rows =
        std::clamp<hsize_t>(kPatchChunkBytes / patch_bytes, 1, static_cast<hsize_t>(h.block_rows));
    const hsize_t chunk[4] = {rows, dims[1], dims[2], 1};
    H5Pset_chunk(dcpl.get(), 4, chunk);
    H5Pset_obj_track_times(dcpl.get(), false);
    if (level > 0) {
      H5Pset_shuffle(dcpl.get());
      H5Pset_deflate(dcpl.get(), static_cast<unsigned>(level));
    }
    H5Pset_fletcher32(dcpl.get());
    patches = Handle(H5Dcreate2(file.get(), "patches", H5T_IEEE_F32LE, space.get(), H5P_DEFAULT,
                                dcpl.get(), H5P_DEFAULT),
                     H5Dclose);
    if (!patches.valid()) {
      return Internal("cannot create dataset /patches in '" + path + "': " + Hdf5Error());
    }
  }
  Status s = Status::Ok();
  cols.ForEach([&](const char* name, auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    if (!s.ok()) return;
    auto ds = CreateColumn(name, NativeType<T>());
    if (ds.ok()) {
      columns.push_back(std::move(*ds));
    } else {
      s = ds.status();
    }
  });
  RETURN_IF_ERROR(s);
  ASSIGN_OR_RETURN(crc, CreateColumn("crc32", NativeType<uint32_t>()));
  pixel_buf.reserve(static_cast<std::size_t>(h.block_rows) * h.patch_size());
  record_buf.reserve(static_cast<std::size_t>(h.block_rows));
  return Status::Ok();
}

// Appends the first `rows` buffered patches to every dataset, with their block CRC.
Status PatchFileWriter::Impl::WriteBlock(std::size_t rows) {
  if (rows == 0) return Status::Ok();
  const hsize_t first = static_cast<hsize_t>(written);
  const hsize_t total = first + rows;
  auto fail = [&](const std::string& name) {
    return Internal("cannot append to /" + name + " in '" + path + "': " + Hdf5Error());
  };
  {
    const hsize_t dims[4] = {total, static_cast<hsize_t>(header.patch_wires),
                             static_cast<hsize_t>(header.patch_drifts), 1};
    if (H5Dset_extent(patches.get(), dims) < 0) return fail("patches");
    Handle fspace(H5Dget_space(patches.get()), H5Sclose);
    const hsize_t start[4] = {first, 0, 0, 0};
    const hsize_t count[4] = {rows, dims[1], dims[2], 1};
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    Handle mspace(H5Screate_simple(4, count, nullptr), H5Sclose);
    if (H5Dwrite(patches.get(), H5T_NATIVE_FLOAT, mspace.get(), fspace.get(), H5P_DEFAULT,
                 pixel_buf.data()) < 0) {
      return fail("patches");
    }
  }
  cols.Gather(std::span<const PatchRecord>(record_buf.data(), rows));
  auto append_1d = [&](hid_t ds, hid_t type, const void* data, hsize_t n, hsize_t at,
                       const std::string& name) -> Status {
    const hsize_t dims[1] = {at + n};
    if (H5Dset_extent(ds, dims) < 0) return fail(name);
    Handle fspace(H5Dget_space(ds), H5Sclose);
    const hsize_t start[1] = {at};
    const hsize_t count[1] = {n};
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    Handle mspace(H5Screate_simple(1, count, nullptr), H5Sclose);
    if (H5Dwrite(ds, type, mspace.get(), fspace.get(), H5P_DEFAULT, data) < 0) return fail(name);
    return Status::Ok();
  };
  Status s = Status::Ok();
  std::size_t c = 0;
  cols.ForEach([&](const char* name, auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    if (s.ok()) s = append_1d(columns[c].get(), NativeType<T>(), v.data(), rows, first, name);
    ++c;
  });
  RETURN_IF_ERROR(s);
  const uint32_t block_crc_value = BlockCrc(pixel_buf.data(), header.patch_size(), cols, 0, rows);
  const hsize_t block = first / static_cast<hsize_t>(header.block_rows);
  RETURN_IF_ERROR(append_1d(crc.get(), H5T_NATIVE_UINT32, &block_crc_value, 1, block, "crc32"));
  written = static_cast<int64_t>(total);
  Handle root(H5Gopen2(file.get(), "/", H5P_DEFAULT), H5Gclose);
  return UpdateScalarAttr<int64_t>(root.get(), "n_patches", written);
}

StatusOr<std::unique_ptr<PatchFileWriter>> PatchFileWriter::Create(
    const std::string& path, const PatchFileInfo& header, const PatchWriterOptions& options) {
  if (options.compression_level < 0 || options.compression_level > 9) {
    return InvalidArgument("compression level must be 0-9, got " +
                           std::to_string(options.compression_level));
  }
  RETURN_IF_ERROR(ValidateHeader(header, "patch file '" + path + "'"));
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  SilenceHdf5();
  std::unique_ptr<PatchFileWriter> w(new PatchFileWriter());
  w->impl_ = std::make_unique<Impl>();
  Impl& im = *w->impl_;
  im.path = path;
  im.header = header;
  im.level = options.compression_level;
  if (Status s = im.Init(); !s.ok()) {
    im.Abandon();  // under the lock; the destructor then has nothing to do
    return s;
  }
  return w;
}

PatchFileWriter::~PatchFileWriter() {
  // Not closed by the owner: an error path. Keep what was appended, but not as complete.
  if (impl_ && !impl_->closed) (void)impl_->Finish(/*mark_complete=*/false);
}

int64_t PatchFileWriter::num_patches() const {
  return impl_->written + static_cast<int64_t>(impl_->record_buf.size());
}

Status PatchFileWriter::Append(std::span<const float> pixels,
                               std::span<const PatchRecord> records) {
  Impl& im = *impl_;
  if (im.closed) return FailedPrecondition("patch file '" + im.path + "' is already closed");
  const int64_t psize = im.header.patch_size();
  if (pixels.size() != records.size() * static_cast<std::size_t>(psize)) {
    return InvalidArgument("Append: " + std::to_string(pixels.size()) + " pixel values for " +
                           std::to_string(records.size()) + " patches of " + std::to_string(psize) +
                           " values");
  }
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (std::string e = RecordError(records[i], im.header.delta_rays); !e.empty()) {
      return InvalidArgument("Append: patch " + std::to_string(num_patches() + i) + ": " + e);
    }
  }
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  const std::size_t block = static_cast<std::size_t>(im.header.block_rows);
  std::size_t done = 0;
  while (done < records.size()) {
    const std::size_t take = std::min(block - im.record_buf.size(), records.size() - done);
    im.record_buf.insert(im.record_buf.end(), records.begin() + done,
                         records.begin() + done + take);
    im.pixel_buf.insert(im.pixel_buf.end(), pixels.begin() + done * psize,
                        pixels.begin() + (done + take) * psize);
    done += take;
    if (im.record_buf.size() == block) {
      RETURN_IF_ERROR(im.WriteBlock(block));
      im.record_buf.clear();
      im.pixel_buf.clear();
    }
  }
  return Status::Ok();
}

Status PatchFileWriter::Close() { return impl_->Finish(/*mark_complete=*/true); }

Status PatchFileWriter::Impl::Finish(bool mark_complete) {
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  if (closed) return Status::Ok();
  Status s = WriteBlock(record_buf.size());
  record_buf.clear();
  pixel_buf.clear();
  closed = true;
  if (s.ok() && mark_complete) {
    Handle root(H5Gopen2(file.get(), "/", H5P_DEFAULT), H5Gclose);
    s = UpdateScalarAttr<int32_t>(root.get(), "complete", 1);
  }
  columns.clear();
  patches.Reset();
  crc.Reset();
  if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0 && s.ok()) {
    s = DataLoss("cannot flush patch file '" + path + "': " + Hdf5Error());
  }
  file.Reset();
  return s;
}

// ======================================================================= reader

struct PatchFileReader::Impl {
  std::string path;
  Handle file;
  Handle patches;
  std::vector<Handle> columns;  // schema order
  Handle crc;
  PatchFileInfo info;
};

namespace {

// Opens dataset `name`, checks its element type (class, size and, for integers, sign) and rank,
// and returns its dimensions in *dims.
StatusOr<Handle> OpenChecked(hid_t file, const std::string& name, H5T_class_t cls, std::size_t size,
                             bool is_signed, int rank, hsize_t* dims, const std::string& where) {
  const std::string ds_where = where + " /" + name;
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return DataLoss(ds_where + ": the dataset is missing (not a complete patch file)");
  }
  Handle ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) return DataLoss(ds_where + ": cannot open the dataset: " + Hdf5Error());
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  bool type_ok = H5Tget_class(type.get()) == cls && H5Tget_size(type.get()) == size;
  if (type_ok && cls == H5T_INTEGER) {
    type_ok = (H5Tget_sign(type.get()) == H5T_SGN_2) == is_signed;
  }
  if (!type_ok) return InvalidArgument(ds_where + " has the wrong element type");
  if (H5Sget_simple_extent_ndims(space.get()) != rank) {
    return InvalidArgument(ds_where + " has rank " +
                           std::to_string(H5Sget_simple_extent_ndims(space.get())) + ", expected " +
                           std::to_string(rank));
  }
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  return ds;
}

// Reads rows [first, first + n) of a dataset whose rows are row_size elements of `type`.
Status ReadRows(hid_t ds, hid_t type, int rank, const hsize_t* dims, hsize_t first, hsize_t n,
                void* out, const std::string& where) {
  if (n == 0) return Status::Ok();
  Handle fspace(H5Dget_space(ds), H5Sclose);
  hsize_t start[4] = {first, 0, 0, 0};
  hsize_t count[4] = {n, 1, 1, 1};
  for (int d = 1; d < rank; ++d) count[d] = dims[d];
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  Handle mspace(H5Screate_simple(rank, count, nullptr), H5Sclose);
  if (H5Dread(ds, type, mspace.get(), fspace.get(), H5P_DEFAULT, out) < 0) {
    return DataLoss(
        where + " cannot be read (checksum or storage error: the file is corrupt): " + Hdf5Error());
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<PatchFileReader>> PatchFileReader::Open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return NotFound("patch file '" + path + "' does not exist");
  }
  if (!std::filesystem::is_regular_file(path, ec)) {
    return InvalidArgument("patch file '" + path + "' is not a regular file");
  }
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  SilenceHdf5();
  std::unique_ptr<PatchFileReader> r(new PatchFileReader());
  r->impl_ = std::make_unique<Impl>();
  Impl& im = *r->impl_;
  im.path = path;
  const std::string where = "patch file '" + path + "'";
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return InvalidArgument(where +
                           " is not an HDF5 file (wrong signature: not a patch file, or its "
                           "header is corrupt)");
  }
  im.file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!im.file.valid()) {
    return DataLoss(where + " cannot be opened: it is truncated or corrupt (HDF5: " + Hdf5Error() +
                    ")");
  }
  Handle root(H5Gopen2(im.file.get(), "/", H5P_DEFAULT), H5Gclose);
  if (!root.valid()) return DataLoss(where + ": cannot open the root group: " + Hdf5Error());
  auto format = ReadStringAttr(root.get(), "format");
  if (!format.ok() || *format != kPatchesFormat) {
    return InvalidArgument(where +
                           " is an HDF5 file but not a larserve patch file (root "
                           "attribute 'format' is not '" +
                           std::string(kPatchesFormat) + "')");
  }
  PatchFileInfo& info = im.info;
  auto ctx = [&](const Status& s) { return s.WithContext(where); };
  {
    auto v = ReadScalarAttr<int32_t>(root.get(), "schema_version");
    if (!v.ok()) return ctx(v.status());
    info.schema_version = *v;
    if (info.schema_version != kPatchesSchemaVersion) {
      return FailedPrecondition(where + " has schema version " +
                                std::to_string(info.schema_version) + "; this larserve reads " +
                                std::to_string(kPatchesSchemaVersion) +
                                ": regenerate it with this version's `larserve patches`");
    }
  }
  // Every attribute, read and checked; any failure names the attribute.
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(info.larserve_version, ReadStringAttr(root.get(), "larserve_version"));
    ASSIGN_OR_RETURN(info.source, ReadStringAttr(root.get(), "source"));
    ASSIGN_OR_RETURN(info.patch_wires, ReadScalarAttr<int32_t>(root.get(), "patch_wires"));
    ASSIGN_OR_RETURN(info.patch_drifts, ReadScalarAttr<int32_t>(root.get(), "patch_drifts"));
    ASSIGN_OR_RETURN(info.drift_window, ReadScalarAttr<int32_t>(root.get(), "drift_window"));
    ASSIGN_OR_RETURN(info.adc_min, ReadScalarAttr<float>(root.get(), "adc_min"));
    ASSIGN_OR_RETURN(info.adc_max, ReadScalarAttr<float>(root.get(), "adc_max"));
    ASSIGN_OR_RETURN(info.out_min, ReadScalarAttr<float>(root.get(), "out_min"));
    ASSIGN_OR_RETURN(info.out_max, ReadScalarAttr<float>(root.get(), "out_max"));
    ASSIGN_OR_RETURN(info.zero_level, ReadScalarAttr<float>(root.get(), "zero_level"));
    ASSIGN_OR_RETURN(info.selection, ReadStringAttr(root.get(), "selection"));
    ASSIGN_OR_RETURN(info.class_names, ReadStringAttr(root.get(), "class_names"));
    // Files written before the attribute existed used the original scheme.
    if (H5Aexists(root.get(), "delta_rays") > 0) {
      ASSIGN_OR_RETURN(std::string delta, ReadStringAttr(root.get(), "delta_rays"));
      auto parsed = ParseDeltaRays(delta);
      if (!parsed.ok())
        return InvalidArgument("attribute 'delta_rays': " + parsed.status().message());
      info.delta_rays = *parsed;
    }
    ASSIGN_OR_RETURN(info.block_rows, ReadScalarAttr<int32_t>(root.get(), "block_rows"));
    ASSIGN_OR_RETURN(info.num_patches, ReadScalarAttr<int64_t>(root.get(), "n_patches"));
    ASSIGN_OR_RETURN(int32_t complete, ReadScalarAttr<int32_t>(root.get(), "complete"));
    info.complete = complete == 1;
    return ValidateHeader(info, "root attributes");
  }();
  if (!s.ok()) return ctx(s);

  hsize_t dims[4] = {0, 0, 0, 0};
  {
    ASSIGN_OR_RETURN(im.patches,
                     OpenChecked(im.file.get(), "patches", H5T_FLOAT, 4, true, 4, dims, where));
    if (dims[1] != static_cast<hsize_t>(info.patch_wires) ||
        dims[2] != static_cast<hsize_t>(info.patch_drifts) || dims[3] != 1) {
      return InvalidArgument(where + " /patches has shape [N, " + std::to_string(dims[1]) + ", " +
                             std::to_string(dims[2]) + ", " + std::to_string(dims[3]) +
                             "], expected [N, patch_wires, patch_drifts, 1]");
    }
  }
  const hsize_t n = dims[0];
  if (static_cast<int64_t>(n) != info.num_patches) {
    return DataLoss(where + ": /patches has " + std::to_string(n) +
                    " rows but the root attribute n_patches says " +
                    std::to_string(info.num_patches) +
                    " (the writer was interrupted or the file is corrupt)");
  }
  Columns probe;
  Status cs = Status::Ok();
  probe.ForEach([&](const char* name, auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    if (!cs.ok()) return;
    hsize_t d[1] = {0};
    auto ds =
        OpenChecked(im.file.get(), name, std::is_floating_point_v<T> ? H5T_FLOAT : H5T_INTEGER,
                    sizeof(T), std::is_signed_v<T>, 1, d, where);
    if (!ds.ok()) {
      cs = ds.status();
      return;
    }
    if (d[0] != n) {
      cs = DataLoss(where + " /" + name + " has " + std::to_string(d[0]) + " rows, /patches " +
                    std::to_string(n) + " (the file is corrupt)");
      return;
    }
    im.columns.push_back(std::move(*ds));
  });
  RETURN_IF_ERROR(cs);
  {
    hsize_t d[1] = {0};
    ASSIGN_OR_RETURN(im.crc,
                     OpenChecked(im.file.get(), "crc32", H5T_INTEGER, 4, false, 1, d, where));
    const hsize_t blocks = (n + info.block_rows - 1) / info.block_rows;
    if (d[0] != blocks) {
      return DataLoss(where + " /crc32 has " + std::to_string(d[0]) + " entries, expected " +
                      std::to_string(blocks) + " (one per block of " +
                      std::to_string(info.block_rows) + " patches): the file is corrupt");
    }
  }
  return r;
}

PatchFileReader::~PatchFileReader() {
  if (impl_) {
    std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
    impl_->columns.clear();
    impl_->patches.Reset();
    impl_->crc.Reset();
    impl_->file.Reset();
  }
}

const PatchFileInfo& PatchFileReader::info() const { return impl_->info; }

Status PatchFileReader::Read(int64_t begin, int64_t end, std::vector<float>* pixels,
                             std::vector<PatchRecord>* records) const {
  const Impl& im = *impl_;
  const PatchFileInfo& info = im.info;
  const std::string where = "patch file '" + im.path + "'";
  if (begin < 0 || end < begin || end > info.num_patches) {
    return OutOfRange("patches [" + std::to_string(begin) + ", " + std::to_string(end) +
                      ") requested but " + where + " holds " + std::to_string(info.num_patches));
  }
  if (pixels == nullptr || records == nullptr) {
    return InvalidArgument("PatchFileReader::Read: null output");
  }
  // Whole CRC blocks are read so every value returned is checked; the extra rows are dropped.
  const int64_t b = info.block_rows;
  const int64_t first_block = begin / b;
  const int64_t last_block = end == begin ? first_block : (end - 1) / b + 1;  // exclusive
  const int64_t r0 = first_block * b;
  const int64_t r1 = std::min(info.num_patches, last_block * b);
  const int64_t n = std::max<int64_t>(0, r1 - r0);
  const int64_t psize = info.patch_size();
  if (end == begin) {
    pixels->clear();
    records->clear();
    return Status::Ok();
  }
  std::lock_guard<std::recursive_mutex> lock(Hdf5Mutex());
  pixels->resize(static_cast<std::size_t>(n * psize));
  const hsize_t pdims[4] = {0, static_cast<hsize_t>(info.patch_wires),
                            static_cast<hsize_t>(info.patch_drifts), 1};
  RETURN_IF_ERROR(ReadRows(im.patches.get(), H5T_NATIVE_FLOAT, 4, pdims, r0, n, pixels->data(),
                           where + " /patches"));
  Columns cols;
  cols.Resize(static_cast<std::size_t>(n));
  Status s = Status::Ok();
  std::size_t c = 0;
  cols.ForEach([&](const char* name, auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    const hsize_t d[1] = {0};
    if (s.ok()) {
      s = ReadRows(im.columns[c].get(), NativeType<T>(), 1, d, r0, n, v.data(),
                   where + " /" + name);
    }
    ++c;
  });
  RETURN_IF_ERROR(s);
  const int64_t nblocks = last_block - first_block;
  std::vector<uint32_t> crcs(static_cast<std::size_t>(nblocks));
  {
    const hsize_t d[1] = {0};
    RETURN_IF_ERROR(ReadRows(im.crc.get(), H5T_NATIVE_UINT32, 1, d, first_block, nblocks,
                             crcs.data(), where + " /crc32"));
  }
  for (int64_t k = 0; k < nblocks; ++k) {
    const int64_t f = k * b;
    const int64_t rows = std::min(b, n - f);
    if (BlockCrc(pixels->data(), psize, cols, f, rows) != crcs[k]) {
      return DataLoss(where + ": patches " + std::to_string(r0 + f) + " to " +
                      std::to_string(r0 + f + rows - 1) +
                      " do not match their CRC-32 (/crc32 entry " +
                      std::to_string(first_block + k) + "): the file is corrupt");
    }
  }
  cols.Scatter(static_cast<std::size_t>(begin - r0), static_cast<std::size_t>(end - begin),
               records);
  for (std::size_t i = 0; i < records->size(); ++i) {
    if (std::string e = RecordError((*records)[i], im.info.delta_rays); !e.empty()) {
      return InvalidArgument(where + ": patch " + std::to_string(begin + i) + ": " + e);
    }
  }
  // Drop the rows read only for the CRC: keep [begin, end).
  const std::size_t head = static_cast<std::size_t>((begin - r0) * psize);
  const std::size_t keep = static_cast<std::size_t>((end - begin) * psize);
  if (head > 0) std::copy(pixels->begin() + head, pixels->begin() + head + keep, pixels->begin());
  pixels->resize(keep);
  return Status::Ok();
}

}  // namespace larserve::io
