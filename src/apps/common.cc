#include <cstdio>
#include <string>

#include "commands.h"

namespace larserve::apps {

int Fail(const char* command, const std::string& message) {
  std::fprintf(stderr, "larserve %s: error: %s\n", command, message.c_str());
  return 1;
}

}  // namespace larserve::apps
