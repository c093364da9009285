// The log pipeline: the JSON line format, the filter of repeated lines (on an injected
// clock), librdkafka's lines through "cafes.kafka", and no raw librdkafka line on stderr.
#include <regex>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "cafes/persistence/log_sinks.hpp"
#include "cafes/persistence/logger.hpp"
#include "journal_contract.hpp"
#include "kafka_fixture.hpp"
#include "stderr_capture.hpp"

using namespace cafes;
using namespace cafes::test;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    if (!line.empty())
      out.push_back(line);
  return out;
}

/// A logger writing to a string through `sink`.
struct string_logger {
  std::ostringstream out;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> target = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
};

/// A clock the test moves by hand.
struct manual_clock {
  repeat_filter::clock::time_point t{std::chrono::hours{1}};
  repeat_filter::now_fn fn() {
    return [this] { return t; };
  }
};

/// Sets the format back to text when a test ends.
struct text_format_after {
  ~text_format_after() { set_log_format(log_format::text); }
};

} // namespace

TEST_CASE("log format: parses text and json, refuses others", "[logging][bad-input]") {
  CHECK(parse_log_format("text").value() == log_format::text);
  CHECK(parse_log_format("json").value() == log_format::json);
  for (auto bad : {"", "JSON", "xml", "json "}) {
    auto f = parse_log_format(bad);
    REQUIRE_FALSE(f);
    CHECK(f.error() == errc::invalid_argument);
  }
  CHECK(to_string(log_format::json) == "json");
  CHECK(to_string(log_format::text) == "text");
}

TEST_CASE("json log format: one parseable object a line, every character escaped", "[logging]") {
  string_logger s;
  s.target->set_formatter(std::make_unique<json_log_formatter>());
  spdlog::logger log{"cafes.test-json", s.target};
  log.set_level(spdlog::level::trace);
  const std::vector<std::string> messages{
    "plain",
    "quotes \" and \\ backslash",
    "a newline\nin the middle\r\tand a tab",
    std::string{"control \x01\x1f and nul "} + '\0' + " byte",
    "unicode: caf\xc3\xa9 \xe2\x82\xac",
    "not utf-8: \xff\xfe end",
    "{\"looks\": \"like json\"}",
  };
  for (auto& m : messages)
    log.warn("{}", m);
  log.error("error");
  log.info("info");
  log.debug("debug");
  log.critical("critical");
  auto lines = lines_of(s.out.str());
  REQUIRE(lines.size() == messages.size() + 4);
  const std::regex iso{R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)"};
  std::vector<nlohmann::json> parsed;
  for (auto& line : lines) {
    INFO(line);
    auto j = nlohmann::json::parse(line); // throws if the line is not one JSON object
    REQUIRE(j.is_object());
    CHECK(j.size() == 4);
    CHECK(std::regex_match(j.at("time").get<std::string>(), iso));
    CHECK(j.at("logger") == "cafes.test-json");
    parsed.push_back(std::move(j));
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    CHECK(parsed[i]["level"] == "warn");
    if (i != 5) // invalid UTF-8 is replaced
      CHECK(parsed[i]["message"].get<std::string>() == messages[i]);
  }
  CHECK(parsed[5]["message"].get<std::string>() == "not utf-8: \xef\xbf\xbd\xef\xbf\xbd end");
  CHECK(parsed[7]["level"] == "error");
  CHECK(parsed[8]["level"] == "info");
  CHECK(parsed[9]["level"] == "debug");
  CHECK(parsed[10]["level"] == "critical");
}

TEST_CASE("json log format: the time is UTC with milliseconds", "[logging]") {
  string_logger s;
  s.target->set_formatter(std::make_unique<json_log_formatter>());
  // 2024-05-01T12:00:00.042Z
  spdlog::details::log_msg m{spdlog::log_clock::time_point{std::chrono::milliseconds{1714564800042}}, {}, "x",
                             spdlog::level::info, "t"};
  s.target->log(m);
  auto j = nlohmann::json::parse(lines_of(s.out.str()).at(0));
  CHECK(j["time"] == "2024-05-01T12:00:00.042Z");
}

