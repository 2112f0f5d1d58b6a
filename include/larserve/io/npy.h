#pragma once
// NumPy .npy files (format versions 1.0-3.0, little-endian, C order) for tensors: how models'
// inputs and outputs are exchanged with Python tools (numpy.save / numpy.load).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"

namespace larserve::io {

StatusOr<Tensor> ReadNpy(const std::string& path);
Status WriteNpy(const std::string& path, const Tensor& tensor);

// Writes a .npy file of rows appended one block at a time, for arrays too large to hold in
// memory: shape [rows, inner...], the row count fixed in the header at Close. Until Close the
// file's header says 0 rows, so an interrupted writer leaves a valid, empty array behind.
// One thread at a time.
class NpyStreamWriter {
 public:
  static StatusOr<std::unique_ptr<NpyStreamWriter>> Create(const std::string& path, DType dtype,
                                                           std::vector<int64_t> inner_dims);
  ~NpyStreamWriter();
  // Appends `rows` rows from `data` (rows x product(inner_dims) elements of the dtype).
  Status Append(const void* data, int64_t rows);
  int64_t rows() const { return rows_; }
  // Rewrites the header with the final row count and closes the file.
  Status Close();

 private:
  NpyStreamWriter() = default;
  std::string path_;
  std::string descr_;
  std::vector<int64_t> inner_;
  std::size_t row_bytes_ = 0;
  int64_t rows_ = 0;
  std::FILE* file_ = nullptr;
};

}  // namespace larserve::io
