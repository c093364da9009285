// Fault injection on the embedded cluster: produce errors and brokers going down.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>

#include <catch2/catch.hpp>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "journal_contract.hpp"
#include "cafes/persistence/logger.hpp"
#include "kafka_fixture.hpp"

using namespace cafes;
using namespace cafes::test;

namespace {

/// Reads every event of the journal and returns how often each (id, seq) occurs.
std::map<std::pair<std::string, std::uint64_t>, int> census(journal& j) {
  std::map<std::pair<std::string, std::uint64_t>, int> seen;
  for (std::int32_t p = 0; p < j.partitions(); ++p)
    for (auto& e : read_all(j, partition_id{p}, offset{0}, 500))
      ++seen[{e.id.str(), e.seq.value()}];
  return seen;
}

std::vector<event_envelope> batch_of(int aggregates, int per, const std::string& prefix, std::uint64_t first = 1) {
  std::vector<event_envelope> b;
  for (int s = 0; s < per; ++s)
    for (int a = 0; a < aggregates; ++a)
      b.push_back(make_event(prefix + std::to_string(a), first + static_cast<std::uint64_t>(s)));
  return b;
}

} // namespace

namespace {

/// A one-broker mock cluster owned by the test, so that it can count the injected errors that
/// are left (cafes's embedded_cluster keeps its handle private).
struct raw_mock {
  rd_kafka_t* host = nullptr;
  rd_kafka_mock_cluster_t* mc = nullptr;

  raw_mock() {
    char err[256];
    auto* conf = rd_kafka_conf_new();
    route_kafka_logs(conf);
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (host)
      mc = rd_kafka_mock_cluster_new(host, 1);
  }
  ~raw_mock() {
    if (mc)
      rd_kafka_mock_cluster_destroy(mc);
    if (host)
      rd_kafka_destroy(host);
  }
  raw_mock(const raw_mock&) = delete;
  raw_mock& operator=(const raw_mock&) = delete;

  /// Returns how many injected Produce errors broker 1 has not returned yet.
  std::size_t produce_errors_left() const {
    std::size_t n = 0;
    if (rd_kafka_mock_broker_error_stack_cnt(mc, 1, 0, &n))
      return SIZE_MAX;
    return n;
  }
};

} // namespace

// Errors that the 2.0.2 mock returns instead of appending: a retry of such a request cannot
// make a duplicate, so this test proves the retries and the read-back, not deduplication.
// Nothing written twice under unknown outcomes is proven on the real broker, which
// deduplicates by producer id and sequence (broker_restart_test.cpp); the mock does not
// (docs/testing.md).
TEST_CASE("injected produce errors are all retried away, and every acknowledged event is read back once",
          "[fault][embedded]") {
  raw_mock m;
  REQUIRE(m.mc);
  const std::string topic = unique_ns("produce-errors") + ".account.events";
  REQUIRE(rd_kafka_mock_topic_create(m.mc, topic.c_str(), 3, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
  kafka_config cfg;
  cfg.bootstrap = rd_kafka_mock_cluster_bootstraps(m.mc);
  cfg.delivery_timeout = scaled(std::chrono::milliseconds{30'000});
  cfg.extra["max.in.flight.requests.per.connection"] = "1"; // the mock answers a pipelined request late
  cfg.describe_topic_limits = false;                         // the bare mock has no admin API
  auto made = make_kafka_journal(cfg, topic, 3);
  INFO((made ? std::string{} : made.error().to_string()));
  REQUIRE(made);
  auto& j = *made;
  REQUIRE(j->append_sync(batch_of(3, 1, "warm-"))); // connected: the errors hit the load below
  constexpr std::int16_t produce_api = 0;
  auto inject = [&](std::vector<rd_kafka_resp_err_t> errs) {
    for (auto e : errs)
      REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(m.mc, 1, produce_api, 1, e, 0) ==
              RD_KAFKA_RESP_ERR_NO_ERROR);
  };
  inject({RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
          RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
          RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE});
  REQUIRE(m.produce_errors_left() == 5);
  std::size_t acked = 3;
  for (int round = 0; round < 5; ++round) {
    auto b = batch_of(20, 10, "acc-", static_cast<std::uint64_t>(round) * 10 + 1);
    auto r = j->append_sync(b);
    INFO((r ? std::string{} : r.error().to_string()));
    REQUIRE(r);
    acked += r->size();
    if (round == 2) { // more errors in the middle of the load
      CHECK(m.produce_errors_left() == 0);
      inject({RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT});
    }
  }
  CHECK(m.produce_errors_left() == 0); // every injected error was returned to the producer
  auto seen = census(*j);
  CHECK(seen.size() == acked);
  for (auto& [k, n] : seen) {
    INFO(k.first << "#" << k.second);
    REQUIRE(n == 1);
  }
  std::int64_t total = 0;
  for (std::int32_t p = 0; p < j->partitions(); ++p)
    total += j->end_offset(partition_id{p}).value().value();
  CHECK(total == static_cast<std::int64_t>(acked)); // nothing hidden beyond what was read
}

TEST_CASE("an append while the brokers are down times out within its bound and is never acknowledged",
          "[fault][embedded]") {
  auto mc = embedded_cluster::start(1).value();
  kafka_config cfg;
  cfg.embedded = mc;
  cfg.delivery_timeout = scaled(std::chrono::milliseconds{2'000});
  cfg.request_timeout = scaled(std::chrono::milliseconds{5'000});
  auto j = fresh_journal(cfg, "brokers-down", 3);
  REQUIRE(j->append_sync(batch_of(3, 1, "warm-")));

  mc->set_all_down(true);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = j->append_sync(batch_of(10, 2, "lost-"));
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r); // not a single position is handed out
  CHECK(r.error() == errc::timeout);
  // It fails at its delivery timeout (librdkafka checks timeouts about once a second). No tight
  // wall-clock bound here: only one far above any scheduling delay, to catch a hang.
  CHECK(took >= cfg.delivery_timeout);
  CHECK(took < cfg.delivery_timeout + scaled(std::chrono::milliseconds{60'000}));

  mc->set_all_down(false);
  // The journal serves again once the brokers are back. Each attempt uses its own ids, so
  // that a timed-out attempt that lands late cannot be mistaken for a duplicate.
  std::optional<std::string> served;
  const auto deadline = std::chrono::steady_clock::now() + scaled(std::chrono::milliseconds{30'000});
  for (int attempt = 0; !served && std::chrono::steady_clock::now() < deadline; ++attempt) {
    auto prefix = "after" + std::to_string(attempt) + "-";
    if (j->append_sync(batch_of(3, 1, prefix)))
      served = prefix;
  }
  REQUIRE(served);
  auto seen = census(*j);
  int after = 0;
  for (auto& [k, n] : seen) {
    CHECK(k.first.rfind("lost-", 0) != 0); // the failed batch never surfaced later
    CHECK(n == 1);
    after += k.first.rfind(*served, 0) == 0;
  }
  CHECK(after == 3);
}