TEST_CASE("repeat filter: the first line is printed, repeats counted until the window ends", "[logging][repeat]") {
  manual_clock c;
  repeat_filter f{10s, c.fn()};
  std::vector<repeat_filter::repeated> due;
  CHECK(f.admit("a", "cafes.x", spdlog::level::warn, "broker down", due));
  for (int i = 0; i < 5; ++i) {
    c.t += 1s;
    CHECK_FALSE(f.admit("a", "cafes.x", spdlog::level::warn, "broker down", due));
  }
  CHECK(due.empty());
  CHECK(f.open_windows() == 1);
  c.t += 4999ms; // 9.999 s after the first
  f.expire(due);
  CHECK(due.empty());
  c.t += 1ms; // the window is over
  f.expire(due);
  REQUIRE(due.size() == 1);
  CHECK(due[0].count == 5);
  CHECK(due[0].text == "broker down");
  CHECK(due[0].logger == "cafes.x");
  CHECK(due[0].level == spdlog::level::warn);
  CHECK(f.open_windows() == 0);
  // After the window, the line is printed again and opens a new window.
  due.clear();
  CHECK(f.admit("a", "cafes.x", spdlog::level::warn, "broker down", due));
}

TEST_CASE("repeat filter: a line not repeated leaves no summary, keys are independent", "[logging][repeat]") {
  manual_clock c;
  repeat_filter f{10s, c.fn()};
  std::vector<repeat_filter::repeated> due;
  CHECK(f.admit("a", "l", spdlog::level::warn, "A", due));
  CHECK(f.admit("b", "l", spdlog::level::warn, "B", due));
  // Interleaved repeats (librdkafka reports a failure as a log line and as an error) are
  // counted per key.
  for (int i = 0; i < 3; ++i) {
    CHECK_FALSE(f.admit("a", "l", spdlog::level::warn, "A", due));
    CHECK_FALSE(f.admit("b", "l", spdlog::level::warn, "B", due));
  }
  c.t += 2s;
  CHECK(f.admit("c", "l", spdlog::level::warn, "C", due)); // opened later, ends later
  c.t += 8s;
  CHECK(f.admit("d", "l", spdlog::level::warn, "D", due)); // admitting ends the windows of a and b
  REQUIRE(due.size() == 2);
  CHECK(due[0].text == "A");
  CHECK(due[0].count == 3);
  CHECK(due[1].text == "B");
  CHECK(due[1].count == 3);
  due.clear();
  c.t += 2s;
  f.expire(due);
  CHECK(due.empty()); // c was never repeated: nothing to say
  CHECK(f.open_windows() == 1); // d
  f.close_all(due);
  CHECK(due.empty());
  CHECK(f.open_windows() == 0);
}

TEST_CASE("repeat filter: bounded keys, bad window", "[logging][repeat][bad-input]") {
  manual_clock c;
  repeat_filter f{1s, c.fn()};
  std::vector<repeat_filter::repeated> due;
  for (std::size_t i = 0; i < repeat_filter::max_keys; ++i)
    REQUIRE(f.admit(std::to_string(i), "l", spdlog::level::warn, "x", due));
  // Beyond the bound a line is printed, never lost, and not followed.
  CHECK(f.admit("one more", "l", spdlog::level::warn, "x", due));
  CHECK(f.admit("one more", "l", spdlog::level::warn, "x", due));
  CHECK(f.open_windows() == repeat_filter::max_keys);
  CHECK_THROWS_AS(repeat_filter(0ms), std::invalid_argument);
  CHECK_THROWS_AS(repeat_limiting_sink(nullptr), std::invalid_argument);
}

TEST_CASE("repeated_text says how often and in which window", "[logging][repeat]") {
  CHECK(repeated_text("x", 1, 10s) == "x (repeated 1 time in the last 10 s)");
  CHECK(repeated_text("x", 7, 10s) == "x (repeated 7 times in the last 10 s)");
  CHECK(repeated_text("x", 2, 1500ms) == "x (repeated 2 times in the last 1500 ms)");
}

