// A bank node process on the real broker is killed with SIGKILL and restarted: every
// acknowledged command's effect is still there, and recovery stays within its bound.
#include <filesystem>
#include <map>
#include <regex>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "process.hpp"
#include "test_env.hpp"

using namespace cafes::test;

namespace {

struct bank_node {
  std::unique_ptr<child> proc;
  std::unique_ptr<httplib::Client> http;

  bank_node(const std::string& ns, const std::string& log) {
    proc = std::make_unique<child>(std::vector<std::string>{CAFES_BANK_BINARY, "node", "--bootstrap", bootstrap(),
                                                            "--namespace", ns, "--port", "0", "--partitions", "4",
                                                            "--snapshot-every", "20", "--max-replay", "100",
                                                            "--log-level", "warn"},
                                   log);
    auto port = proc->wait_for(std::regex{"listening on 127\\.0\\.0\\.1:([0-9]+)"}, scaled(std::chrono::seconds{60}));
    REQUIRE(port);
    http = std::make_unique<httplib::Client>("127.0.0.1", std::stoi(*port));
    http->set_read_timeout(scaled(std::chrono::seconds{30}));
  }

  /// Posts and returns (status, body as JSON); status 0 if the node did not answer.
  std::pair<int, nlohmann::json> post(const std::string& path, const httplib::Params& p) {
    auto res = http->Post(path + "?" + httplib::detail::params_to_query_str(p));
    if (!res)
      return {0, {}};
    return {res->status, nlohmann::json::parse(res->body, nullptr, false)};
  }
  std::pair<int, nlohmann::json> get(const std::string& path, const httplib::Params& p) {
    auto res = http->Get(path, p, httplib::Headers{});
    if (!res)
      return {0, {}};
    return {res->status, nlohmann::json::parse(res->body, nullptr, false)};
  }
};

} // namespace

TEST_CASE("broker: a node killed with SIGKILL restarts with every acknowledged effect and bounded recovery",
          "[node][restart][broker]") {
  const auto ns = unique_ns("restart");
  const auto log = (std::filesystem::temp_directory_path() / (ns + ".log")).string();
  constexpr int accounts = 6;
  std::map<std::string, std::int64_t> acked;
  std::vector<std::pair<std::string, std::string>> unknown; // (account, ref) with no answer
  {
    bank_node n{ns, log};
    for (int a = 0; a < accounts; ++a) {
      auto id = "acc-" + std::to_string(a);
      REQUIRE(n.post("/accounts/open", {{"id", id}, {"owner", "o"}}).first == 200);
      acked[id] = 0;
    }
    for (int d = 0; d < 300; ++d) {
      auto id = "acc-" + std::to_string(d % accounts);
      auto [status, body] = n.post("/accounts/deposit", {{"id", id}, {"amount", "3"}, {"ref", "d" + std::to_string(d)}});
      REQUIRE(status == 200);
      acked[id] += 3;
    }
    auto [ts, tb] = n.post("/transfers", {{"from", "acc-0"}, {"to", "acc-1"}, {"amount", "50"}, {"id", "t-1"}});
    REQUIRE(ts == 200);
    CHECK(tb["status"] == "completed");
    acked["acc-0"] -= 50;
    acked["acc-1"] += 50;
    n.proc->kill(SIGKILL); // no shutdown, no flush
  }
  bank_node n{ns, log};
  for (auto& [id, sum] : acked) {
    auto [status, body] = n.get("/accounts/balance", {{"id", id}});
    INFO(id << " " << body.dump());
    REQUIRE(status == 200);
    CHECK(body["balance"].get<std::int64_t>() == sum);
  }
  // A repeated deposit (same ref) after the restart is still recognised: nothing twice.
  auto [rs, rb] = n.post("/accounts/deposit", {{"id", "acc-0"}, {"amount", "3"}, {"ref", "d0"}});
  REQUIRE(rs == 200);
  CHECK(rb["balance"].get<std::int64_t>() == acked["acc-0"]);
  auto [ss, stats] = n.get("/stats", {});
  REQUIRE(ss == 200);
  INFO(stats.dump());
  const auto replayed = stats["account"]["events_replayed"].get<std::uint64_t>();
  const auto batch_max = stats["account"]["batch_max"].get<std::uint64_t>();
  CHECK(stats["account"]["snapshots_read"].get<std::uint64_t>() > 0);
  CHECK(stats["account"]["sequence_errors"].get<std::uint64_t>() == 0);
  CHECK(replayed <= 4 * (100 + std::max<std::uint64_t>(batch_max, 1))); // 4 partitions, max-replay 100
  CHECK(replayed < 300);                                               // far less than the 306 account events
  std::filesystem::remove(log);
}
