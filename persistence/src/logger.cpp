// Named loggers: one per layer, created on first use, all writing through one sink: the
// format of the node's choice on stderr, repeated warnings collapsed. librdkafka's log and
// error callbacks write to "cafes.kafka".
#include "cafes/persistence/logger.hpp"

#include <atomic>
#include <mutex>

#include <librdkafka/rdkafka.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/log_sinks.hpp"

namespace cafes {

namespace {

/// The sink every cafes logger writes to, and the format it writes.
struct pipeline {
  std::mutex mtx; // orders format changes
  std::shared_ptr<spdlog::sinks::stderr_color_sink_mt> out = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  std::shared_ptr<repeat_limiting_sink> sink = std::make_shared<repeat_limiting_sink>(out);
  std::atomic<log_format> format{log_format::text};
  std::once_flag flusher;

  static pipeline& get() {
    static auto* p = new pipeline; // never destroyed: loggers may log during static destruction
    return *p;
  }
};

spdlog::level::level_enum level_of_syslog(int level) {
  if (level <= 2)
    return spdlog::level::critical;
  if (level == 3)
    return spdlog::level::err;
  if (level == 4)
    return spdlog::level::warn;
  if (level <= 6)
    return spdlog::level::info;
  return spdlog::level::debug;
}

// The text of a librdkafka line without its trailing details in parentheses ("(after 3ms in
// state CONNECT, 2 identical error(s) suppressed)"): repeats of one failure compare equal.
std::string_view without_details(std::string_view text) {
  if (!text.empty() && text.back() == ')')
    if (auto open = text.rfind(" ("); open != std::string_view::npos && open > 0)
      return text.substr(0, open);
  return text;
}

std::string client_name(const rd_kafka_t* rk) { return rk ? rd_kafka_name(rk) : "librdkafka"; }

void kafka_log_cb(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  detail::log_kafka_line(client_name(rk), level, fac ? fac : "", buf ? buf : "");
}

void kafka_error_cb(rd_kafka_t* rk, int err, const char* reason, void*) {
  log_kafka_error(rk, err, reason);
}

} // namespace

std::string_view to_string(log_format f) noexcept { return f == log_format::json ? "json" : "text"; }

expected<log_format> parse_log_format(std::string_view s) {
  if (s == "text")
    return log_format::text;
  if (s == "json")
    return log_format::json;
  return error{errc::invalid_argument, "log format '" + std::string{s} + "': text or json"};
}

void set_log_format(log_format f) {
  auto& p = pipeline::get();
  std::lock_guard guard{p.mtx};
  p.format = f;
  p.sink->forward_formats(true);
  if (f == log_format::json)
    p.sink->set_formatter(std::make_unique<json_log_formatter>());
  else
    p.sink->set_formatter(std::make_unique<spdlog::pattern_formatter>());
  p.sink->forward_formats(f == log_format::text);
}

log_format current_log_format() noexcept { return pipeline::get().format.load(); }

std::shared_ptr<spdlog::logger> named_logger(const char* name) {
  auto& p = pipeline::get();
  std::lock_guard guard{p.mtx};
  if (auto l = spdlog::get(name))
    return l;
  auto l = std::make_shared<spdlog::logger>(name, p.sink);
  // Registers it and gives it spdlog's level (and, in text format, its pattern; a JSON
  // sink keeps its format).
  spdlog::initialize_logger(l);
  // The periodic flush closes the windows of repeated lines that are over.
  std::call_once(p.flusher, [] { spdlog::flush_every(std::chrono::seconds{1}); });
  return l;
}

// Never destroyed: librdkafka's threads may still log while the process exits (a mock
// cluster destroyed late, for example).
spdlog::logger& persistence_log() {
  static auto* log = new std::shared_ptr<spdlog::logger>(named_logger("cafes.persistence"));
  return **log;
}

spdlog::logger& kafka_log() {
  static auto* log = new std::shared_ptr<spdlog::logger>(named_logger("cafes.kafka"));
  return **log;
}

int kafka_syslog_level() noexcept {
  switch (kafka_log().level()) {
    case spdlog::level::trace:
    case spdlog::level::debug: return 7;
    case spdlog::level::info: return 6;
    case spdlog::level::warn: return 4;
    case spdlog::level::err: return 3;
    case spdlog::level::critical: return 2;
    default: return 0;
  }
}

void route_kafka_logs(rd_kafka_conf_t* conf) {
  rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
  rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
  char err[256];
  rd_kafka_conf_set(conf, "log_level", std::to_string(kafka_syslog_level()).c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "log.thread.name", "false", err, sizeof err); // each line names its client
}

void log_kafka_error(const rd_kafka_t* rk, int err, const char* reason) {
  const bool fatal = err == RD_KAFKA_RESP_ERR__FATAL;
  std::string why = reason ? reason : "";
  if (fatal && rk) {
    char buf[512];
    const auto cause = rd_kafka_fatal_error(const_cast<rd_kafka_t*>(rk), buf, sizeof buf);
    if (cause)
      why = std::string{rd_kafka_err2name(cause)} + ": " + buf;
  }
  detail::log_kafka_error(client_name(rk), err, why, fatal);
}

namespace {

std::atomic<std::uint64_t> producer_errors{0}, consumer_errors{0}, fatal_errors{0};

// A client's name says its kind: librdkafka's handles are "<client.id>#producer-N" or
// "#consumer-N"; cafes's event-callback clients name their role ("table writer", ...).
void count_kafka_error(std::string_view client, bool fatal) {
  const bool producer = client.find("producer") != std::string_view::npos || client.find("writer") != std::string_view::npos;
  (producer ? producer_errors : consumer_errors).fetch_add(1, std::memory_order_relaxed);
  if (fatal)
    fatal_errors.fetch_add(1, std::memory_order_relaxed);
}

} // namespace

kafka_error_counts kafka_errors() noexcept {
  return {producer_errors.load(std::memory_order_relaxed), consumer_errors.load(std::memory_order_relaxed),
          fatal_errors.load(std::memory_order_relaxed)};
}

void flush_logs() {
  pipeline::get().sink->close_windows();
}

namespace detail {

void log_kafka_line(std::string_view client, int level, std::string_view fac, std::string_view text) {
  auto& log = kafka_log();
  const auto lvl = level_of_syslog(level);
  if (!log.should_log(lvl))
    return;
  std::string key{client};
  key.append(" ").append(fac).append(": ").append(without_details(text));
  repeat_key same{std::move(key)};
  log.log(lvl, "{} {}: {}", client, fac, text);
}

void log_kafka_error(std::string_view client, int err, std::string_view reason, bool fatal) {
  count_kafka_error(client, fatal);
  auto& log = kafka_log();
  const auto lvl = fatal ? spdlog::level::err : spdlog::level::warn;
  if (!log.should_log(lvl))
    return;
  const std::string_view name = rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err));
  std::string key{client};
  key.append(" error ").append(name).append(": ").append(without_details(reason));
  repeat_key same{std::move(key)};
  log.log(lvl, "{} {}error {}: {}", client, fatal ? "fatal " : "", name, reason);
}

} // namespace detail

} // namespace cafes
