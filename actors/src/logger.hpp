// The named logger of the actors layer.
#pragma once

#include <spdlog/logger.h>

namespace cafes {

/// Returns the logger "cafes.actors".
spdlog::logger& actors_log();

} // namespace cafes
