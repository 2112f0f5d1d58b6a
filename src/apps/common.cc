#include <cstdio>
#include <string>

#include "commands.h"
#include "larserve/io/patch_file.h"

namespace larserve::apps {

int Fail(const char* command, const std::string& message) {
  std::fprintf(stderr, "larserve %s: error: %s\n", command, message.c_str());
  return 1;
}

CLI::Validator DeltaRaysValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto parsed = io::ParseDeltaRays(value);
        return parsed.ok() ? std::string() : parsed.status().message();
      },
      "track|em|size:E");
}

}  // namespace larserve::apps
