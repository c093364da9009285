// The JSON line format and the filter of repeated lines.
#include "cafes/persistence/log_sinks.hpp"

#include <ctime>
#include <iterator>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <spdlog/details/log_msg.h>
#include <spdlog/pattern_formatter.h>

namespace cafes {

namespace {

std::string_view level_name(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

std::string iso_time(spdlog::log_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms / 1000);
  auto rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(rem));
  return buf;
}

thread_local const std::string* current_key = nullptr;

} // namespace

// -- json_log_formatter -------------------------------------------------------

void json_log_formatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  nlohmann::ordered_json j;
  j["time"] = iso_time(msg.time);
  j["level"] = level_name(msg.level);
  j["logger"] = std::string(msg.logger_name.data(), msg.logger_name.size());
  j["message"] = std::string(msg.payload.data(), msg.payload.size());
  const auto s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  dest.append(s.data(), s.data() + s.size());
  dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> json_log_formatter::clone() const { return std::make_unique<json_log_formatter>(); }

// -- repeat_filter ------------------------------------------------------------

repeat_filter::repeat_filter(std::chrono::milliseconds window, now_fn now) : window_(window), now_(std::move(now)) {
  if (window_.count() <= 0)
    throw std::invalid_argument("a repeat window must be longer than 0");
  if (!now_)
    now_ = [] { return clock::now(); };
}

bool repeat_filter::admit(const std::string& key, std::string_view logger, spdlog::level::level_enum level,
                          std::string_view text, std::vector<repeated>& due) {
  expire(due);
  if (auto it = windows_.find(key); it != windows_.end()) {
    ++it->second.line.count;
    return false;
  }
  if (windows_.size() < max_keys)
    windows_.emplace(key, state{now_(), repeated{std::string{logger}, level, std::string{text}, 0}});
  return true;
}

void repeat_filter::expire(std::vector<repeated>& due) {
  if (windows_.empty())
    return;
  const auto now = now_();
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (now - it->second.opened < window_) {
      ++it;
      continue;
    }
    if (it->second.line.count > 0)
      due.push_back(std::move(it->second.line));
    it = windows_.erase(it);
  }
}

void repeat_filter::close_all(std::vector<repeated>& due) {
  for (auto& [key, s] : windows_)
    if (s.line.count > 0)
      due.push_back(std::move(s.line));
  windows_.clear();
}

std::string repeated_text(std::string_view text, std::uint64_t count, std::chrono::milliseconds window) {
  std::string out{text};
  out += " (repeated " + std::to_string(count) + (count == 1 ? " time" : " times") + " in the last ";
  if (window.count() % 1000 == 0)
    out += std::to_string(window.count() / 1000) + " s)";
  else
    out += std::to_string(window.count()) + " ms)";
  return out;
}

// -- repeat_key ---------------------------------------------------------------

repeat_key::repeat_key(std::string key) : key_(std::move(key)), outer_(current_key) { current_key = &key_; }

repeat_key::~repeat_key() { current_key = outer_; }

const std::string* repeat_key::current() noexcept { return current_key; }

// -- repeat_limiting_sink -----------------------------------------------------

repeat_limiting_sink::repeat_limiting_sink(std::shared_ptr<spdlog::sinks::sink> inner, std::chrono::milliseconds window,
                                           repeat_filter::now_fn now, spdlog::level::level_enum from)
    : inner_(std::move(inner)), filter_(window, std::move(now)), from_(from) {
  if (!inner_)
    throw std::invalid_argument("repeat_limiting_sink needs a sink to wrap");
}

void repeat_limiting_sink::forward_formats(bool on) {
  std::lock_guard guard{mutex_};
  forward_ = on;
}

void repeat_limiting_sink::close_windows() {
  std::lock_guard guard{mutex_};
  filter_.close_all(due_);
  emit(due_);
  inner_->flush();
}

void repeat_limiting_sink::emit(std::vector<repeat_filter::repeated>& due) {
  for (auto& r : due) {
    const auto text = repeated_text(r.text, r.count, filter_.window());
    spdlog::details::log_msg m{spdlog::source_loc{}, r.logger, r.level, text};
    inner_->log(m);
  }
  due.clear();
}

void repeat_limiting_sink::sink_it_(const spdlog::details::log_msg& msg) {
  if (msg.level < from_) {
    filter_.expire(due_);
    emit(due_);
    inner_->log(msg);
    return;
  }
  const std::string_view logger{msg.logger_name.data(), msg.logger_name.size()};
  const std::string_view text{msg.payload.data(), msg.payload.size()};
  std::string key;
  key.reserve(logger.size() + text.size() + 4);
  key.append(logger).push_back('\x1f');
  key += std::to_string(static_cast<int>(msg.level));
  key.push_back('\x1f');
  if (const auto* k = repeat_key::current())
    key += *k;
  else
    key.append(text);
  const bool print = filter_.admit(key, logger, msg.level, text, due_);
  emit(due_);
  if (print)
    inner_->log(msg);
}

void repeat_limiting_sink::flush_() {
  filter_.expire(due_);
  emit(due_);
  inner_->flush();
}

void repeat_limiting_sink::set_pattern_(const std::string& pattern) {
  if (forward_)
    inner_->set_pattern(pattern);
}

void repeat_limiting_sink::set_formatter_(std::unique_ptr<spdlog::formatter> f) {
  if (forward_)
    inner_->set_formatter(std::move(f));
}

} // namespace cafes
