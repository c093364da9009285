// The bank's read side on the real broker: a node keeps the SQLite read model, the account
// state topic and the enriched transfers; it is killed with SIGKILL mid-stream and restarted,
// and each of the three still equals the journal's fold, with nothing applied twice.
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "account.hpp"
#include "cafes/actors/projection.hpp"
#include "cafes/persistence/kv_table.hpp"
#include "process.hpp"
#include "read_side.hpp"
#include "test_env.hpp"

using namespace cafes::test;

namespace {

struct read_node {
  std::unique_ptr<child> proc;
  std::unique_ptr<httplib::Client> http;

  read_node(const std::string& ns, const std::string& db, const std::string& log) {
    proc = std::make_unique<child>(std::vector<std::string>{CAFES_BANK_BINARY, "node", "--bootstrap", bootstrap(),
                                                            "--namespace", ns, "--port", "0", "--partitions", "3",
                                                            "--read-model", db, "--log-level", "warn"},
                                   log);
    auto port = proc->wait_for(std::regex{"listening on 127\\.0\\.0\\.1:([0-9]+)"}, scaled(std::chrono::seconds{60}));
    REQUIRE(port);
    http = std::make_unique<httplib::Client>("127.0.0.1", std::stoi(*port));
    http->set_read_timeout(scaled(std::chrono::seconds{30}));
  }
  std::pair<int, nlohmann::json> post(const std::string& path, const httplib::Params& p) {
    auto res = http->Post(path + "?" + httplib::detail::params_to_query_str(p));
    if (!res)
      return {0, {}};
    return {res->status, nlohmann::json::parse(res->body, nullptr, false)};
  }
  std::pair<int, nlohmann::json> get(const std::string& path, const httplib::Params& p = {}) {
    auto res = http->Get(path, p, httplib::Headers{});
    if (!res)
      return {0, {}};
    return {res->status, nlohmann::json::parse(res->body, nullptr, false)};
  }
};

constexpr int accounts = 5;

/// Opens the accounts (idempotent: a repeat is already_open) and runs `n` deposits and transfers.
void workload(read_node& node, int first, int n, std::set<std::string>& transfers) {
  for (int a = 0; a < accounts; ++a) {
    auto [s, body] = node.post("/accounts/open", {{"id", "acc-" + std::to_string(a)}, {"owner", "owner " + std::to_string(a)}});
    REQUIRE((s == 200 || s == 409 || body.value("code", "") == "already_open"));
  }
  for (int i = first; i < first + n; ++i) {
    auto id = "acc-" + std::to_string(i % accounts);
    if (i % 3 == 0) {
      auto tid = "t-" + std::to_string(i);
      auto [s, body] = node.post("/transfers", {{"from", id},
                                                {"to", "acc-" + std::to_string((i + 1) % accounts)},
                                                {"amount", std::to_string(1 + i % 7)},
                                                {"id", tid}});
      REQUIRE((s == 200 || s == 202));
      transfers.insert(tid);
    } else {
      auto [s, body] = node.post("/accounts/deposit", {{"id", id}, {"amount", "5"}, {"ref", "d" + std::to_string(i)}});
      REQUIRE(s == 200);
    }
  }
}

} // namespace

