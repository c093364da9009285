// Counters of the journal actor and the partition actors, readable from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace cafes {

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

  /// Counts one journal append of `n` events (the journal actor calls it).
  void record_batch(std::uint64_t n) {
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
};

} // namespace cafes
