// On the real broker: a transactional partition whose producer fails is lost until it is
// opened again (its producer is never aborted or replaced in place), and a node takes such a
// partition over again, recovering it, and serves on without losing or repeating anything.
#include <chrono>
#include <map>
#include <thread>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/actors/host.hpp"
#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/persistence/topics.hpp"
#include "cafes/runtime/node.hpp"
#include "journal_contract.hpp"
#include "kafka_fixture.hpp"

using namespace cafes;
using namespace cafes::test;

namespace {

/// The seqs of each aggregate in partition 0, as a read_committed reader sees them.
std::map<std::string, std::vector<std::uint64_t>> seqs(journal& j) {
  std::map<std::string, std::vector<std::uint64_t>> out;
  for (auto& e : read_all(j, partition_id{0}, offset{0}, 500))
    out[e.id.str()].push_back(e.seq.value());
  return out;
}

/// One partition of the account type on the real broker, hosted by spawn_host as a node does,
/// with the cluster's question "does this node still hold the partition?" in the test's hands.
struct raw_host {
  caf::actor_system& sys;
  hosted h;

  raw_host(caf::actor_system& s, const kafka_config& kc, const topic_names& names,
           std::function<bool(std::int32_t)> still_owned)
    : sys(s) {
    host_config hc;
    hc.ops = make_ops<bank::account>();
    hc.journal = make_kafka_journal(kc, names.events, 1, std::vector<partition_id>{}).value();
    hc.snapshots = make_kafka_snapshot_store(kc, names.snapshots, 1, transactional_writer(hc.journal)).value();
    hc.snapshot_every = 0;
    hc.still_owned = std::move(still_owned);
    h = spawn_host(sys, std::move(hc));
  }
  ~raw_host() {
    caf::anon_send_exit(h.owner, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(h.journal_actor, caf::exit_reason::user_shutdown);
  }

  bool ready() const {
    return eventually([&] { return h.stats->partitions_ready == 1; }, std::chrono::seconds{60});
  }

  template <class C>
  expected<std::int64_t> ask(const std::string& id, C c) {
    caf::scoped_actor self{sys};
    expected<std::int64_t> out = cafes::error{errc::timeout, "no reply"};
    self->request(h.owner, scaled(std::chrono::seconds{30}), make_command<bank::account>(id, std::move(c)))
      .receive([&](command_reply& r) { out = reply_of<bank::account, C>(std::move(r)); },
               [&](caf::error& e) { out = cafes::error{errc::timeout, sys.render(e)}; });
    return out;
  }
};

} // namespace

TEST_CASE("broker: an owner fenced back by another writer takes its partition again once the group confirms it",
          "[fault][lost-writer][broker]") {
  // A resumed zombie can fence a partition's rightful owner (an epoch bump); the owner then
  // takes the partition again, but only while the group says it still holds it: a zombie
  // the group does not confirm takes nothing back.
  auto kc = broker_config(journal_mode::transactional);
  const auto names = provision(kc, "fenced-back", 1).names;
  std::atomic<bool> confirm{false};
  std::atomic<int> asked{0};
  node_config cfg;
  cfg.storage = storage_kind::memory; // the node lends its actor system
  cfg.log_level = "error";
  node n{cfg};
  raw_host a{n.system(), kc, names, [&](std::int32_t) {
               ++asked;
               return confirm.load();
             }};
  REQUIRE(a.ready());
  REQUIRE(a.ask("acc", bank::open{"ann", 0}));
  REQUIRE(a.ask("acc", bank::deposit{10, "d1"}).value() == 10);

  // Another writer opens the partition (fencing a), recovers it and writes.
  raw_host b{n.system(), kc, names, {}};
  REQUIRE(b.ready());
  REQUIRE(b.ask("acc", bank::deposit{5, "b1"}).value() == 15);

  // a's next write is fenced. While the group does not confirm it, a takes nothing back.
  auto fenced = a.ask("acc", bank::deposit{1, "d2"});
  REQUIRE_FALSE(fenced);
  CHECK(fenced.error() == actor_errc::not_owner);
  REQUIRE(eventually_every([&] { return asked >= 2; }, std::chrono::seconds{30}, std::chrono::milliseconds{20}));
  auto refused = a.ask("acc", bank::deposit{1, "d2"});
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == actor_errc::not_owner);
  CHECK(a.h.stats->retakes == 0);

