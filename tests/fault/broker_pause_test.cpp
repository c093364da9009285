// On the real broker: exact size limits, a transactional journal that closes in bounded time
// while the broker hangs (SIGSTOP), and fencing that reaches snapshots and checkpoints.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "kafka_fixture.hpp"
#include "sized.hpp"
#include "snapshot_contract.hpp"

using namespace cafes;
using namespace cafes::test;

namespace {

/// Returns the PID of node 1 of the test broker (env CAFES_BROKER_DIR, scripts/broker.sh).
pid_t broker_pid() {
  const char* dir = std::getenv("CAFES_BROKER_DIR");
  if (!dir)
    throw std::runtime_error("CAFES_BROKER_DIR is not set (scripts/test-all.sh sets it)");
  std::ifstream in{std::string{dir} + "/node-1/pid"};
  pid_t pid = 0;
  if (!(in >> pid) || pid <= 0)
    throw std::runtime_error(std::string{"no broker pid in "} + dir + "/node-1/pid");
  return pid;
}

/// Hangs the broker (SIGSTOP) on pause(); resumes it when destroyed, whatever happens.
class broker_pause {
 public:
  explicit broker_pause(pid_t pid) : pid_(pid) {}
  ~broker_pause() { resume(); }
  void pause() {
    if (::kill(pid_, SIGSTOP) == 0)
      paused_ = true;
  }
  void resume() {
    if (paused_.exchange(false))
      ::kill(pid_, SIGCONT);
  }
  bool paused() const { return paused_; }

 private:
  pid_t pid_;
  std::atomic<bool> paused_{false};
};


} // namespace

