// A node's logging options: --log-format from the command line and the config file, bad
// values refused, and a node in JSON format writing one JSON object a line.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cafes/persistence/logger.hpp"
#include "cafes/runtime/node.hpp"
#include "stderr_capture.hpp"
#include "test_env.hpp"

using namespace cafes;

namespace {

expected<node_config> parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  return node_config::from_args(static_cast<int>(argv.size()), argv.data());
}

} // namespace

TEST_CASE("log format option: text by default, json from the command line or the config file", "[node][config][logging]") {
  CHECK(parse({"prog"}).value().log_format == "text");
  CHECK(parse({"prog", "--log-format", "json"}).value().log_format == "json");
  const auto dir = std::filesystem::temp_directory_path() / cafes::test::unique_ns("logcfg");
  std::filesystem::create_directories(dir);
  const auto file = (dir / "node.ini").string();
  std::ofstream{file} << "log-format = \"json\"\nlog-level = \"warn\"\n";
  auto c = parse({"prog", "--config", file});
  REQUIRE(c);
  CHECK(c->log_format == "json");
  CHECK(c->log_level == "warn");
  CHECK(parse({"prog", "--config", file, "--log-format", "text"}).value().log_format == "text"); // the command line wins
  for (auto bad : {"xml", "JSON", ""}) {
    auto r = parse({"prog", "--log-format", bad});
    INFO(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_argument);
    CHECK(r.error().message.find("--log-format") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a node refuses an unknown log format or level", "[node][logging][bad-input]") {
  node_config cfg;
  cfg.storage = storage_kind::memory;
  cfg.log_format = "yaml";
  auto n = node::start(cfg);
  REQUIRE_FALSE(n);
  CHECK(n.error() == errc::invalid_argument);
  CHECK(n.error().message.find("yaml") != std::string::npos);
  cfg.log_format = "text";
  cfg.log_level = "loud";
  n = node::start(cfg);
  REQUIRE_FALSE(n);
  CHECK(n.error() == errc::invalid_argument);
  CHECK(n.error().message.find("loud") != std::string::npos);
}

TEST_CASE("a node with --log-format json writes one JSON object a line", "[node][logging]") {
  cafes::test::stderr_capture err{false};
  {
    node_config cfg;
    cfg.storage = storage_kind::memory;
    cfg.log_level = "info";
    cfg.log_format = "json";
    node n{cfg};
    n.stop();
  }
  set_log_format(log_format::text);
  err.stop();
  std::istringstream in{err.text()};
  int lines = 0, durable_warnings = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty())
      continue;
    INFO(line);
    auto j = nlohmann::json::parse(line); // every line, CAF's excepted: it prints nothing here
    ++lines;
    CHECK(j.contains("time"));
    CHECK(j.contains("level"));
    CHECK(j.contains("logger"));
    CHECK(j.contains("message"));
    if (j["logger"] == "cafes.runtime" && j["level"] == "warn" &&
        j["message"].get<std::string>().find("NOTHING IS DURABLE") != std::string::npos)
      ++durable_warnings;
  }
  CHECK(lines >= 1);
  CHECK(durable_warnings == 1);
}
