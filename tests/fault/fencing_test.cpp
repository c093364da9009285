// Zombie fencing on the real broker: a new owner's init_transactions fences the old owner.
#include <atomic>
#include <optional>
#include <set>

#include <catch2/catch.hpp>

#include "journal_contract.hpp"
#include "kafka_fixture.hpp"

using namespace cafes;
using namespace cafes::test;

namespace {

/// An event written by `writer` (ce_cafesnode), so that a census can tell the writers apart.
event_envelope by(const std::string& writer, const std::string& id, std::uint64_t seq, std::int64_t amount = 1) {
  auto e = make_event(id, seq, amount);
  e.writer_node = writer;
  return e;
}

/// One partition read from offset 0 until the reader says it reached the end.
struct partition_census {
  std::vector<event_envelope> events;
  offset next{0}; ///< where the read stopped
};

partition_census read_partition(journal& j, partition_id p) {
  partition_census out;
  for (int guard = 0; guard < 10000; ++guard) {
    auto c = j.read(p, out.next, 100);
    REQUIRE(c);
    out.events.insert(out.events.end(), c->events.begin(), c->events.end());
    out.next = c->next;
    if (c->end)
      return out;
  }
  FAIL("read did not reach the end");
  return out;
}

} // namespace

TEST_CASE("broker: a second transactional owner fences the first, whose open transaction never becomes visible",
          "[fault][fencing][broker]") {
  auto cfg = broker_config(journal_mode::transactional);
  auto t = provision(cfg, "fencing", 2);
  const std::string topic = t.names.events;
  const auto parts = t.partitions;

  // The zombie-to-be: once armed, a new owner appears between its produce and its commit. The
  // hook runs on the journal's worker thread: it only keeps the outcome, the test checks it.
  // The new owner appears only once the open transaction's records are in the log (a
  // read_uncommitted reader's end offsets moved past them): librdkafka sends produced records
  // on its own schedule, and a record fenced before it left would prove nothing.
  std::optional<expected<std::unique_ptr<journal>>> successor_made;
  std::atomic<bool> armed{false};
  auto raw = make_kafka_journal(broker_config(journal_mode::idempotent), topic, parts);
  REQUIRE(raw);
  std::vector<std::int64_t> ends_before(static_cast<std::size_t>(parts), 0);
  bool in_log = false;
  auto zombie_cfg = cfg;
  zombie_cfg.on_fault = [&](std::string_view point, std::int32_t) {
    if (point != "journal.before_commit" || !armed.exchange(false))
      return;
    in_log = eventually([&] {
      for (std::int32_t p = 0; p < parts; ++p) {
        auto end = (*raw)->end_offset(partition_id{p});
        if (!end || end->value() <= ends_before[static_cast<std::size_t>(p)])
          return false;
      }
      return true;
    });
    successor_made = make_kafka_journal(cfg, topic, parts); // same transactional.ids
  };
  auto zombie = make_kafka_journal(zombie_cfg, topic, parts);
  REQUIRE(zombie);

  REQUIRE((*zombie)->append_sync({by("zombie", "acc-1", 1), by("zombie", "acc-2", 1)}));
  // A commit returns before its markers land: the end offsets count the first transaction only
  // once its marker is there (its record and its marker: 2 offsets per partition), or the
  // marker's late arrival would pass for the open transaction's records below.
  for (std::int32_t p = 0; p < parts; ++p) {
    REQUIRE(eventually([&] { return (*raw)->end_offset(partition_id{p}).value_or(offset{0}).value() >= 2; }));
    ends_before[static_cast<std::size_t>(p)] = (*raw)->end_offset(partition_id{p}).value().value();
  }
  armed = true;
  auto open_txn = (*zombie)->append_sync({by("zombie-fenced", "acc-1", 2), by("zombie-fenced", "acc-2", 2)});
  REQUIRE_FALSE(open_txn);
  CHECK(open_txn.error() == errc::fenced);
  REQUIRE(successor_made);
  REQUIRE(*successor_made);
  CHECK(in_log); // the open transaction's records reached both partitions before the fencing
  auto& successor = **successor_made;
  auto later = (*zombie)->append_sync({by("zombie-fenced", "acc-1", 3)});
  REQUIRE_FALSE(later);
  CHECK(later.error() == errc::fenced); // the fenced journal stays fenced

  REQUIRE(successor->append_sync({by("successor", "acc-1", 2, 100), by("successor", "acc-2", 2, 100)}));

  // The census. A read_uncommitted reader (an idempotent journal) sees every record in the log:
  // the fenced transaction's records are there, so they were produced, then aborted. A
  // read_committed reader, reading up to the end offsets, sees the first owner's committed
  // events and the successor's, and nothing the fenced writer wrote.
  std::multiset<std::pair<std::string, std::uint64_t>> committed, aborted;
  for (std::int32_t p = 0; p < parts; ++p) {
    const auto end = successor->end_offset(partition_id{p});
    REQUIRE(end);
    auto seen = read_partition(*successor, partition_id{p});
    INFO("partition " << p << " end offset " << end->value() << ", read up to " << seen.next.value());
    CHECK(seen.next.value() >= end->value()); // the read covered everything up to the end offset
    for (auto& e : seen.events) {
      CHECK(e.writer_node != "zombie-fenced");
      committed.emplace(e.id.str(), e.seq.value());
    }
    for (auto& e : read_partition(**raw, partition_id{p}).events)
      if (e.writer_node == "zombie-fenced")
        aborted.emplace(e.id.str(), e.seq.value());
  }
  CHECK(committed == std::multiset<std::pair<std::string, std::uint64_t>>{
                       {"acc-1", 1}, {"acc-2", 1}, {"acc-1", 2}, {"acc-2", 2}});
  CHECK(aborted.count({"acc-1", 2}) == 1); // produced once each, never committed
  CHECK(aborted.count({"acc-2", 2}) == 1);
}

