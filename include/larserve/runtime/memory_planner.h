#pragma once
// Activation memory planning: intermediate tensors whose lifetimes do not overlap share memory
// in one arena (TensorRT and ONNX Runtime do the same). A tensor lives from the step that
// produces it to the last step that reads it, inclusive.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace larserve::runtime {

struct BufferRequest {
  std::size_t bytes = 0;
  int first_step = 0;  // producing step
  int last_step = 0;   // last reading step (>= first_step)
};

struct MemoryPlan {
  std::vector<std::size_t> offsets;  // per request, 64-byte aligned
  std::size_t arena_bytes = 0;       // peak: the arena holding every request
  std::size_t unshared_bytes = 0;    // what separate allocations would take
};

// Greedy best fit, largest first: each buffer goes to the lowest offset where it overlaps no
// buffer of an intersecting lifetime already placed. Deterministic.
MemoryPlan PlanMemory(const std::vector<BufferRequest>& requests);

}  // namespace larserve::runtime
