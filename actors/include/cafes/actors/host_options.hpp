// How a node hosts one aggregate type (node::host), and what it reports about its partitions.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/snapshot_store.hpp"

namespace cafes {

/// Bounds of the journal actor's adaptive group commit.
struct batching_config {
  std::size_t max_batch_events = 2000;         ///< events per journal append
  std::size_t max_batch_bytes = 4 << 20;       ///< payload bytes per journal append
  std::size_t max_pending_events = 200'000;    ///< backlog beyond which persist fails with overloaded
  /// Batches in flight at once. 1 is the classic group commit ("send when none is in flight"); more keep the
  /// producer's pipeline full. An aggregate never has more than one batch in flight.
  std::size_t max_in_flight = 4;
};

/// How to host one aggregate type (node::host). Every field has a default, so designated
/// initializers may name any subset. The node provisions the topics from partitions,
/// replication and min_insync_replicas and places standbys by standby_replicas; the other
/// fields reach the actors with the node's own settings added (internal to the runtime).
struct host_options {
  /// Partitions of the type's topics, and so of its aggregates.
  std::int32_t partitions = 12;
  /// Replication factor of the type's topics.
  std::int16_t replication = 1;
  std::int16_t min_insync_replicas = 0; ///< topic config min.insync.replicas; 0: the broker's default
  std::uint64_t snapshot_every = 100;          ///< snapshot an aggregate every N events (0: never)
  std::uint64_t max_replay = 10'000;           ///< bound on events replayed to recover a partition
  std::chrono::milliseconds idle_timeout{60'000}; ///< passivate aggregates idle this long
  std::size_t max_resident = 100'000;          ///< live aggregate actors per partition
  std::size_t max_stash = 1000;                ///< commands waiting per aggregate or recovering partition
  /// Bounds of the journal actor's group commit.
  batching_config batching{};
  /// Own every partition from the start (single-node mode). false: the node owns none until
  /// assigned (node::assign, or assign_atom to the owner actor: the seam the cluster's
  /// rebalances drive).
  bool assign_all = true;
  /// Hot standby replicas (docs/cluster.md): with routing on, this node keeps warm the
  /// partitions of this type it is among the next `standby_replicas` nodes in line for, by
  /// tailing their snapshots and journal, so that taking one over replays only the events it
  /// has not read yet. 0: none. It costs the memory of the partitions' states.
  std::int32_t standby_replicas = 0;
  /// Storage to use instead of the node's (tests inject counting or faulty journals here).
  std::shared_ptr<cafes::journal> journal{};
  /// Snapshot store to use instead of the node's (tests, as for `journal`).
  std::shared_ptr<cafes::snapshot_store> snapshots{};
};

/// One partition this node owns, as node::owned reports it.
struct owned_partition {
  /// The partition's number.
  std::int32_t partition = 0;
  std::uint64_t epoch = 0;    ///< 0 while it has not stored its epoch yet (recovering)
  bool ready = false;         ///< recovered and serving (or stopped on an error)
  /// Compares every field.
  friend bool operator==(const owned_partition&, const owned_partition&) = default;
};

/// Where an owned partition stands.
enum class partition_phase {
  recovering, ///< fencing the old owner, reading snapshots, replaying: commands wait
  ready,      ///< serving
  failed,     ///< stopped by corruption (a gap, a record that does not decode): commands fail
  releasing,  ///< being handed off: commands get not_owner, the partition drains
};

/// Returns "recovering", "ready", "failed" or "releasing".
std::string_view to_string(partition_phase p) noexcept;

/// One partition this node owns, in detail, as node::partitions reports it (the bank's /stats).
struct partition_detail {
  std::int32_t partition = 0;      ///< the partition's number
  std::uint64_t epoch = 0;         ///< its ownership epoch; 0 while recovering
  partition_phase phase = partition_phase::recovering; ///< where it stands
  std::int64_t checkpoint = 0;     ///< the stored checkpoint: recovery replays from this offset
  std::int64_t end = 0;            ///< one past the last journal offset the partition has seen
  std::uint64_t resident = 0;      ///< live aggregate actors
  std::uint64_t cached = 0;        ///< passivated aggregates whose state it keeps in memory
  std::uint64_t stopped = 0;       ///< aggregates stopped until fixed (apply threw on a replayed event)
};

} // namespace cafes
