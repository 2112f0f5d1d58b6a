#pragma once
// Triton's system shared memory extension: clients put tensors in POSIX shared memory objects
// (shm_open keys, e.g. tritonclient.utils.shared_memory), register a region of one under a name
// (SystemSharedMemoryRegister, POST /v2/systemsharedmemory/region/{name}/register), and then let
// inputs be read from, and outputs be written to, [offset, offset + byte_size) of a region with
// the tensor parameters "shared_memory_region", "shared_memory_byte_size" and the optional
// "shared_memory_offset". One manager serves both frontends, as in Triton.
//
// A registered region is mapped once (read and write). Requests hold the regions they use, so
// unregistering one while a request still reads or writes it is safe: the mapping goes when the
// last request is done. The object must stay at least as large as registered: Register checks its
// size, but a client that shrinks it afterwards makes the server's accesses fault (as in Triton).
//
// Thread-safety: every method may be called from any thread.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "larserve/core/status.h"

namespace larserve::serve {

struct SharedMemoryRegionInfo {
  std::string name;
  std::string key;  // the shared memory object (shm_open name)
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

class SharedMemoryRegion {
 public:
  ~SharedMemoryRegion();  // unmaps
  SharedMemoryRegion(const SharedMemoryRegion&) = delete;
  SharedMemoryRegion& operator=(const SharedMemoryRegion&) = delete;
  const SharedMemoryRegionInfo& info() const { return info_; }
  uint8_t* data() const { return data_; }  // the byte at the region's offset in the object

 private:
  friend class SharedMemoryManager;
  SharedMemoryRegion() = default;
  SharedMemoryRegionInfo info_;
  void* map_ = nullptr;
  std::size_t map_bytes_ = 0;
  uint8_t* data_ = nullptr;
};

// Bytes of a region given to one tensor: `region` keeps them mapped.
struct SharedMemoryBlock {
  std::shared_ptr<const SharedMemoryRegion> region;
  uint8_t* data = nullptr;
  uint64_t byte_size = 0;
};

// A tensor's shared memory parameters, as parsed by a frontend.
struct SharedMemoryRef {
  std::string region;
  uint64_t byte_size = 0;
  uint64_t offset = 0;
};

class SharedMemoryManager {
 public:
  ~SharedMemoryManager();

  // Maps [offset, offset + byte_size) of the object `key` as region `name`. INVALID_ARGUMENT for
  // an empty name or key, a zero size, an object that cannot be opened or is smaller than
  // offset + byte_size; ALREADY_EXISTS when `name` is registered.
  Status Register(const std::string& name, const std::string& key, uint64_t offset,
                  uint64_t byte_size);
  // Forgets region `name` (every region for an empty name); an unknown name is no error (as
  // Triton). Requests in flight keep their regions mapped until they are done.
  Status Unregister(const std::string& name);
  // The regions, by name (all for an empty name; NOT_FOUND for an unknown one).
  StatusOr<std::vector<SharedMemoryRegionInfo>> Regions(const std::string& name) const;
  // [ref.offset, ref.offset + ref.byte_size) of region ref.region, checked against the region.
  // INVALID_ARGUMENT, starting with `where`, for an unknown region or bytes outside it.
  StatusOr<SharedMemoryBlock> Get(const SharedMemoryRef& ref, const std::string& where) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const SharedMemoryRegion>> regions_;
};

}  // namespace larserve::serve