TEST_CASE("repeat-limiting sink: same logger and text collapse into one summary line", "[logging][repeat]") {
  manual_clock c;
  string_logger s;
  s.target->set_pattern("%n|%l|%v");
  auto sink = std::make_shared<repeat_limiting_sink>(s.target, 10s, c.fn());
  spdlog::logger a{"cafes.a", sink}, b{"cafes.b", sink};
  a.set_level(spdlog::level::trace);
  b.set_level(spdlog::level::trace);
  for (int i = 0; i < 50; ++i) {
    a.warn("request to broker 1 failed");
    b.warn("request to broker 1 failed"); // another logger: another key
    a.error("request to broker 1 failed"); // another level: another key
    a.info("info lines pass: {}", "same"); // below warn: never filtered
    c.t += 100ms;
  }
  a.warn("something else"); // a new text is printed at once
  auto lines = lines_of(s.out.str());
  CHECK(lines.size() == 3 + 50 + 1);
  CHECK(lines[0] == "cafes.a|warning|request to broker 1 failed");
  CHECK(lines[1] == "cafes.b|warning|request to broker 1 failed");
  CHECK(lines[2] == "cafes.a|error|request to broker 1 failed");
  c.t += 5s; // the windows opened 10 s ago
  sink->flush();
  lines = lines_of(s.out.str());
  REQUIRE(lines.size() == 3 + 50 + 1 + 3);
  const std::vector<std::string> summaries(lines.end() - 3, lines.end());
  CHECK(std::count(summaries.begin(), summaries.end(),
                   "cafes.a|warning|request to broker 1 failed (repeated 49 times in the last 10 s)") == 1);
  CHECK(std::count(summaries.begin(), summaries.end(),
                   "cafes.b|warning|request to broker 1 failed (repeated 49 times in the last 10 s)") == 1);
  CHECK(std::count(summaries.begin(), summaries.end(),
                   "cafes.a|error|request to broker 1 failed (repeated 49 times in the last 10 s)") == 1);
  // "something else" was not repeated: it gets no summary, even when every window closes.
  sink->close_windows();
  CHECK(lines_of(s.out.str()).size() == lines.size());
}

TEST_CASE("repeat-limiting sink: a repeat key groups lines whose texts differ", "[logging][repeat]") {
  manual_clock c;
  string_logger s;
  s.target->set_pattern("%v");
  auto sink = std::make_shared<repeat_limiting_sink>(s.target, 10s, c.fn());
  spdlog::logger log{"cafes.k", sink};
  for (int i = 0; i < 4; ++i) {
    repeat_key k{"FAIL broker 1"};
    log.warn("broker 1 failed (after {}ms)", i);
  }
  {
    repeat_key k{"FAIL broker 2"};
    log.warn("broker 2 failed (after 0ms)");
  }
  CHECK(repeat_key::current() == nullptr);
  sink->close_windows();
  auto lines = lines_of(s.out.str());
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "broker 1 failed (after 0ms)");
  CHECK(lines[1] == "broker 2 failed (after 0ms)");
  CHECK(lines[2] == "broker 1 failed (after 0ms) (repeated 3 times in the last 10 s)");
}

TEST_CASE("cafes loggers: JSON on stderr, for loggers created after the format was chosen too",
          "[logging][json]") {
  text_format_after restore;
  spdlog::set_level(spdlog::level::info);
  stderr_capture cap{false};
  set_log_format(log_format::json);
  persistence_log().info("before \"quoted\"");
  auto later = named_logger("cafes.test-created-later");
  later->warn("later\nline");
  spdlog::set_pattern("%v"); // an application's pattern does not undo the JSON format
  detail::log_kafka_line("cafes-test#producer-1", 4, "REQTMOUT", "Timed out");
  set_log_format(log_format::text);
  persistence_log().info("plain text now");
  flush_logs();
  cap.stop();
  auto lines = lines_of(cap.text());
  REQUIRE(lines.size() == 4);
  std::vector<nlohmann::json> j;
  for (std::size_t i = 0; i < 3; ++i) {
    INFO(lines[i]);
    j.push_back(nlohmann::json::parse(lines[i]));
  }
  CHECK(j[0]["logger"] == "cafes.persistence");
  CHECK(j[0]["level"] == "info");
  CHECK(j[0]["message"] == "before \"quoted\"");
  CHECK(j[1]["logger"] == "cafes.test-created-later");
  CHECK(j[1]["level"] == "warn");
  CHECK(j[1]["message"] == "later\nline");
  CHECK(j[2]["logger"] == "cafes.kafka");
  CHECK(j[2]["level"] == "warn");
  CHECK(j[2]["message"] == "cafes-test#producer-1 REQTMOUT: Timed out");
  CHECK(lines[3].find("plain text now") != std::string::npos);
  CHECK(lines[3].front() != '{');
  spdlog::set_pattern("%+");
}