TEST_CASE("broker: the read model, the state topic and the enriched transfers equal the journal's fold after a "
          "SIGKILL of their node mid-stream",
          "[read-side][broker]") {
  const auto ns = unique_ns("readside");
  const auto dir = std::filesystem::temp_directory_path() / ns;
  std::filesystem::create_directories(dir);
  const auto db = (dir / "model.db").string();
  const auto log = (dir / "node.log").string();
  std::set<std::string> transfers;
  {
    read_node n{ns, db, log};
    workload(n, 0, 150, transfers);
    n.proc->kill(SIGKILL); // the projections are behind the journal by a batch or more
  }
  read_node n{ns, db, log};
  workload(n, 150, 60, transfers);

  // The journal's fold, as the aggregates have it.
  std::map<std::string, std::int64_t> balances;
  for (int a = 0; a < accounts; ++a) {
    auto id = "acc-" + std::to_string(a);
    auto [s, body] = n.get("/accounts/balance", {{"id", id}});
    REQUIRE(s == 200);
    balances[id] = body["balance"].get<std::int64_t>();
  }
  std::map<std::string, std::string> statuses;
  for (auto& t : transfers) {
    auto [s, body] = n.get("/transfers", {{"id", t}});
    REQUIRE(s == 200);
    statuses[t] = body["status"].get<std::string>();
  }

  // The read model converges to it: an event applied twice (or skipped) would keep it apart.
  nlohmann::json last;
  auto model_matches = [&] {
    auto [s, rep] = n.get("/report", {{"recent", "1000"}});
    if (s != 200)
      return false;
    last = rep;
    std::map<std::string, std::int64_t> got;
    for (auto& b : rep["balances"])
      got[b["id"].get<std::string>()] = b["balance"].get<std::int64_t>();
    std::map<std::string, std::string> got_status;
    for (auto& t : rep["transfers"])
      got_status[t["id"].get<std::string>()] = t["status"].get<std::string>();
    return got == balances && got_status == statuses;
  };
  INFO(last.dump());
  REQUIRE(eventually(model_matches, std::chrono::seconds{60}));
  // `bank report --db` reads the same file.
  auto rep = bank::read_report(db, 1000);
  REQUIRE(rep);
  CHECK((*rep)["balances"] == last["balances"]);

  // The account state topic holds each account's fold.
  cafes::kafka_config kafka;
  kafka.bootstrap = bootstrap();
  kafka.request_timeout = scaled(std::chrono::milliseconds{15'000});
  auto ops = cafes::make_ops<bank::account>();
  auto table = cafes::kv_table::open(kafka, cafes::topic_names::of(ns, "account").state, scaled(std::chrono::seconds{30}));
  REQUIRE(table);
  auto state_matches = [&] {
    if (!(*table)->sync(scaled(std::chrono::seconds{5})))
      return false;
    for (auto& [id, want] : balances) {
      auto r = (*table)->get(id);
      if (!r)
        return false;
      auto st = cafes::decode_state_record<bank::account>(*r, *ops);
      if (!st || st->balance != want || st->owner != "owner " + id.substr(4))
        return false;
    }
    return true;
  };
  CHECK(eventually(state_matches, std::chrono::seconds{60}));

  // One enriched record per transfer, with both owners.
  std::map<std::string, nlohmann::json> enriched;
  std::size_t records = 0;
  auto all_enriched = [&] {
    enriched.clear();
    records = 0;
    for (int p = 0; p < 3; ++p) {
      auto ok = cafes::read_partition(kafka, bank::enriched_topic(ns), cafes::partition_id{p}, [&](cafes::record&& r) {
        ++records;
        enriched[r.key] = nlohmann::json::parse(r.value.value_or("{}"), nullptr, false);
      });
      if (!ok)
        return false;
    }
    return enriched.size() == transfers.size();
  };
  REQUIRE(eventually(all_enriched, std::chrono::seconds{60}));
  CHECK(records == transfers.size());
  for (auto& [key, e] : enriched) {
    CHECK(transfers.count(key) == 1);
    CHECK(e["from_owner"] == "owner " + e["from"].get<std::string>().substr(4));
    CHECK(e["to_owner"] == "owner " + e["to"].get<std::string>().substr(4));
  }

  // Nothing was dead-lettered, so a re-drive finds no letter; a rebuild converges again.
  auto [rs, redrive] = n.post("/read-side/redrive", {});
  REQUIRE(rs == 200);
  for (auto& [what, r] : redrive["redrive"].items())
    CHECK(r["letters"] == 0);
  REQUIRE(n.post("/read-side/reset", {}).first == 200);
  CHECK(eventually(model_matches, std::chrono::seconds{60}));
  CHECK(eventually(state_matches, std::chrono::seconds{60}));
  n.proc->kill(SIGTERM);
  std::filesystem::remove_all(dir);
}
