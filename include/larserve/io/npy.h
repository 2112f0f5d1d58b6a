#pragma once
// NumPy .npy files (format versions 1.0-3.0, little-endian, C order) for tensors: how models'
// inputs and outputs are exchanged with Python tools (numpy.save / numpy.load).
#include <string>

#include "larserve/core/status.h"
#include "larserve/core/tensor.h"

namespace larserve::io {

StatusOr<Tensor> ReadNpy(const std::string& path);
Status WriteNpy(const std::string& path, const Tensor& tensor);

}  // namespace larserve::io
