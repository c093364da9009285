// The named logger of the persistence layer.
#include "cafes/persistence/logger.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace cafes {

spdlog::logger& persistence_log() {
  static std::shared_ptr<spdlog::logger> log = [] {
    auto l = spdlog::get("cafes.persistence");
    return l ? l : spdlog::stderr_color_mt("cafes.persistence");
  }();
  return *log;
}

} // namespace cafes
