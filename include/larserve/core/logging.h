#pragma once
// Minimal leveled logging to stderr. Thread-safe: one line is written atomically.
#include <sstream>
#include <string>

namespace larserve {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kQuiet = 4 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void LogLine(LogLevel level, const std::string& line);

namespace detail {
class LogMessage {
 public:
  explicit LogMessage(LogLevel level) : level_(level) {}
  ~LogMessage() { LogLine(level_, stream_.str()); }
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace detail

}  // namespace larserve

#define LARSERVE_LOG(level)                                      \
  if (::larserve::LogLevel::level < ::larserve::GetLogLevel()) { \
  } else                                                         \
    ::larserve::detail::LogMessage(::larserve::LogLevel::level).stream()
