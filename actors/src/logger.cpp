// The named logger of the actors layer.
#include "logger.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace cafes {

spdlog::logger& actors_log() {
  static std::shared_ptr<spdlog::logger> log = [] {
    auto l = spdlog::get("cafes.actors");
    return l ? l : spdlog::stderr_color_mt("cafes.actors");
  }();
  return *log;
}

} // namespace cafes
