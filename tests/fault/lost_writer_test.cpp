// On the real broker: a transactional partition whose producer fails is lost until it is
// opened again (its producer is never aborted or replaced in place), and a node takes such a
// partition over again, recovering it, and serves on without losing or repeating anything.
#include <chrono>
#include <map>
#include <thread>

#include <catch2/catch.hpp>

#include "account.hpp"
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

} // namespace

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
  const auto ns = unique_ns("lost-node");
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
  const auto deadline = std::chrono::steady_clock::now() + scaled(std::chrono::milliseconds{60'000});
  expected<std::int64_t> served = failed.error();
  while (!served && std::chrono::steady_clock::now() < deadline) {
    INFO(served.error().to_string());
    REQUIRE((served.error() == actor_errc::not_owner || served.error() == errc::fatal));
    std::this_thread::sleep_for(std::chrono::milliseconds{20}); // polls the node while it takes over
    served = n.ask<bank::account>("a", bank::deposit{5, "d2"}); // the same reference: applied once
  }
  REQUIRE(served);
  CHECK(*served == 15);
  CHECK(n.stats("account")->retakes == 1);
  CHECK(n.stats("account")->partitions_owned == 1);
  CHECK(n.ask<bank::account>("a", bank::deposit{1, "d3"}).value() == 16);
  n.stop();
  CHECK(seqs(*j)["a"] == std::vector<std::uint64_t>{1, 2, 3, 4});
}