TEST_CASE("broker: a batch whose partitions fare differently reports each partition's own outcome",
          "[fault][fencing][broker]") {
  // Fails on the code before per-event outcomes: the batch failed as a whole, so the
  // request of the partition that committed was failed although its events are durable.
  auto cfg = broker_config(journal_mode::transactional);
  auto t = provision(cfg, "partial", 2);
  std::string on0, on1; // one aggregate id per partition
  for (int i = 0; on0.empty() || on1.empty(); ++i) {
    auto id = "acc-" + std::to_string(i);
    (partition_for(id, 2).value() == 0 ? on0 : on1) = id;
  }
  // Partition 1 gets a new owner between the produce and its commit; partition 0 commits
  // first (the journal commits its partitions in order).
  std::optional<expected<std::unique_ptr<journal>>> successor;
  auto zombie_cfg = cfg;
  zombie_cfg.on_fault = [&](std::string_view point, std::int32_t p) {
    if (point == "journal.before_commit" && p == 1 && !successor)
      successor = make_kafka_journal(cfg, t.names.events, 2, std::vector<partition_id>{partition_id{1}});
  };
  auto zombie = make_kafka_journal(zombie_cfg, t.names.events, 2);
  REQUIRE(zombie);
  auto r = append_async(**zombie, {by("zombie", on0, 1), by("zombie", on1, 1)}).get();
  REQUIRE(successor);
  REQUIRE(*successor);
  REQUIRE(r.err);                                             // something failed
  CHECK(r.outcome(0) == event_outcome::durable);              // partition 0 committed
  CHECK(r.outcome(1) != event_outcome::durable);              // partition 1 was fenced
  CHECK(r.positions[0].partition == partition_id{0});
  CHECK(r.positions[0].off.value() >= 0);
  // A read_committed reader sees exactly that.
  CHECK(read_partition(**zombie, partition_id{0}).events.size() == 1);
  CHECK(read_partition(**zombie, partition_id{1}).events.empty());
}
