// Persist failures injected mid-load: nothing acknowledged is lost, nothing is written twice.
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/runtime/node.hpp"
#include "journal_contract.hpp"
#include "journal_wrappers.hpp"
#include "saga.hpp"

using namespace cafes;
using namespace bank;
using cafes::test::append_fault;
using cafes::test::wrapped_journal;

TEST_CASE("persist failures mid-load: failed commands get errors, retries apply once, the invariant holds",
          "[fault][persist]") {
  constexpr std::int32_t parts = 4;
  auto j = std::make_shared<wrapped_journal>(make_memory_journal("pf.account.events", parts));
  // Every 5th append fails: alternately before anything is written and after everything is.
  j->fault = [](std::uint64_t n) {
    if (n % 5 != 4)
      return append_fault::none;
    return (n / 5) % 2 ? append_fault::fail_after_write : append_fault::fail_before_write;
  };
  std::shared_ptr<snapshot_store> snaps = make_memory_snapshot_store(parts);
  node_config cfg;
  cfg.storage = storage_kind::memory;
  cfg.ns = "pf";
  cfg.log_level = "error";
  cfg.command_timeout = cafes::test::scaled(cfg.command_timeout);
  node n{cfg};
  host_options o;
  o.partitions = parts;
  o.journal = j;
  o.snapshots = snaps;
  o.snapshot_every = 7;
  REQUIRE(n.host<account>(o));
  REQUIRE(n.host<transfer>());
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));

  // The clients tally each error by what it says: a refusal before writing keeps its cause
  // (the injected timeout); only an unknown outcome is persist_failed. Anything else is
  // collected and checked on the main thread.
  std::mutex mtx;
  std::uint64_t refused = 0, unknown = 0;
  std::vector<cafes::error> unexpected;
  auto tally = [&](const cafes::error& e) {
    std::lock_guard guard{mtx};
    if (e == errc::timeout)
      ++refused;
    else if (e == actor_errc::persist_failed)
      ++unknown;
    else
      unexpected.push_back(e);
  };
  constexpr int accounts = 12;
  for (int a = 0; a < accounts; ++a) {
    auto id = "acc-" + std::to_string(a);
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto r = n.ask<account>(id, open{"o", 0}, id + ":open");
      if (r || r.error() == bank_errc::already_open) // already_open: the failed attempt had landed
        break;
      tally(r.error());
    }
  }
  std::map<std::string, std::int64_t> acked; // per account: acknowledged deposits
  std::atomic<int> unresolved{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c)
    clients.emplace_back([&, c] {
      for (int d = c; d < 1200; d += 6) {
        auto id = "acc-" + std::to_string(d % accounts);
        auto ref = "d" + std::to_string(d);
        bool ok = false;
        for (int attempt = 0; attempt < 50 && !ok; ++attempt) {
          auto r = n.ask<account>(id, deposit{10, ref}, ref);
          if (r)
            ok = true;
          else
            tally(r.error());
        }
        if (!ok) {
          ++unresolved;
          continue;
        }
        std::lock_guard guard{mtx};
        acked[id] += 10;
      }
    });
  for (auto& t : clients)
    t.join();
  for (auto& e : unexpected)
    FAIL_CHECK("unexpected error " << e.to_string());
  REQUIRE(unresolved == 0);
  // Each command is one event, and an account has one persist in flight at a time: every
  // event of a failed append is one client's error, with the cause its outcome calls for.
  CHECK(refused > 0); // the faults really hit commands, of both kinds
  CHECK(unknown > 0);
  CHECK(refused == j->events_refused);
  CHECK(unknown == j->events_unknown);
  CHECK(n.stats("account")->persist_failures > 0);

  // Every acknowledged deposit is in the balance once, and the journal holds each ref once.
  for (auto& [id, sum] : acked)
    CHECK(n.ask<account>(id, get_balance{}).value() == sum);
  std::map<std::string, int> refs;
  for (std::int32_t p = 0; p < parts; ++p)
    for (auto& e : cafes::test::read_all(*j, partition_id{p}, offset{0}, 500))
      if (e.type == "account.deposited")
        ++refs[e.command_id];
  CHECK(refs.size() == 1200);
  for (auto& [ref, count] : refs) {
    INFO(ref);
    REQUIRE(count == 1);
  }

  // A fresh node on the same storage recovers the same balances (no sequence errors).
  n.stop();
  j->fault = nullptr;
  node n2{cfg};
  REQUIRE(n2.host<account>(o));
  REQUIRE(n2.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  CHECK(n2.stats("account")->sequence_errors == 0);
  for (auto& [id, sum] : acked)
    CHECK(n2.ask<account>(id, get_balance{}).value() == sum);
}
