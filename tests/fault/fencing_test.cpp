// Zombie fencing on the real broker: a new owner's init_transactions fences the old owner.
#include <atomic>
#include <set>

#include <catch2/catch.hpp>

#include "journal_contract.hpp"
#include "kafka_fixture.hpp"

using namespace cafes;
using namespace cafes::test;

TEST_CASE("broker: a second transactional owner fences the first, whose open transaction never becomes visible",
          "[fault][fencing][broker]") {
  auto cfg = broker_config(journal_mode::transactional);
  auto t = provision(cfg, "fencing", 2);
  const std::string topic = t.names.events;
  const auto parts = t.partitions;

  // The zombie-to-be: once armed, a new owner appears between its produce and its commit.
  std::unique_ptr<journal> successor;
  std::atomic<bool> armed{false};
  auto zombie_cfg = cfg;
  zombie_cfg.on_fault = [&](std::string_view point, std::int32_t) {
    if (point == "journal.before_commit" && armed.exchange(false)) {
      auto j = make_kafka_journal(cfg, topic, parts); // same transactional.ids
      REQUIRE(j);
      successor = std::move(*j);
    }
  };
  auto zombie = make_kafka_journal(zombie_cfg, topic, parts);
  REQUIRE(zombie);

  REQUIRE((*zombie)->append_sync({make_event("acc-1", 1), make_event("acc-2", 1)}));
  armed = true;
  auto open_txn = (*zombie)->append_sync({make_event("acc-1", 2), make_event("acc-2", 2)});
  REQUIRE_FALSE(open_txn);
  CHECK(open_txn.error() == errc::fenced);
  REQUIRE(successor);
  auto later = (*zombie)->append_sync({make_event("acc-1", 3)});
  REQUIRE_FALSE(later);
  CHECK(later.error() == errc::fenced); // the fenced journal stays fenced

  REQUIRE(successor->append_sync({make_event("acc-1", 2, 100), make_event("acc-2", 2, 100)}));

  // A read_committed reader sees the first owner's committed events and the successor's, and
  // nothing of the fenced transaction.
  std::set<std::pair<std::string, std::uint64_t>> seen;
  std::set<std::string> writers;
  for (std::int32_t p = 0; p < parts; ++p)
    for (auto& e : read_all(*successor, partition_id{p}, offset{0}, 100)) {
      CHECK(seen.emplace(e.id.str(), e.seq.value()).second);
      if (e.seq == seq_nr{2})
        CHECK(e.payload == make_event(e.id.str(), 2, 100).payload); // the successor's version
    }
  CHECK(seen == std::set<std::pair<std::string, std::uint64_t>>{{"acc-1", 1}, {"acc-2", 1}, {"acc-1", 2}, {"acc-2", 2}});
}
