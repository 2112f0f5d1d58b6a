#include "larserve/io/npy.h"

#include <cstring>
#include <fstream>
#include <regex>

namespace larserve::io {
namespace {

struct NpyType {
  DType dtype;
  const char* descr;
};
constexpr NpyType kTypes[] = {
    {DType::kFloat32, "<f4"}, {DType::kFloat64, "<f8"}, {DType::kFloat16, "<f2"},
    {DType::kInt8, "|i1"},    {DType::kUInt8, "|u1"},   {DType::kInt16, "<i2"},
    {DType::kUInt16, "<u2"},  {DType::kInt32, "<i4"},   {DType::kInt64, "<i8"},
    {DType::kBool, "|b1"},
};

}  // namespace

StatusOr<Tensor> ReadNpy(const std::string& path) {
  const std::string where = "npy file '" + path + "'";
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFound("cannot open " + where);
  const std::streamoff size = in.tellg();
  in.seekg(0);
  char magic[8];
  if (size < 10 || !in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    return InvalidArgument(where + " is not a .npy file");
  }
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    uint16_t h = 0;
    in.read(reinterpret_cast<char*>(&h), 2);
    header_len = h;
  } else if (major == 2 || major == 3) {
    in.read(reinterpret_cast<char*>(&header_len), 4);
  } else {
    return InvalidArgument(where + " has .npy format version " + std::to_string(major) +
                           " (1-3 supported)");
  }
  if (!in || header_len > 65536 || static_cast<std::streamoff>(header_len) > size) {
    return InvalidArgument(where + " has a bad header");
  }
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) return InvalidArgument(where + " is truncated");
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([^']+)'"))) {
    return InvalidArgument(where + ": header has no descr");
  }
  const std::string descr = m[1];
  const NpyType* type = nullptr;
  for (const auto& t : kTypes) {
    if (descr == t.descr || (descr.size() == 3 && descr[0] == '=' &&
                             descr.substr(1) == std::string(t.descr).substr(1))) {
      type = &t;
    }
  }
  if (!type)
    return Unimplemented(where + ": element type '" + descr +
                         "' is not supported (little-endian numbers only)");
  if (std::regex_search(header, std::regex("'fortran_order':\\s*True"))) {
    return Unimplemented(where +
                         " is in Fortran order; save a C-ordered array (numpy.ascontiguousarray)");
  }
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)"))) {
    return InvalidArgument(where + ": header has no shape");
  }
  std::vector<int64_t> dims;
  const std::string shape_text = m[1];
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(shape_text.begin(), shape_text.end(), num);
       it != std::sregex_iterator(); ++it) {
    dims.push_back(std::stoll(it->str()));
  }
  auto t = Tensor::Create(type->dtype, Shape(dims));
  if (!t.ok()) return t.status().WithContext(where);
  const std::streamoff data_start = in.tellg();
  if (size - data_start != static_cast<std::streamoff>(t->num_bytes())) {
    return InvalidArgument(where + " holds " + std::to_string(size - data_start) +
                           " data bytes, shape " + t->shape().ToString() + " needs " +
                           std::to_string(t->num_bytes()));
  }
  if (t->num_bytes() > 0 &&
      !in.read(static_cast<char*>(t->data()), static_cast<std::streamsize>(t->num_bytes()))) {
    return DataLoss("cannot read " + where);
  }
  return t;
}

namespace {

const NpyType* FindType(DType dtype) {
  for (const auto& t : kTypes) {
    if (t.dtype == dtype) return &t;
  }
  return nullptr;
}

// The magic, version 1.0 and header of an array, the data starting at a multiple of 64 bytes.
// min_header_bytes pads the header to at least that size, so that a streamed file's header can
// be rewritten in place with a larger row count.
std::string NpyPreamble(const char* descr, const std::vector<int64_t>& dims,
                        std::size_t min_header_bytes = 0) {
  // Python tuple syntax: "()", "(5,)", "(2, 3)".
  std::string shape;
  for (std::size_t i = 0; i < dims.size(); ++i) shape += (i ? ", " : "") + std::to_string(dims[i]);
  if (dims.size() == 1) shape += ",";
  std::string header =
      "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  if (header.size() + 1 < min_header_bytes)
    header.append(min_header_bytes - header.size() - 1, ' ');
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  const uint16_t hl = static_cast<uint16_t>(header.size());
  out.append(reinterpret_cast<const char*>(&hl), 2);
  return out + header;
}

// Header space of a streamed file: room for any row count up to 20 digits.
constexpr std::size_t kStreamHeaderBytes = 182;

}  // namespace

