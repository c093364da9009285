// Counters of the journal actor and the partition actors, readable from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace cafes {

/// A histogram of durations with fixed bucket bounds, updated with relaxed atomics (no lock):
/// what the node's metrics expose as a Prometheus histogram (`_seconds`).
struct duration_histogram {
  /// The upper bounds of the buckets, in seconds; one more bucket counts the rest (+Inf).
  static constexpr std::array<double, 16> bounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                 0.05,   0.1,     0.25,   0.5,   1,      2.5,   10,    60};
  /// Observations per bucket (not cumulative); the last one is beyond every bound.
  std::array<std::atomic<std::uint64_t>, bounds.size() + 1> buckets{};
  /// The sum of every observation, in nanoseconds.
  std::atomic<std::uint64_t> sum_ns{0};

  /// Counts one duration.
  void observe(std::chrono::nanoseconds d) noexcept {
    const auto ns = d.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(d.count());
    const double s = static_cast<double>(ns) / 1e9;
    std::size_t b = 0;
    while (b < bounds.size() && s > bounds[b])
      ++b;
    buckets[b].fetch_add(1, std::memory_order_relaxed);
    sum_ns.fetch_add(ns, std::memory_order_relaxed);
  }
  /// Returns the number of observations.
  std::uint64_t count() const noexcept {
    std::uint64_t n = 0;
    for (auto& b : buckets)
      n += b.load(std::memory_order_relaxed);
    return n;
  }
};

/// How a command asked through a node ended, as node::ask and its forms saw it.
enum class command_outcome {
  ok,         ///< answered with a reply
  rejected,   ///< refused by its handler (a business rule)
  overloaded, ///< refused at once: the journal's backlog was full
  timeout,    ///< no reply within its deadline (its outcome is unknown)
  failed,     ///< any other error (persistence, ownership, recovery, shutting down, ...)
};

/// The number of command_outcome values.
inline constexpr std::size_t command_outcomes = 5;

/// Counters of one aggregate type on one node (summed over its partitions).
struct host_stats {
  std::atomic<std::uint64_t> aggregates_recovered{0}; ///< aggregates with state after recovery
  std::atomic<std::uint64_t> events_replayed{0};      ///< journal events read during recovery
  std::atomic<std::uint64_t> snapshots_read{0};       ///< snapshots loaded during recovery
  std::atomic<std::uint64_t> corrupt_snapshots{0};    ///< snapshots that did not decode
  std::atomic<std::uint64_t> sequence_errors{0};      ///< gaps or repeats found
  /// Snapshots stored.
  std::atomic<std::uint64_t> snapshots_written{0};
  /// Partition checkpoints stored.
  std::atomic<std::uint64_t> checkpoints_written{0};
  /// Idle aggregate actors stopped (their state kept in memory or snapshotted).
  std::atomic<std::uint64_t> passivations{0};
  /// Aggregate actors started for a command.
  std::atomic<std::uint64_t> activations{0};
  std::atomic<std::uint64_t> resident{0};             ///< live aggregate actors now
  std::atomic<std::uint64_t> partitions_owned{0};    ///< assigned to this node now
  std::atomic<std::uint64_t> partitions_ready{0};    ///< owned, recovered and serving now
  std::atomic<std::uint64_t> partitions_failed{0};   ///< owned and stopped by corruption (a gap, a record that does not decode) now
  std::atomic<std::uint64_t> assignments{0};         ///< partitions taken over (epoch bumps)
  std::atomic<std::uint64_t> revocations{0};         ///< partitions released
  std::atomic<std::uint64_t> standbys{0};            ///< partitions this node keeps warm for a takeover now
  std::atomic<std::uint64_t> standby_events{0};      ///< journal events the standbys applied
  std::atomic<std::uint64_t> promotions{0};          ///< takeovers that started from a standby
  std::atomic<std::uint64_t> retakes{0};             ///< partitions taken over again after their writer was lost
                                                     ///< or their recovery failed on a Kafka error
  /// Commands received by the partitions.
  std::atomic<std::uint64_t> commands{0};
  /// Commands refused by their handler.
  std::atomic<std::uint64_t> rejections{0};
  /// Events made durable.
  std::atomic<std::uint64_t> events_persisted{0};
  /// Journal appends in which some events were not made durable.
  std::atomic<std::uint64_t> persist_failures{0};
  std::atomic<std::uint64_t> backlog{0};             ///< events waiting in the journal actor now
  std::atomic<std::uint64_t> overloads{0};            ///< persists refused: the journal backlog was full
  std::atomic<std::uint64_t> throttles{0};           ///< times a partition held commands for its checkpoint
  std::atomic<std::uint64_t> handler_failures{0};    ///< commands failed because handle or apply threw
  std::atomic<std::uint64_t> aggregate_restarts{0};  ///< apply threw on a durable state: rebuilt from the journal
  std::atomic<std::uint64_t> aggregates_stopped{0};  ///< stopped until fixed (apply threw on a replayed event, ...)
  std::atomic<std::uint64_t> batches{0};              ///< journal appends
  std::atomic<std::uint64_t> batch_events{0};         ///< events in all batches
  std::atomic<std::uint64_t> batch_max{0};            ///< largest batch
  /// Batch sizes: bucket i counts batches of [2^i, 2^(i+1)) events.
  std::array<std::atomic<std::uint64_t>, 16> batch_hist{};

