// The pieces of cafes's log pipeline: the JSON line format and the filter of repeated lines.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/formatter.h>
#include <spdlog/sinks/base_sink.h>

namespace cafes {

/// Formats each log line as one JSON object: {"time":"2024-05-01T12:00:00.123Z",
/// "level":"warn","logger":"cafes.kafka","message":"…"}. The time is UTC with milliseconds;
/// the level is trace, debug, info, warn, error or critical; the message is escaped (bytes
/// that are not UTF-8 become U+FFFD), so that each line parses on its own.
class json_log_formatter final : public spdlog::formatter {
 public:
  /// Appends the JSON object of `msg` and a newline to `dest`.
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  /// Returns a copy of this formatter.
  std::unique_ptr<spdlog::formatter> clone() const override;
};

/// Decides which of a stream of lines are printed: the first line of a key opens a window
/// and is printed; the same key again within the window is only counted. When the window
/// is over, the count comes back as one summary. Not thread-safe (the sink that owns it
/// locks); its clock is injectable, so that tests need not wait.
class repeat_filter {
 public:
  using clock = std::chrono::steady_clock;     ///< the clock of the windows
  using now_fn = std::function<clock::time_point()>; ///< returns the current time

  /// A line that was repeated within its window, and how often (beyond the first).
  struct repeated {
    std::string logger;                              ///< the logger of the line
    spdlog::level::level_enum level = spdlog::level::warn; ///< the level of the line
    std::string text;                                ///< the text of the first line
    std::uint64_t count = 0;                         ///< lines counted, not printed
  };

  /// At most this many keys are followed at once; a line of any further key is printed.
  static constexpr std::size_t max_keys = 1024;

  /// A filter with windows of `window` (longer than 0), reading the time from `now`
  /// (default: the steady clock).
  explicit repeat_filter(std::chrono::milliseconds window = std::chrono::seconds{10}, now_fn now = {});

  /// Returns true when a line of `key` is to be printed: no window of `key` is open (it
  /// opens one). Otherwise counts it and returns false. Closes the windows that are over
  /// first, appending the summaries of those with repeats to `due`.
  bool admit(const std::string& key, std::string_view logger, spdlog::level::level_enum level,
             std::string_view text, std::vector<repeated>& due);

  /// Closes the windows that are over, appending the summaries of those with repeats to `due`.
  void expire(std::vector<repeated>& due);

  /// Closes every window now, appending the summaries of those with repeats to `due`.
  void close_all(std::vector<repeated>& due);

  /// Returns the number of open windows.
  std::size_t open_windows() const noexcept { return windows_.size(); }

  /// Returns the window length.
  std::chrono::milliseconds window() const noexcept { return window_; }

 private:
  struct state {
    clock::time_point opened;
    repeated line;
  };
  std::chrono::milliseconds window_;
  now_fn now_;
  std::map<std::string, state, std::less<>> windows_;
};

/// Returns the text of a summary: "`text` (repeated `count` times in the last `window`)",
/// the window written in seconds ("10 s") or, below a whole second, milliseconds.
std::string repeated_text(std::string_view text, std::uint64_t count, std::chrono::milliseconds window);

/// While one lives, lines logged on its thread are compared by its key instead of by their
/// text (for example the librdkafka lines, whose texts carry changing details).
class repeat_key {
 public:
  /// Groups this thread's lines under `key` until destroyed.
  explicit repeat_key(std::string key);
  ~repeat_key();
  repeat_key(const repeat_key&) = delete;
  repeat_key& operator=(const repeat_key&) = delete;
  /// Returns the key of this thread's innermost live repeat_key, or null.
  static const std::string* current() noexcept;

 private:
  std::string key_;
  const std::string* outer_;
};

/// A sink that passes lines to another sink, but collapses repeated ones: a line at or
/// above `from` (default: warn) whose logger, level and text (or repeat_key) were seen
/// within the window is counted instead of printed, and once the window is over one line
/// "`text` (repeated N times in the last 10 s)" follows, at the line's level and logger.
/// Windows are closed at the next line and at each flush (spdlog::flush_every makes that
/// periodic). Lines below `from` pass unchanged.
class repeat_limiting_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  /// Wraps `inner`, with windows of `window` read from `now` (default: the steady clock).
  explicit repeat_limiting_sink(std::shared_ptr<spdlog::sinks::sink> inner,
                                std::chrono::milliseconds window = std::chrono::seconds{10},
                                repeat_filter::now_fn now = {}, spdlog::level::level_enum from = spdlog::level::warn);

  /// Whether set_pattern and set_formatter reach the wrapped sink (default: true).
  /// cafes turns it off while its format is JSON, so that spdlog giving a new logger the
  /// default pattern does not change the format.
  void forward_formats(bool on);

  /// Prints the summaries of every open window now (before the process ends).
  void close_windows();

  /// Returns the wrapped sink.
  const std::shared_ptr<spdlog::sinks::sink>& inner() const noexcept { return inner_; }

 protected:
  /// Filters one line (the base sink holds its lock).
  void sink_it_(const spdlog::details::log_msg& msg) override;
  /// Prints the summaries of the windows that are over, then flushes the wrapped sink.
  void flush_() override;
  /// Passes the pattern to the wrapped sink, if forward_formats is on.
  void set_pattern_(const std::string& pattern) override;
  /// Passes the formatter to the wrapped sink, if forward_formats is on.
  void set_formatter_(std::unique_ptr<spdlog::formatter> f) override;

 private:
  void emit(std::vector<repeat_filter::repeated>& due);

  std::shared_ptr<spdlog::sinks::sink> inner_;
  repeat_filter filter_;
  spdlog::level::level_enum from_;
  bool forward_ = true;
  std::vector<repeat_filter::repeated> due_;
};

} // namespace cafes
