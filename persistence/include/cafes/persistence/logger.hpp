// The named logger of the persistence layer.
#pragma once

#include <memory>

#include <spdlog/logger.h>

namespace cafes {

/// Returns the logger "cafes.persistence" (created on first use, writing to stderr).
spdlog::logger& persistence_log();

} // namespace cafes
