// Named loggers: one per layer, created on first use.
#include "cafes/persistence/logger.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace cafes {

std::shared_ptr<spdlog::logger> named_logger(const char* name) {
  auto l = spdlog::get(name);
  return l ? l : spdlog::stderr_color_mt(name);
}

spdlog::logger& persistence_log() {
  static const auto log = named_logger("cafes.persistence");
  return *log;
}

} // namespace cafes