  // Once it is confirmed, a takes the partition again (fencing b) and recovers b's write.
  confirm = true;
  expected<std::int64_t> served = refused.error();
  REQUIRE(eventually_every(
    [&] {
      served = a.ask("acc", bank::deposit{1, "d2"});
      return served.has_value();
    },
    std::chrono::seconds{60}, std::chrono::milliseconds{20}));
  CHECK(*served == 16);
  CHECK(a.h.stats->retakes == 1);
  auto late = b.ask("acc", bank::deposit{100, "b2"});
  REQUIRE_FALSE(late);
  CHECK(late.error() == actor_errc::not_owner);
  auto reader = make_kafka_journal(kc, names.events, 1, std::vector<partition_id>{}).value();
  CHECK(seqs(*reader)["acc"] == std::vector<std::uint64_t>{1, 2, 3, 4});
}

TEST_CASE("broker: a transactional partition whose producer failed is lost until it is opened again",
          "[fault][lost-writer][broker]") {
  auto cfg = broker_config(journal_mode::transactional);
  auto t = provision(cfg, "lost-journal", 1);
  std::shared_ptr<journal> j = make_kafka_journal(cfg, t.names.events, t.partitions).value();
  const partition_id p{0};
  REQUIRE(j->append_sync({make_event("acc-1", 1)}));
  CHECK_FALSE(j->lost(p));

  REQUIRE(inject_fatal_error(*j, "injected by the test"));
  auto failed = j->append_sync({make_event("acc-1", 2)});
  REQUIRE_FALSE(failed);
  INFO(failed.error().to_string());
  CHECK(j->lost(p));
  CHECK_FALSE(j->fenced(p)); // failed, not fenced by a newer owner
  CHECK_FALSE(j->healthy());
  // Not replaced in place: every later write fails too, at once.
  auto again = j->append_sync({make_event("acc-1", 2)});
  REQUIRE_FALSE(again);
  CHECK(j->lost(p));

  // Closing and opening it again (a takeover) gives it a new producer.
  REQUIRE(j->close(p));
  REQUIRE(j->open(p));
  CHECK_FALSE(j->lost(p));
  CHECK(j->healthy());
  REQUIRE(j->append_sync({make_event("acc-1", 2)}));
  CHECK(seqs(*j)["acc-1"] == std::vector<std::uint64_t>{1, 2});
}

TEST_CASE("broker: a node takes a partition whose producer failed over again, and serves on losing nothing",
          "[fault][lost-writer][broker]") {
  auto kc = broker_config(journal_mode::transactional);
  const auto ns = unique_ns("lost-node"); // the node's namespace
  const auto names = topic_names::of(ns, "account");
  REQUIRE(ensure_topics(kc, aggregate_topics(ns, "account", 1, 1)));
  // The node's journal, held here to inject the failure; each partition opens its writer.
  std::shared_ptr<journal> j = make_kafka_journal(kc, names.events, 1, std::vector<partition_id>{}).value();

  node_config cfg;
  cfg.bootstrap = bootstrap();
  cfg.ns = ns;
  cfg.mode = journal_mode::transactional;
  cfg.log_level = "error";
  cfg.command_timeout = scaled(std::chrono::milliseconds{30'000});
  host_options o;
  o.partitions = 1;
  o.journal = j;
  o.snapshot_every = 0;
  node n{cfg};
  REQUIRE(n.host<bank::account>(o));
  REQUIRE(n.wait_ready(scaled(std::chrono::milliseconds{60'000})));
  REQUIRE(n.ask<bank::account>("a", bank::open{"ann", 0}));
  REQUIRE(n.ask<bank::account>("a", bank::deposit{10, "d1"}).value() == 10);

  REQUIRE(inject_fatal_error(*j, "injected by the test"));
  // The command that meets the failed producer fails; the partition stops, and the node takes
  // it over again (a new producer, then a recovery). Meanwhile commands get not_owner.
  auto failed = n.ask<bank::account>("a", bank::deposit{5, "d2"});
  REQUIRE_FALSE(failed);
  expected<std::int64_t> served = failed.error();
  REQUIRE(eventually_every(
    [&] {
      INFO(served.error().to_string());
      REQUIRE((served.error() == actor_errc::not_owner || served.error() == errc::fatal));
      served = n.ask<bank::account>("a", bank::deposit{5, "d2"}); // the same reference: applied once
      return served.has_value();
    },
    std::chrono::seconds{60}, std::chrono::milliseconds{20}));
  CHECK(*served == 15);
  CHECK(n.stats("account")->retakes == 1);
  CHECK(n.stats("account")->partitions_owned == 1);
  CHECK(n.ask<bank::account>("a", bank::deposit{1, "d3"}).value() == 16);
  n.stop();
  CHECK(seqs(*j)["a"] == std::vector<std::uint64_t>{1, 2, 3, 4});
}
