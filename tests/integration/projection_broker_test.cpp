// Projections on the real broker: exactly once across instances and hand-overs, and topics
// that do not exist (the embedded cluster creates any topic it is asked about).
#include <catch2/catch.hpp>

#include "projection_model.hpp"

using namespace cafes;
using namespace cafes::test;

TEST_CASE("an exactly-once projection writes each event once while two instances share and hand over partitions",
          "[projection][broker]") {
  auto cfg = broker_config();
  auto t = provision(cfg, "proj-eos");
  auto ns = ns_of(t);
  auto out_topic = ns + ".copies";
  REQUIRE(ensure_topics(cfg, {{out_topic, t.partitions, 1, "delete", {}}}));
  auto j = make_kafka_journal(cfg, t.names.events, t.partitions).value();
  auto transform = [&](const projected_event& e, projection_output& out) -> expected<void> {
    out.send(out_topic, e.topic + "/" + std::to_string(e.partition.value()) + "@" + std::to_string(e.off.value()),
             e.envelope.id.str());
    return {};
  };
  auto start = [&](std::string instance) {
    auto o = options(ns, "copier");
    o.instance = std::move(instance);
    o.outputs = {out_topic};
    auto p = projection::exactly_once(cfg, o, transform);
    INFO((p ? "" : p.error().to_string()));
    REQUIRE(p);
    return std::move(*p);
  };
  REQUIRE(j->append_sync(bank_events(6, 4)));
  auto a = start("a");
  REQUIRE(a->wait_caught_up(scaled(caught_up)));
  auto b = start("b");
  REQUIRE(j->append_sync(bank_events(6, 3, 6, "2")));
  REQUIRE(eventually([&] { return b->stats().rebalances > 0 && !b->lag().empty(); }, caught_up));
  REQUIRE(a->wait_caught_up(scaled(caught_up)));
  REQUIRE(b->wait_caught_up(scaled(caught_up)));
  a.reset(); // hands its partitions over to b
  REQUIRE(j->append_sync(bank_events(6, 2, 9, "3")));
  REQUIRE(eventually([&] { return b->lag().size() == static_cast<std::size_t>(t.partitions); }, caught_up));
  REQUIRE(b->wait_caught_up(scaled(caught_up)));

  auto copies = read_topic(cfg, out_topic, t.partitions);
  std::map<std::string, int> seen;
  for (auto& r : copies)
    ++seen[r.key];
  CHECK(copies.size() == 6 * 5 + 6 * 3 + 6 * 2);
  CHECK(seen.size() == copies.size());
}

TEST_CASE("projections refuse topics that do not exist", "[projection][broker][bad-input]") {
  auto cfg = broker_config();
  auto store = std::make_shared<memory_store>();
  auto o = options(unique_ns("nowhere"), "x");
  auto missing = projection::into_store(cfg, o, store);
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == errc::topic_missing);
  CHECK(missing.error().message.find(".account.events") != std::string::npos);
  CHECK(start_state_topic<bank::account>(cfg, unique_ns("nowhere")).error() == errc::topic_missing);
  CHECK(kv_table::open(cfg, unique_ns("nowhere") + ".table", scaled(caught_up)).error() == errc::topic_missing);
}
