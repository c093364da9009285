// The producer under faults on the embedded cluster: size limits that agree with the
// producer's, and a producer that fails fatally and is replaced.
#include <chrono>
#include <future>
#include <thread>

#include <catch2/catch.hpp>

#include "kafka_fixture.hpp"
#include "sized.hpp"

using namespace cafes;
using namespace cafes::test;

TEST_CASE("embedded: the event limit is the smallest of the codec's and the producer's", "[fault][limits][embedded]") {
  auto cfg = embedded_config();
  SECTION("librdkafka's default message.max.bytes (1000000)") {}
  SECTION("a smaller message.max.bytes") { cfg.extra["message.max.bytes"] = "300000"; }
  SECTION("a smaller codec limit") { cfg.limits.max_event_bytes = 200'000; }
  const std::size_t producer_max = cfg.extra.count("message.max.bytes") ? 300'000 : 1'000'000;
  const auto limit = std::min(cfg.limits.max_event_bytes, producer_max - record_framing_bytes);

  auto t = provision(cfg, "limits", 2);
  auto j = make_kafka_journal(cfg, t.names.events, t.partitions);
  REQUIRE(j);
  CHECK((*j)->limits().max_event_bytes == limit);

  // Exactly the limit is written; one byte more is refused before anything is written, by
  // the same check that the aggregate actor runs per event before batching.
  auto fits = event_of_size("acc-1", 1, limit, t.names.events);
  CHECK(check_event(fits, t.names.events, (*j)->limits()));
  auto ok = (*j)->append_sync({fits});
  INFO((ok ? std::string{} : ok.error().to_string()));
  REQUIRE(ok);
  auto over = event_of_size("acc-1", 2, limit + 1, t.names.events);
  auto checked = check_event(over, t.names.events, (*j)->limits());
  REQUIRE_FALSE(checked);
  CHECK(checked.error() == errc::event_too_large);
  auto refused = append_async(**j, {over}).get();
  CHECK(refused.outcome(0) == event_outcome::not_written);
  REQUIRE(refused.err);
  CHECK(*refused.err == errc::event_too_large);

  // Snapshots follow the same rule on their own topic.
  auto s = make_kafka_snapshot_store(cfg, t.names.snapshots, t.partitions);
  REQUIRE(s);
  CHECK((*s)->limits().max_event_bytes == limit);
  auto saved = (*s)->save_sync(snapshot_of_size("acc-1", limit));
  INFO((saved ? std::string{} : saved.error().to_string()));
  CHECK(saved);
  auto too_large = (*s)->save_sync(snapshot_of_size("acc-1", limit + 1));
  REQUIRE_FALSE(too_large);
  CHECK(too_large.error() == errc::state_too_large);
}

TEST_CASE("embedded: a fatal producer is replaced; what was in flight is unknown, later appends are durable",
          "[fault][fatal][embedded]") {
  auto mc = embedded_cluster::start(1).value();
  kafka_config cfg;
  cfg.embedded = mc;
  cfg.delivery_timeout = scaled(std::chrono::milliseconds{10'000});
  cfg.request_timeout = scaled(std::chrono::milliseconds{10'000});
  auto j = fresh_journal(cfg, "fatal", 2);
  REQUIRE(j->append_sync({make_event("acc-1", 1)}));
  CHECK(j->healthy());

  // A slow broker keeps the next append in flight while the producer fails.
  mc->set_rtt(-1, 1000);
  auto in_flight = append_async(*j, {make_event("acc-1", 2), make_event("acc-2", 1)});
  REQUIRE(inject_fatal_error(*j, "injected by the test"));
  auto r = in_flight.get();
  mc->set_rtt(-1, 0);
  CHECK(r.outcome(0) == event_outcome::unknown);
  CHECK(r.outcome(1) == event_outcome::unknown);
  REQUIRE(r.err);
  CHECK(*r.err == errc::fatal);

  // The replacement takes new appends.
  const auto deadline = std::chrono::steady_clock::now() + scaled(std::chrono::milliseconds{10'000});
  while (!j->healthy() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{5}); // polls the journal's status
  CHECK(j->healthy());
  auto later = j->append_sync({make_event("acc-3", 1)});
  INFO((later ? std::string{} : later.error().to_string()));
  CHECK(later);
}
