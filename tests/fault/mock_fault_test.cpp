// Fault injection on the embedded cluster: produce errors and brokers going down.
#include <chrono>
#include <map>
#include <optional>
#include <set>

#include <catch2/catch.hpp>
#include <librdkafka/rdkafka.h>

#include "journal_contract.hpp"
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

TEST_CASE("injected produce errors are retried and write nothing twice", "[fault][embedded]") {
  // A private cluster: errors pushed onto it must not leak into other tests.
  auto mc = embedded_cluster::start(1).value();
  kafka_config cfg;
  cfg.embedded = mc;
  cfg.delivery_timeout = scaled(std::chrono::milliseconds{30'000});
  auto j = fresh_journal(cfg, "produce-errors", 3);
  constexpr std::int16_t produce_api = 0;
  // Not RD_KAFKA_RESP_ERR__TRANSPORT: the 2.0.2 mock appends, then drops the connection, and
  // does not deduplicate the idempotent retry as a real broker does (docs/testing.md).
  mc->push_request_errors(produce_api, {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                                        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE});
  std::size_t acked = 0;
  for (int round = 0; round < 5; ++round) {
    auto b = batch_of(20, 10, "acc-", static_cast<std::uint64_t>(round) * 10 + 1);
    auto r = j->append_sync(b);
    INFO((r ? std::string{} : r.error().to_string()));
    REQUIRE(r);
    acked += r->size();
    if (round == 2) // more errors in the middle of the load
      mc->push_request_errors(produce_api, {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT});
  }
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
  // The bound is the delivery timeout; librdkafka checks timeouts about once a second.
  CHECK(took < cfg.delivery_timeout + scaled(std::chrono::milliseconds{3'000}));

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
