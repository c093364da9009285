// Named loggers: one per layer, created on first use, all writing to stderr through one sink
// (the format of the node's choice, repeated warnings collapsed), librdkafka's logs included.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include <spdlog/logger.h>

#include "cafes/core/error.hpp"

struct rd_kafka_conf_s;
struct rd_kafka_s;

namespace cafes {

/// The format of the log lines on stderr.
enum class log_format {
  text, ///< spdlog's default: "[2024-05-01 12:00:00.123] [cafes.kafka] [warning] …"
  json, ///< one JSON object a line: time (ISO-8601, UTC, milliseconds), level, logger, message
};

/// Returns "text" or "json".
std::string_view to_string(log_format f) noexcept;

/// Parses "text" or "json"; invalid_argument otherwise.
expected<log_format> parse_log_format(std::string_view s);

/// Sets the format of every cafes logger, those created later included.
void set_log_format(log_format f);

/// Returns the current format (text until set_log_format).
log_format current_log_format() noexcept;

/// Returns the spdlog logger `name`, creating it on first use (registered with spdlog, so
/// that spdlog::set_level reaches it; writing to stderr in the current format, repeated
/// warnings collapsed within 10 s).
std::shared_ptr<spdlog::logger> named_logger(const char* name);

/// Returns the logger "cafes.persistence".
spdlog::logger& persistence_log();

/// Returns the logger "cafes.kafka": librdkafka's own log lines and errors, each headed by
/// the name of the client that wrote it.
spdlog::logger& kafka_log();

/// Returns librdkafka's `log_level` (a syslog level) matching the level of "cafes.kafka":
/// 7 for trace and debug, 6 info, 4 warn, 3 error, 2 critical, 0 off.
int kafka_syslog_level() noexcept;

/// Makes a librdkafka client configuration log through "cafes.kafka" instead of stderr: sets
/// its log and error callbacks and its log_level (kafka_syslog_level()). A client that needs
/// an error callback of its own sets it afterwards and calls log_kafka_error from it.
void route_kafka_logs(rd_kafka_conf_s* conf);

/// Logs an error that librdkafka reported to the error callback of client `rk` (at error
/// level when fatal, warn otherwise): for error callbacks of their own, to chain.
void log_kafka_error(const rd_kafka_s* rk, int err, const char* reason);

/// Errors librdkafka reported to the error callbacks of this process's Kafka clients (those
/// of every node in it), counted whatever the log level: the node's metrics expose them.
struct kafka_error_counts {
  std::uint64_t producer = 0; ///< errors of producers (admin clients included: librdkafka makes them producers)
  std::uint64_t consumer = 0; ///< errors of consumers (readers, group members, projections, tables)
  std::uint64_t fatal = 0;    ///< of those, the fatal ones: the client must be replaced
};

/// Returns the errors counted so far.
kafka_error_counts kafka_errors() noexcept;

/// Collapses the repeated lines still counted (their windows not over yet) into their
/// summary lines now, and flushes: before the process ends.
void flush_logs();

namespace detail {

/// Logs one librdkafka log line of client `client` (syslog `level`, facility `fac`).
void log_kafka_line(std::string_view client, int level, std::string_view fac, std::string_view text);

/// Logs one error of client `client` reported by librdkafka: error level when `fatal`.
void log_kafka_error(std::string_view client, int err, std::string_view reason, bool fatal);

} // namespace detail

} // namespace cafes
