// The Kafka journal, snapshot store and provisioning on the embedded (mock) cluster.
#include <catch2/catch.hpp>

#include "journal_contract.hpp"
#include "kafka_fixture.hpp"
#include "snapshot_contract.hpp"

using namespace cafes;
using namespace cafes::test;

TEST_CASE("embedded cluster: idempotent journal contract", "[journal][embedded]") {
  auto j = fresh_journal(embedded_config(), "emb-contract");
  check_journal_contract(*j, true);
}

TEST_CASE("embedded cluster: snapshot store contract", "[snapshot][embedded]") {
  auto cfg = embedded_config();
  auto t = provision(cfg, "emb-snap");
  auto s = make_kafka_snapshot_store(cfg, t.names.snapshots, t.partitions);
  REQUIRE(s);
  check_snapshot_contract(**s);
}

TEST_CASE("embedded cluster: provisioning creates topics and refuses mismatches", "[topics][embedded]") {
  auto cfg = embedded_config();
  auto ns = unique_ns("emb-topics");
  REQUIRE(ensure_topics(cfg, aggregate_topics(ns, "account", 6, 1)));
  REQUIRE(ensure_topics(cfg, aggregate_topics(ns, "account", 6, 1))); // idempotent
  auto more = ensure_topics(cfg, aggregate_topics(ns, "account", 8, 1));
  REQUIRE_FALSE(more);
  CHECK(more.error() == errc::topic_mismatch);
  CHECK(more.error().message.find(ns + ".account.events") != std::string::npos);
  auto specs = aggregate_topics(ns, "account", 6, 1);
  specs[1].cleanup_policy = "delete"; // snapshots must be compacted
  auto policy = ensure_topics(cfg, specs);
  REQUIRE_FALSE(policy);
  CHECK(policy.error() == errc::topic_mismatch);
  CHECK(policy.error().message.find("cleanup.policy") != std::string::npos);
}

TEST_CASE("provisioning refuses bad specs before talking to Kafka", "[topics][bad-input]") {
  auto cfg = embedded_config();
  CHECK(ensure_topics(cfg, {{"", 1, 1, "delete", {}}}).error() == errc::invalid_argument);
  CHECK(ensure_topics(cfg, {{"bad name", 1, 1, "delete", {}}}).error() == errc::invalid_argument);
  CHECK(ensure_topics(cfg, {{"t", 0, 1, "delete", {}}}).error() == errc::invalid_argument);
  CHECK(ensure_topics(cfg, {{"t", 1, 1, "shred", {}}}).error() == errc::invalid_argument);
  kafka_config none;
  CHECK(ensure_topics(none, {{"t", 1, 1, "delete", {}}}).error() == errc::invalid_argument);
}

TEST_CASE("journal modes parse and print", "[config][bad-input]") {
  CHECK(parse_journal_mode("idempotent").value() == journal_mode::idempotent);
  CHECK(parse_journal_mode("transactional").value() == journal_mode::transactional);
  CHECK(parse_journal_mode("exactly-once").error() == errc::invalid_argument);
  CHECK(to_string(journal_mode::transactional) == "transactional");
}
