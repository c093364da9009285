// The ownership seam: assign and revoke partitions of an aggregate type, on memory storage.
#include <future>
#include <map>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/runtime/node.hpp"
#include "gated_journal.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace bank;

namespace {

node_config memory_config() {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "own";
  c.log_level = "warn";
  c.threads = 2;
  c.command_timeout = cafes::test::scaled(c.command_timeout);
  return c;
}

/// Every event of partition p, read back from the journal.
std::vector<event_envelope> events_of(journal& j, std::int32_t p) {
  std::vector<event_envelope> out;
  offset from{0};
  for (;;) {
    auto c = j.read(partition_id{p}, from, 1000);
    REQUIRE(c);
    for (auto& e : c->events)
      out.push_back(std::move(e));
    if (c->end)
      return out;
    from = c->next;
  }
}

} // namespace

TEST_CASE("a revoked partition answers not_owner; taken over again it serves the same state under the next epoch",
          "[ownership]") {
  constexpr std::int32_t parts = 2;
  std::shared_ptr<journal> j = make_memory_journal("own.account.events", parts);
  std::shared_ptr<snapshot_store> s = make_memory_snapshot_store(parts);
  node n{memory_config()};
  host_options o;
  o.partitions = parts;
  o.journal = j;
  o.snapshots = s;
  o.snapshot_every = 0; // only the release snapshots: without them the checkpoint stays at 0
  REQUIRE(n.host<account>(o));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  REQUIRE(n.owned("account").value() ==
          std::vector<owned_partition>{{0, 1, true}, {1, 1, true}}); // each owner stored epoch 1

  std::map<std::string, std::int64_t> want;
  for (int a = 0; a < 12; ++a) {
    auto id = "acc-" + std::to_string(a);
    REQUIRE(n.ask<account>(id, open{"o", 0}));
    for (int d = 1; d <= 5; ++d)
      REQUIRE(n.ask<account>(id, deposit{d, "d" + std::to_string(d)}));
    want[id] = 15;
  }
  const auto p = partition_for("acc-0", parts).value();
  const auto other = 1 - p;
  std::string elsewhere; // an account of the other partition
  for (auto& [id, b] : want)
    if (partition_for(id, parts).value() == other)
      elsewhere = id;
  REQUIRE(!elsewhere.empty());

  REQUIRE(n.revoke("account", p));
  CHECK(n.owned("account").value() == std::vector<owned_partition>{{other, 1, true}});
  auto refused = n.ask<account>("acc-0", get_balance{});
  REQUIRE(!refused);
  CHECK(refused.error() == actor_errc::not_owner);
  CHECK(n.ask<account>(elsewhere, get_balance{}).value() == 15); // the other partition serves on
  CHECK(n.revoke("account", p)); // revoking what is not owned does nothing

  // The release snapshotted every aggregate and stored the checkpoint at the end.
  const auto end = j->end_offset(partition_id{p}).value();
  REQUIRE(end.value() > 0);
  CHECK(s->load_mark(partition_id{p}).value() == partition_mark{end, 1});
  for (auto& e : events_of(*j, p))
    CHECK(e.writer_epoch == 1);

  const auto replayed = n.stats("account")->events_replayed.load();
  REQUIRE(n.assign("account", p));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  CHECK(n.owned("account").value() == std::vector<owned_partition>{{0, p == 0 ? 2u : 1u, true},
                                                                    {1, p == 1 ? 2u : 1u, true}});
  CHECK(n.stats("account")->events_replayed.load() == replayed); // nothing to replay
  for (auto& [id, b] : want)
    CHECK(n.ask<account>(id, get_balance{}).value() == b);
  REQUIRE(n.ask<account>("acc-0", deposit{100, "after"}).value() == 115);
  auto evs = events_of(*j, p);
  REQUIRE(!evs.empty());
  CHECK(evs.back().id.str() == "acc-0");
  CHECK(evs.back().writer_epoch == 2);
  CHECK(s->load_mark(partition_id{p}).value()->epoch == 2);
  CHECK(n.stats("account")->assignments.load() == 3);
  CHECK(n.stats("account")->revocations.load() == 1);
}

