#include "larserve/serve/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace larserve::serve {
namespace {

std::string Describe(const std::string& name, const std::string& key) {
  return "shared memory region '" + name + "' (key '" + key + "')";
}

}  // namespace

SharedMemoryRegion::~SharedMemoryRegion() {
  if (map_ != nullptr) munmap(map_, map_bytes_);
}

SharedMemoryManager::~SharedMemoryManager() = default;

Status SharedMemoryManager::Register(const std::string& name, const std::string& key,
                                     uint64_t offset, uint64_t byte_size) {
  if (name.empty()) return InvalidArgument("a shared memory region needs a name");
  const std::string what = Describe(name, key);
  if (key.empty()) return InvalidArgument(what + ": empty key");
  if (byte_size == 0) return InvalidArgument(what + ": byte_size must be positive");
  if (offset > std::numeric_limits<uint64_t>::max() - byte_size ||
      offset + byte_size > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
    return InvalidArgument(what + ": offset " + std::to_string(offset) + " + byte_size " +
                           std::to_string(byte_size) + " is out of range");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (regions_.count(name) != 0) {
      return Status(StatusCode::kAlreadyExists,
                    "shared memory region '" + name + "' is already registered");
    }
  }
  const int fd = shm_open(key.c_str(), O_RDWR, 0);
  if (fd < 0) {
    return InvalidArgument("unable to open " + what + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return InvalidArgument("unable to read the size of " + what + ": " + std::strerror(err));
  }
  const uint64_t object_bytes = st.st_size < 0 ? 0 : static_cast<uint64_t>(st.st_size);
  if (offset + byte_size > object_bytes) {
    close(fd);
    return InvalidArgument(what + ": offset " + std::to_string(offset) + " + byte_size " +
                           std::to_string(byte_size) + " exceeds the object's " +
                           std::to_string(object_bytes) + " bytes");
  }
  // mmap wants a page-aligned file offset: map from the page holding `offset`.
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t start = offset - offset % page;
  const std::size_t map_bytes = static_cast<std::size_t>(offset - start + byte_size);
  void* map =
      mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(start));
  const int err = errno;
  close(fd);  // the mapping keeps the object
  if (map == MAP_FAILED) {
    return InvalidArgument("unable to map " + what + ": " + std::strerror(err));
  }
  std::shared_ptr<SharedMemoryRegion> region(new SharedMemoryRegion());
  region->info_ = {name, key, offset, byte_size};
  region->map_ = map;
  region->map_bytes_ = map_bytes;
  region->data_ = static_cast<uint8_t*>(map) + (offset - start);
  std::lock_guard<std::mutex> lock(mu_);
  // Checked again: another Register of the name may have won meanwhile (the region unmaps).
  if (!regions_.emplace(name, std::move(region)).second) {
    return Status(StatusCode::kAlreadyExists,
                  "shared memory region '" + name + "' is already registered");
  }
  return Status::Ok();
}

Status SharedMemoryManager::Unregister(const std::string& name) {
  std::map<std::string, std::shared_ptr<const SharedMemoryRegion>> gone;
  std::lock_guard<std::mutex> lock(mu_);
  if (name.empty()) {
    gone.swap(regions_);
  } else if (auto it = regions_.find(name); it != regions_.end()) {
    gone.emplace(it->first, std::move(it->second));
    regions_.erase(it);
  }
  return Status::Ok();
}

StatusOr<std::vector<SharedMemoryRegionInfo>> SharedMemoryManager::Regions(
    const std::string& name) const {
  std::vector<SharedMemoryRegionInfo> out;
  std::lock_guard<std::mutex> lock(mu_);
  if (name.empty()) {
    for (const auto& [n, region] : regions_) out.push_back(region->info());
    return out;
  }
  auto it = regions_.find(name);
  if (it == regions_.end()) {
    return NotFound("no shared memory region '" + name + "' is registered");
  }
  out.push_back(it->second->info());
  return out;
}

StatusOr<SharedMemoryBlock> SharedMemoryManager::Get(const SharedMemoryRef& ref,
                                                     const std::string& where) const {
  std::shared_ptr<const SharedMemoryRegion> region;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = regions_.find(ref.region);
    if (it == regions_.end()) {
      return InvalidArgument(where + ": no shared memory region '" + ref.region +
                             "' is registered");
    }
    region = it->second;
  }
  const uint64_t size = region->info().byte_size;
  if (ref.offset > size || ref.byte_size > size - ref.offset) {
    return InvalidArgument(where + ": shared_memory_offset " + std::to_string(ref.offset) +
                           " + shared_memory_byte_size " + std::to_string(ref.byte_size) +
                           " exceeds the " + std::to_string(size) + " bytes of region '" +
                           ref.region + "'");
  }
  SharedMemoryBlock block;
  block.data = region->data() + ref.offset;
  block.byte_size = ref.byte_size;
  block.region = std::move(region);
  return block;
}

}  // namespace larserve::serve