TEST_CASE("kafka logger: librdkafka levels map to spdlog levels, repeats of one failure collapse",
          "[logging][kafka]") {
  text_format_after restore;
  spdlog::set_level(spdlog::level::debug);
  stderr_capture cap{false};
  set_log_format(log_format::json);
  CHECK(kafka_syslog_level() == 7);
  for (int level : {0, 2, 3, 4, 5, 6, 7})
    detail::log_kafka_line("c#producer-1", level, "LVL", "level " + std::to_string(level));
  // One connection failure, reported again and again with changing details, is one line
  // and one summary; the error callback's report of it is another key.
  for (int i = 0; i < 5; ++i) {
    detail::log_kafka_line("c#producer-1", 3, "FAIL",
                           "b:9092/1: Connect failed (after " + std::to_string(i) + "ms in state CONNECT)");
    detail::log_kafka_error("c#producer-1", -195, "b:9092/1: Connect failed (after " + std::to_string(i) + "ms)",
                            false);
  }
  detail::log_kafka_error("c#producer-1", -144, "fenced", true);
  flush_logs();
  spdlog::set_level(spdlog::level::warn);
  CHECK(kafka_syslog_level() == 4);
  detail::log_kafka_line("c#producer-1", 6, "INFO", "not shown below warn");
  spdlog::set_level(spdlog::level::off);
  CHECK(kafka_syslog_level() == 0);
  spdlog::set_level(spdlog::level::info);
  cap.stop();
  auto lines = lines_of(cap.text());
  std::vector<nlohmann::json> j;
  for (auto& l : lines) {
    INFO(l);
    j.push_back(nlohmann::json::parse(l));
  }
  REQUIRE(j.size() == 7 + 2 + 1 + 2);
  const std::vector<std::string> levels{"critical", "critical", "error", "warn", "info", "info", "debug"};
  for (std::size_t i = 0; i < levels.size(); ++i) {
    CHECK(j[i]["level"] == levels[i]);
    CHECK(j[i]["logger"] == "cafes.kafka");
  }
  CHECK(j[7]["message"] == "c#producer-1 FAIL: b:9092/1: Connect failed (after 0ms in state CONNECT)");
  CHECK(j[7]["level"] == "error");
  CHECK(j[8]["message"] == "c#producer-1 error _TRANSPORT: b:9092/1: Connect failed (after 0ms)");
  CHECK(j[8]["level"] == "warn");
  CHECK(j[9]["message"] == "c#producer-1 fatal error _FENCED: fenced");
  CHECK(j[9]["level"] == "error");
  std::vector<std::string> summaries{j[10]["message"], j[11]["message"]};
  std::sort(summaries.begin(), summaries.end());
  CHECK(summaries[0] ==
        "c#producer-1 FAIL: b:9092/1: Connect failed (after 0ms in state CONNECT) (repeated 4 times in the last 10 s)");
  CHECK(summaries[1] == "c#producer-1 error _TRANSPORT: b:9092/1: Connect failed (after 0ms) (repeated 4 times in "
                        "the last 10 s)");
}

TEST_CASE("embedded cluster with a broker down: librdkafka's lines reach stderr only through cafes.kafka",
          "[logging][kafka][embedded]") {
  text_format_after restore;
  spdlog::set_level(spdlog::level::info);
  stderr_capture cap;
  {
    auto mc = embedded_cluster::start(1).value();
    kafka_config cfg;
    cfg.embedded = mc;
    cfg.client_id = "cafes-logging-test";
    cfg.delivery_timeout = scaled(2000ms);
    cfg.request_timeout = scaled(2000ms);
    auto t = provision(cfg, "logdown", 1);
    auto j = make_kafka_journal(cfg, t.names.events, t.partitions);
    REQUIRE(j);
    mc->set_all_down(true);
    auto r = append_async(**j, {make_event("acc-1", 1)}).get(); // fails: the broker is down
    CHECK(r.err);
    CHECK(eventually([&] { return !cap.lines_matching(std::regex{R"(\[cafes\.kafka\])"}).empty(); }));
    mc->set_all_down(false);
  }
  flush_logs();
  cap.stop();
  INFO(cap.text());
  CHECK(cap.raw_librdkafka_lines().empty());
  auto kafka = cap.lines_matching(std::regex{R"(\[cafes\.kafka\].*cafes-logging-test)"});
  CHECK_FALSE(kafka.empty());
}