  /// Snapshots that could not be stored.
  std::atomic<std::uint64_t> snapshot_failures{0};
  /// Commands asked through this node (node::ask and its forms), by command_outcome.
  std::array<std::atomic<std::uint64_t>, command_outcomes> asked{};
  /// Time from a command's ask to its reply, as the asker saw it.
  duration_histogram command_latency;
  /// Time from a journal append's send to its acknowledgement (or failure).
  duration_histogram persist_latency;
  /// Time a partition took to recover: from its assignment to serving (or failing).
  duration_histogram recovery_time;
  /// Time a hand-off took on this node: taking a partition over (its writer opened, fencing
  /// the old owner, and its epoch stored) or releasing one (drained, snapshotted, closed).
  duration_histogram handoff_time;

  /// Whether durations are measured (node_config::metrics); the counters always count.
  bool timed = true;
  /// Returns now, where a duration starts; a zero time point when durations are not measured,
  /// and then the verbs below observe nothing.
  std::chrono::steady_clock::time_point start() const noexcept {
    return timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  }
  /// Counts a command asked through the node that ended with `o`; it started at `since`.
  void command_done(command_outcome o, std::chrono::steady_clock::time_point since) noexcept {
    asked[static_cast<std::size_t>(o)].fetch_add(1, std::memory_order_relaxed);
    observe(command_latency, since);
  }
  /// Counts a journal append that finished (acknowledged or not); it was sent at `since`.
  void batch_done(std::chrono::steady_clock::time_point since) noexcept { observe(persist_latency, since); }
  /// Counts a partition that finished its recovery; it was assigned at `since`.
  void recovered(std::chrono::steady_clock::time_point since) noexcept { observe(recovery_time, since); }
  /// Counts a hand-off (a partition taken over or released) that started at `since`.
  void handed_off(std::chrono::steady_clock::time_point since) noexcept { observe(handoff_time, since); }

  /// Counts one journal append of `n` events (the journal actor calls it).
  void batch_sent(std::uint64_t n) noexcept {
    ++batches;
    batch_events += n;
    auto m = batch_max.load();
    while (n > m && !batch_max.compare_exchange_weak(m, n)) {
    }
    std::size_t b = 0;
    while ((std::uint64_t{2} << b) <= n && b + 1 < batch_hist.size())
      ++b;
    ++batch_hist[b];
  }

 private:
  static void observe(duration_histogram& h, std::chrono::steady_clock::time_point since) noexcept {
    if (since != std::chrono::steady_clock::time_point{})
      h.observe(std::chrono::steady_clock::now() - since);
  }
};

} // namespace cafes