Status WriteNpy(const std::string& path, const Tensor& tensor) {
  const NpyType* type = FindType(tensor.dtype());
  if (!type)
    return Unimplemented("cannot write " + std::string(DTypeName(tensor.dtype())) + " to .npy");
  const std::string preamble = NpyPreamble(type->descr, tensor.shape().dims());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return NotFound("cannot create npy file '" + path + "'");
  out.write(preamble.data(), static_cast<std::streamsize>(preamble.size()));
  out.write(static_cast<const char*>(tensor.data()),
            static_cast<std::streamsize>(tensor.num_bytes()));
  if (!out) return DataLoss("cannot write npy file '" + path + "'");
  return Status::Ok();
}

StatusOr<std::unique_ptr<NpyStreamWriter>> NpyStreamWriter::Create(
    const std::string& path, DType dtype, std::vector<int64_t> inner_dims) {
  const NpyType* type = FindType(dtype);
  if (!type) return Unimplemented("cannot write " + std::string(DTypeName(dtype)) + " to .npy");
  std::unique_ptr<NpyStreamWriter> w(new NpyStreamWriter());
  w->path_ = path;
  w->descr_ = type->descr;
  w->inner_ = std::move(inner_dims);
  w->row_bytes_ = DTypeSize(dtype);
  for (int64_t d : w->inner_) {
    if (d < 0) return InvalidArgument("npy stream '" + path + "': negative dimension");
    w->row_bytes_ *= static_cast<std::size_t>(d);
  }
  w->file_ = std::fopen(path.c_str(), "wb");
  if (!w->file_) return NotFound("cannot create npy file '" + path + "'");
  std::vector<int64_t> dims = {0};
  dims.insert(dims.end(), w->inner_.begin(), w->inner_.end());
  const std::string preamble = NpyPreamble(w->descr_.c_str(), dims, kStreamHeaderBytes);
  if (std::fwrite(preamble.data(), 1, preamble.size(), w->file_) != preamble.size() ||
      std::fflush(w->file_) != 0) {
    return DataLoss("cannot write npy file '" + path + "'");
  }
  return w;
}

NpyStreamWriter::~NpyStreamWriter() {
  if (file_) (void)Close();
}

Status NpyStreamWriter::Append(const void* data, int64_t rows) {
  if (!file_) return FailedPrecondition("npy file '" + path_ + "' is closed");
  const std::size_t bytes = static_cast<std::size_t>(rows) * row_bytes_;
  if (rows < 0 || (bytes > 0 && std::fwrite(data, 1, bytes, file_) != bytes)) {
    return DataLoss("cannot write npy file '" + path_ + "'");
  }
  rows_ += rows;
  return Status::Ok();
}

Status NpyStreamWriter::Close() {
  if (!file_) return Status::Ok();
  std::vector<int64_t> dims = {rows_};
  dims.insert(dims.end(), inner_.begin(), inner_.end());
  const std::string preamble = NpyPreamble(descr_.c_str(), dims, kStreamHeaderBytes);
  bool ok = std::fseek(file_, 0, SEEK_SET) == 0 &&
            std::fwrite(preamble.data(), 1, preamble.size(), file_) == preamble.size();
  ok = std::fclose(file_) == 0 && ok;
  file_ = nullptr;
  if (!ok) return DataLoss("cannot finish npy file '" + path_ + "'");
  return Status::Ok();
}

}  // namespace larserve::io