TEST_CASE("bad assignments get typed errors", "[ownership]") {
  node n{memory_config()};
  host_options o;
  o.partitions = 2;
  o.assign_all = false;
  REQUIRE(n.host<account>(o));
  CHECK(n.owned("account").value().empty());
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10}))); // nothing to wait for
  auto r = n.ask<account>("a", open{"o", 0});
  REQUIRE(!r);
  CHECK(r.error() == actor_errc::not_owner);
  CHECK(n.assign("account", 2).error() == errc::invalid_argument);
  CHECK(n.assign("account", -1).error() == errc::invalid_argument);
  CHECK(n.revoke("account", 7).error() == errc::invalid_argument);
  CHECK(n.assign("nothing", 0).error() == actor_errc::unknown_aggregate_type);
  CHECK(n.owned("nothing").error() == actor_errc::unknown_aggregate_type);
  REQUIRE(n.assign("account", 0));
  REQUIRE(n.assign("account", 0)); // assigning an owned partition does nothing
  REQUIRE(n.assign("account", 1));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  CHECK(n.ask<account>("a", open{"o", 0}).value() == 0);
}

TEST_CASE("a revoke answers the persist in flight first and refuses the commands that wait", "[ownership]") {
  auto inner = std::shared_ptr<journal>{make_memory_journal("own.account.events", 1)};
  auto gated = std::make_shared<cafes::test::gated_journal>(inner, "held");
  std::shared_ptr<snapshot_store> s = make_memory_snapshot_store(1);
  node n{memory_config()};
  host_options o;
  o.partitions = 1;
  o.journal = gated;
  o.snapshots = s;
  o.snapshot_every = 0;
  REQUIRE(n.host<account>(o));
  REQUIRE(n.ask<account>("a", open{"o", 0}));
  auto held = n.ask_async<account>("a", deposit{10, "held"}, "held");
  REQUIRE(cafes::test::eventually([&] { return gated->holding(); }));
  auto waiting = n.ask_async<account>("a", deposit{1, "waits"}); // behind the held one

  auto revoked = std::async(std::launch::async, [&] { return n.revoke("account", 0); });
  auto w = waiting.get(); // refused when the release starts: it was never decided
  REQUIRE(!w);
  CHECK(w.error() == actor_errc::not_owner);
  CHECK(n.ask<account>("b", open{"o", 0}).error() == actor_errc::not_owner);
  // The release waits for the persist in flight: nothing is handed over while it may land.
  CHECK(revoked.wait_for(std::chrono::milliseconds{0}) == std::future_status::timeout);
  gated->release();
  CHECK(held.get().value() == 10);
  REQUIRE(revoked.get());
  CHECK(s->load_mark(partition_id{0}).value() == partition_mark{inner->end_offset(partition_id{0}).value(), 1});

  REQUIRE(n.assign("account", 0));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  CHECK(n.ask<account>("a", get_balance{}).value() == 10);
  CHECK(n.owned("account").value() == std::vector<owned_partition>{{0, 2, true}});
}

TEST_CASE("cluster mode refuses storage that cannot fence a node that lost its partitions", "[ownership][cluster]") {
  auto refused = [](node_config c, const std::string& says) {
    c.cluster = true;
    auto n = node::start(c);
    REQUIRE(!n);
    INFO(n.error().to_string());
    CHECK(n.error() == errc::invalid_argument);
    CHECK(n.error().to_string().find(says) != std::string::npos);
  };
  auto c = memory_config();
  SECTION("memory storage") { refused(c, "real Kafka broker"); }
  SECTION("the embedded mock cluster (no bootstrap)") {
    c.storage = storage_kind::kafka;
    c.mode = journal_mode::transactional;
    refused(c, "real Kafka broker");
  }
  SECTION("idempotent producers") {
    c.storage = storage_kind::kafka;
    c.bootstrap = "127.0.0.1:1"; // refused before any connection is tried
    c.mode = journal_mode::idempotent;
    refused(c, "--mode transactional");
  }
  SECTION("the command line says the same") {
    const char* argv[] = {"app", "--cluster", "--bootstrap", "127.0.0.1:1", "--session-timeout-ms", "500"};
    auto parsed = node_config::from_args(6, const_cast<char**>(argv));
    REQUIRE(!parsed);
    CHECK(parsed.error() == errc::invalid_argument);
    CHECK(parsed.error().to_string().find("session-timeout-ms") != std::string::npos);
  }
}