TEST_CASE("broker: an event of exactly the effective limit is written; one byte more is event_too_large",
          "[fault][limits][broker]") {
  auto cfg = broker_config();
  auto t = provision(cfg, "limits", 1);
  auto j = make_kafka_journal(cfg, t.names.events, t.partitions);
  REQUIRE(j);
  // The producer's message.max.bytes (1000000) is below the topic's max.message.bytes
  // (1048588 by default) and the codec's 1 MiB.
  const auto limit = (*j)->limits().max_event_bytes;
  CHECK(limit == 1'000'000 - record_framing_bytes);
  auto ok = (*j)->append_sync({event_of_size("acc-1", 1, limit, t.names.events)});
  INFO((ok ? std::string{} : ok.error().to_string()));
  REQUIRE(ok);
  auto over = (*j)->append_sync({event_of_size("acc-1", 2, limit + 1, t.names.events)});
  REQUIRE_FALSE(over);
  CHECK(over.error() == errc::event_too_large);

  // A topic whose max.message.bytes is smaller narrows the limit.
  auto ns = unique_ns("small-topic");
  auto specs = aggregate_topics(ns, "account", 1, 1);
  for (auto& s : specs)
    s.configs["max.message.bytes"] = "400000";
  REQUIRE(ensure_topics(cfg, specs));
  auto names = topic_names::of(ns, "account");
  auto small = make_kafka_journal(cfg, names.events, 1);
  REQUIRE(small);
  CHECK((*small)->limits().max_event_bytes == 400'000 - record_framing_bytes);
  auto fits = (*small)->append_sync({event_of_size("acc-1", 1, 400'000 - record_framing_bytes, names.events)});
  INFO((fits ? std::string{} : fits.error().to_string()));
  CHECK(fits);
  auto store = make_kafka_snapshot_store(cfg, names.snapshots, 1);
  REQUIRE(store);
  CHECK((*store)->limits().max_event_bytes == 400'000 - record_framing_bytes);
  CHECK((*store)->save_sync(snapshot_of_size("acc-1", 400'000 - record_framing_bytes)));
}

TEST_CASE("broker: a transactional journal closes within a bound while the broker hangs in its commit",
          "[fault][shutdown][broker]") {
  auto cfg = broker_config(journal_mode::transactional);
  cfg.delivery_timeout = scaled(std::chrono::milliseconds{3'000});
  cfg.request_timeout = scaled(std::chrono::milliseconds{3'000});
  auto t = provision(cfg, "stuck-commit", 1);
  broker_pause hang{broker_pid()};
  // The broker hangs once it holds the transaction's event (the high watermark counts
  // uncommitted records), so that only the commit itself waits on it.
  auto watcher = make_kafka_journal(broker_config(), t.names.events, t.partitions);
  REQUIRE(watcher);
  auto hung_cfg = cfg;
  hung_cfg.on_fault = [&](std::string_view point, std::int32_t p) {
    if (point != "journal.before_commit")
      return;
    const auto until = std::chrono::steady_clock::now() + scaled(std::chrono::milliseconds{10'000});
    while (std::chrono::steady_clock::now() < until) {
      auto end = (*watcher)->end_offset(partition_id{p});
      if (end && end->value() > 0)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds{2}); // polls the watermark
    }
    hang.pause();
  };
  auto j = make_kafka_journal(hung_cfg, t.names.events, t.partitions);
  REQUIRE(j);
  auto pending = append_async(**j, {make_event("acc-1", 1)});

  // Close the journal while its commit hangs. Normally that takes well under a second; the
  // bound (a commit call plus the delivery timeout, doubled) is far above that.
  const auto bound = 2 * (cfg.delivery_timeout + cfg.request_timeout);
  const auto deadline = std::chrono::steady_clock::now() + scaled(std::chrono::milliseconds{10'000});
  while (!hang.paused() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{2}); // polls the hook's flag
  REQUIRE(hang.paused());
  const auto start = std::chrono::steady_clock::now();
  auto closed = std::async(std::launch::async, [j = std::move(*j)]() mutable { j.reset(); });
  const bool in_time = closed.wait_for(bound) == std::future_status::ready;
  const auto took = std::chrono::steady_clock::now() - start;
  hang.resume(); // also lets a journal that did not give up finish
  closed.wait();
  CHECK(in_time);
  INFO("closing took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  REQUIRE(pending.wait_for(std::chrono::seconds{0}) == std::future_status::ready);
  // The commit gave up at its deadline (unknown: it may still land), or learnt that the
  // transaction must be aborted (not written); it never claims success.
  auto r = pending.get();
  CHECK(r.outcome(0) != event_outcome::durable);
  REQUIRE(r.err);
  INFO(r.err->to_string());
  CHECK((r.outcome(0) == event_outcome::unknown) == (*r.err == errc::timeout));
}

TEST_CASE("broker: a fenced zombie's snapshot and checkpoint writes fail and are invisible to read_committed readers",
          "[fault][fencing][broker]") {
  auto cfg = broker_config(journal_mode::transactional);
  auto t = provision(cfg, "fence-snapshots", 1);
  std::shared_ptr<journal> zombie = make_kafka_journal(cfg, t.names.events, t.partitions).value();
  auto zombie_store = make_kafka_snapshot_store(cfg, t.names.snapshots, t.partitions, transactional_writer(zombie));
  REQUIRE(zombie_store);
  REQUIRE(transactional_writer(zombie));
  CHECK_FALSE(zombie->lost(partition_id{0}));

  // Before fencing, the zombie's writes land.
  REQUIRE(zombie->append_sync({make_event("acc-1", 1)}));
  REQUIRE((*zombie_store)->save_sync(make_snapshot("acc-1", 1)));
  REQUIRE((*zombie_store)->save_checkpoint(partition_id{0}, offset{1}));

  // A successor takes the partition over (same transactional.id).
  std::shared_ptr<journal> successor = make_kafka_journal(cfg, t.names.events, t.partitions).value();

  // The zombie's next snapshot fails as fenced; after that, every write of the partition
  // fails at once, and the journal says the partition is fenced.
  auto late_snapshot = (*zombie_store)->save_sync(make_snapshot("acc-1", 2));
  REQUIRE_FALSE(late_snapshot);
  CHECK(late_snapshot.error() == errc::fenced);
  CHECK(zombie->lost(partition_id{0}));
  auto late_checkpoint = (*zombie_store)->save_checkpoint(partition_id{0}, offset{2});
  REQUIRE_FALSE(late_checkpoint);
  CHECK(late_checkpoint.error() == errc::fenced);
  auto late_event = zombie->append_sync({make_event("acc-1", 2)});
  REQUIRE_FALSE(late_event);
  CHECK(late_event.error() == errc::fenced);
  CHECK_FALSE(successor->lost(partition_id{0}));

  // A read_committed reader sees the zombie's writes from before the fencing only.
  auto reader = make_kafka_snapshot_store(cfg, t.names.snapshots, t.partitions, transactional_writer(successor));
  REQUIRE(reader);
  std::vector<snapshot> seen;
  REQUIRE((*reader)->scan(partition_id{0}, [&](snapshot s) { seen.push_back(std::move(s)); }));
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == make_snapshot("acc-1", 1));
  CHECK((*reader)->load_checkpoint(partition_id{0}).value() == std::optional<offset>{offset{1}});

  // The successor writes them.
  CHECK((*reader)->save_sync(make_snapshot("acc-1", 2)));
  CHECK((*reader)->save_checkpoint(partition_id{0}, offset{2}));
  CHECK((*reader)->load(aggregate_id::make("acc-1").value()).value() == std::optional<snapshot>{make_snapshot("acc-1", 2)});
}
