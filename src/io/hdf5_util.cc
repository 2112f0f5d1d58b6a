#include "hdf5_util.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace larserve::io::internal {

std::recursive_mutex& Hdf5Mutex() {
  static std::recursive_mutex m;
  return m;
}

void SilenceHdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::string Hdf5Error() {
  std::string msg;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
        auto* out = static_cast<std::string*>(data);
        if (e->desc && *e->desc) {
          if (!out->empty()) *out += "; ";
          *out += e->desc;
        }
        return n >= 2 ? 1 : 0;  // the first few frames are the informative ones
      },
      &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg;
}

uint32_t Crc32(const void* data, std::size_t bytes, uint32_t crc) {
  uLong c = crc;
  const auto* p = static_cast<const Bytef*>(data);
  while (bytes > 0) {
    const uInt step = static_cast<uInt>(std::min<std::size_t>(bytes, 1u << 30));
    c = crc32(c, p, step);
    p += step;
    bytes -= step;
  }
  return static_cast<uint32_t>(c);
}

Handle CreateGroup(hid_t loc, const std::string& name) {
  Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  H5Pset_obj_track_times(gcpl.get(), false);  // no time stamps: same seed, same bytes
  return Handle(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
}

Status WriteStringAttr(hid_t loc, const char* name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<std::size_t>(1, value.size()));
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), padded.data()) < 0) {
    return Internal(std::string("cannot write attribute ") + name + ": " + Hdf5Error());
  }
  return Status::Ok();
}

StatusOr<std::string> ReadStringAttr(hid_t loc, const char* name) {
  if (H5Aexists(loc, name) <= 0)
    return NotFound(std::string("attribute '") + name + "' is missing");
  Handle attr(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0) {
    return InvalidArgument(std::string("attribute '") + name + "' is not a fixed-length string");
  }
  const std::size_t size = H5Tget_size(type.get());
  if (size == 0 || size > (64u << 20)) {
    return InvalidArgument(std::string("attribute '") + name + "' has an implausible size");
  }
  std::string out(size, '\0');
  if (H5Aread(attr.get(), type.get(), out.data()) < 0) {
    return DataLoss(std::string("cannot read attribute '") + name + "': " + Hdf5Error());
  }
  out.resize(std::strlen(out.c_str()));
  return out;
}

}  // namespace larserve::io::internal
