// The named logger of the actors layer.
#include "logger.hpp"

#include "cafes/persistence/logger.hpp"

namespace cafes {

spdlog::logger& actors_log() {
  static const auto log = named_logger("cafes.actors");
  return *log;
}

} // namespace cafes
