// The journal, snapshot store and provisioning against the real broker.
#include <catch2/catch.hpp>

#include "journal_contract.hpp"
#include "kafka_fixture.hpp"
#include "snapshot_contract.hpp"

using namespace cafes;
using namespace cafes::test;

TEST_CASE("broker: idempotent journal contract", "[journal][broker]") {
  auto j = fresh_journal(broker_config(journal_mode::idempotent), "idem-contract");
  check_journal_contract(*j, true);
}

TEST_CASE("broker: transactional journal contract", "[journal][broker]") {
  auto j = fresh_journal(broker_config(journal_mode::transactional), "tx-contract");
  check_journal_contract(*j, false);
}

TEST_CASE("broker: transactional journal refuses partitions it does not own", "[journal][broker][bad-input]") {
  auto cfg = broker_config(journal_mode::transactional);
  auto t = provision(cfg, "tx-owned", 4);
  auto j = make_kafka_journal(cfg, t.names.events, t.partitions, std::vector<partition_id>{partition_for("a", 4)});
  REQUIRE(j);
  REQUIRE((*j)->append_sync({make_event("a", 1)}));
  std::string other = "b";
  for (int i = 0; partition_for(other, 4) == partition_for("a", 4); ++i)
    other = "b" + std::to_string(i);
  auto r = (*j)->append_sync({make_event(other, 1)});
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::not_owned);
  CHECK(make_kafka_journal(cfg, t.names.events, 4, std::vector<partition_id>{partition_id{9}}).error() == errc::invalid_argument);

  // Opened, the partition takes writes; closed again, it refuses them.
  const auto po = partition_for(other, 4);
  REQUIRE((*j)->open(po));
  REQUIRE((*j)->open(po)); // opening an open partition does nothing
  REQUIRE((*j)->append_sync({make_event(other, 1)}));
  CHECK((*j)->barrier(po).value().value() == 2); // the event and its commit marker, waited for
  REQUIRE((*j)->close(po));
  auto closed = (*j)->append_sync({make_event(other, 2)});
  REQUIRE_FALSE(closed);
  CHECK(closed.error() == errc::not_owned);
  CHECK((*j)->open(partition_id{9}).error() == errc::invalid_argument);
  // The commit's markers reach the partition a moment after the commit: read_committed
  // readers see its end once they are there.
  CHECK(eventually([&] { return (*j)->end_offset(po).value().value() >= 2; }));
}

TEST_CASE("broker: snapshot store contract (latest wins on a compacted topic)", "[snapshot][broker]") {
  auto cfg = broker_config();
  auto t = provision(cfg, "snap");
  auto s = make_kafka_snapshot_store(cfg, t.names.snapshots, t.partitions);
  REQUIRE(s);
  check_snapshot_contract(**s);
}

TEST_CASE("broker: provisioning creates topics with the right settings and refuses mismatches", "[topics][broker]") {
  auto cfg = broker_config();
  auto ns = unique_ns("topics");
  REQUIRE(ensure_topics(cfg, aggregate_topics(ns, "account", 3, 1)));
  REQUIRE(ensure_topics(cfg, aggregate_topics(ns, "account", 3, 1))); // a second start checks and passes

  SECTION("a different partition count") {
    auto r = ensure_topics(cfg, aggregate_topics(ns, "account", 5, 1));
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::topic_mismatch);
    CHECK(r.error().message.find("partitions") != std::string::npos);
  }
  SECTION("a different cleanup policy") {
    auto specs = aggregate_topics(ns, "account", 3, 1);
    specs[0].cleanup_policy = "compact"; // the journal must never be compacted
    auto r = ensure_topics(cfg, specs);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::topic_mismatch);
    CHECK(r.error().message.find("cleanup.policy") != std::string::npos);
  }
  SECTION("a different replication factor") {
    auto r = ensure_topics(cfg, aggregate_topics(ns, "account", 3, 2));
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::topic_mismatch);
  }
}

TEST_CASE("broker: an unreachable bootstrap address fails with a typed error", "[topics][broker][bad-input]") {
  kafka_config cfg;
  cfg.bootstrap = "127.0.0.1:1"; // nothing listens on port 1
  cfg.request_timeout = scaled(std::chrono::milliseconds{1'500});
  auto r = ensure_topics(cfg, aggregate_topics("x", "account", 1, 1));
  REQUIRE_FALSE(r);
  CHECK((r.error() == errc::timeout || r.error() == errc::broker_unavailable));
}
