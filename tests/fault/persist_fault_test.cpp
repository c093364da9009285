// Persist failures injected mid-load: nothing acknowledged is lost, nothing is written twice.
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

  constexpr int accounts = 12;
  for (int a = 0; a < accounts; ++a) {
    auto id = "acc-" + std::to_string(a);
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto r = n.ask<account>(id, open{"o", 0}, id + ":open");
      if (r || r.error() == bank_errc::already_open)
        break;
    }
  }
  std::mutex mtx;
  std::map<std::string, std::int64_t> acked; // per account: acknowledged deposits
  std::atomic<int> errors{0}, unresolved{0};
  std::vector<cafes::error> unexpected; // collected by the clients, checked on the main thread
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
          else {
            ++errors;
            // persist_failed: the outcome was unknown; a refusal before writing keeps its cause
            // (the injected timeout) or is overloaded.
            if (!(r.error() == actor_errc::persist_failed || r.error() == actor_errc::overloaded ||
                  r.error() == errc::timeout)) {
              std::lock_guard guard{mtx};
              unexpected.push_back(r.error());
            }
          }
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
  for (auto& e : unexpected) // only persist_failed, overloaded or the injected refusal are expected
    FAIL_CHECK("unexpected error " << e.to_string());
  REQUIRE(unresolved == 0);
  CHECK(errors > 0);                 // the faults really hit commands
  CHECK(j->unknown_outcomes > 0);    // including writes reported as failed
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
