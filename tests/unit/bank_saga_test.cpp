// The transfer saga on the in-memory journal: legs applied once whatever the window, one
// driver per transfer.
#include <atomic>
#include <optional>
#include <thread>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/runtime/node.hpp"
#include "gated_journal.hpp"
#include "saga.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace bank;
using cafes::test::gated_journal;

namespace {

constexpr std::int32_t parts = 4;

node_config memory_config() {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "sg";
  c.log_level = "warn";
  c.threads = 2;
  return c;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + cafes::test::scaled(limit);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  return true;
}

} // namespace

TEST_CASE("a debit with an unknown outcome is applied once after more than 512 other operations",
          "[saga][recovery]") {
  node n{memory_config()};
  host_options o;
  o.partitions = parts;
  REQUIRE(n.host<account>(o));
  REQUIRE(n.host<transfer>(o));
  REQUIRE(n.wait_ready(std::chrono::seconds{10}));
  REQUIRE(n.ask<account>("a", open{"o", 0}));
  REQUIRE(n.ask<account>("b", open{"o", 0}));
  REQUIRE(n.ask<account>("a", deposit{1000, "a:init"}));
  REQUIRE(n.ask<transfer>("t1", start_transfer{"a", "b", 100}));
  // The debit went through, but its answer was lost: "debited" was never recorded.
  REQUIRE(n.ask<account>("a", apply_leg{"t1", leg_kind::debit, 100}, "t1:debit"));
  constexpr int others = 600; // more than any window of remembered references
  for (int i = 0; i < others; ++i)
    REQUIRE(n.ask<account>("a", deposit{1, "d" + std::to_string(i)}));

  auto resumed = resume_transfers(n);
  REQUIRE(resumed);
  CHECK(n.ask<transfer>("t1", get_transfer{}).value().status == transfer_status::completed);
  CHECK(n.ask<account>("a", get_balance{}).value() == 1000 - 100 + others); // debited once
  CHECK(n.ask<account>("b", get_balance{}).value() == 100);
}

TEST_CASE("two drivers of one transfer: the second joins the first and sends no leg of its own", "[saga]") {
  auto gate = std::make_shared<gated_journal>(make_memory_journal("sg.account.events", parts), "t1:debit");
  node n{memory_config()};
  host_options o;
  o.partitions = parts;
  o.journal = gate;
  o.snapshots = make_memory_snapshot_store(parts);
  REQUIRE(n.host<account>(o));
  host_options ot;
  ot.partitions = parts;
  REQUIRE(n.host<transfer>(ot));
  REQUIRE(n.wait_ready(std::chrono::seconds{10}));
  REQUIRE(n.ask<account>("a", open{"o", 0}));
  REQUIRE(n.ask<account>("b", open{"o", 0}));
  REQUIRE(n.ask<account>("a", deposit{100, "a:init"}));
  REQUIRE(n.ask<transfer>("t1", start_transfer{"a", "b", 10}));

  auto commands = n.stats("account");
  std::optional<expected<transfer_status>> r1, r2;
  std::thread d1{[&] { r1 = drive(n, "t1"); }};
  // The first driver's debit is applied and waits for the journal.
  REQUIRE(eventually([&] { return gate->holding(); }, std::chrono::seconds{10}));
  const auto at_hold = commands->commands.load();
  std::thread d2{[&] { r2 = drive(n, "t1"); }};
  // The second driver either sends its own debit (a second driver runs) or joins the first.
  REQUIRE(eventually(
    [&] { return commands->commands.load() > at_hold || transfer_manager_stats(n).value().joined > 0; },
    std::chrono::seconds{10}));
  const bool second_debit = commands->commands.load() > at_hold;
  gate->release();
  d1.join();
  d2.join();
  CHECK_FALSE(second_debit);
  REQUIRE(r1);
  REQUIRE(r2);
  REQUIRE(*r1);
  REQUIRE(*r2);
  CHECK(**r1 == transfer_status::completed);
  CHECK(**r2 == transfer_status::completed);
  CHECK(n.ask<account>("a", get_balance{}).value() == 90);
  CHECK(n.ask<account>("b", get_balance{}).value() == 10);
  auto stats = transfer_manager_stats(n);
  REQUIRE(stats);
  CHECK(stats->drives == 1);
  CHECK(stats->joined == 1);
}

TEST_CASE("drivers of the same transfers racing deposits: a rejected transfer never debits, a completed one once",
          "[saga]") {
  node n{memory_config()};
  host_options o;
  o.partitions = parts;
  REQUIRE(n.host<account>(o));
  REQUIRE(n.host<transfer>(o));
  REQUIRE(n.wait_ready(std::chrono::seconds{10}));
  constexpr int transfers = 200;
  const auto id = [](const char* what, int i) { return what + std::to_string(i); };
  for (int i = 0; i < transfers; ++i) {
    REQUIRE(n.ask<account>(id("s", i), open{"o", 0})); // empty: the debit races the deposit below
    REQUIRE(n.ask<account>(id("r", i), open{"o", 0}));
    REQUIRE(n.ask<transfer>(id("t", i), start_transfer{id("s", i), id("r", i), 10}));
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int d = 0; d < 3; ++d)
    threads.emplace_back([&] {
      for (int i = 0; i < transfers; ++i)
        if (!drive(n, id("t", i)))
          ++failures;
    });
  threads.emplace_back([&] {
    for (int i = 0; i < transfers; ++i)
      if (!n.ask<account>(id("s", i), deposit{10, "late"}))
        ++failures;
  });
  for (auto& t : threads)
    t.join();
  CHECK(failures == 0);
  REQUIRE(resume_transfers(n));
  int completed = 0;
  for (int i = 0; i < transfers; ++i) {
    INFO(id("t", i));
    auto s = n.ask<transfer>(id("t", i), get_transfer{});
    REQUIRE(s);
    REQUIRE((s->status == transfer_status::completed || s->status == transfer_status::rejected));
    const bool done = s->status == transfer_status::completed;
    completed += done;
    CHECK(n.ask<account>(id("s", i), get_balance{}).value() == (done ? 0 : 10));
    CHECK(n.ask<account>(id("r", i), get_balance{}).value() == (done ? 10 : 0));
  }
  INFO(completed << " of " << transfers << " completed");
  CHECK(transfer_manager_stats(n).value().running == 0);
}
