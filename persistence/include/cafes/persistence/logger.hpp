// Named loggers: one per layer, created on first use.
#pragma once

#include <memory>

#include <spdlog/logger.h>

namespace cafes {

/// Returns the spdlog logger `name`, creating it (writing to stderr) on first use.
std::shared_ptr<spdlog::logger> named_logger(const char* name);

/// Returns the logger "cafes.persistence".
spdlog::logger& persistence_log();

} // namespace cafes
