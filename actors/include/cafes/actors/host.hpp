// Spawns the actors that host one aggregate type on a node: journal actor, partition actors.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "cafes/actors/messages.hpp"
#include "cafes/actors/ops.hpp"
#include "cafes/actors/stats.hpp"
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

/// How one aggregate type is hosted.
struct host_config {
  std::shared_ptr<const aggregate_ops> ops;
  std::shared_ptr<cafes::journal> journal;
  std::shared_ptr<snapshot_store> snapshots;
  std::shared_ptr<host_stats> stats;
  std::string node_name = "cafes";
  std::uint64_t epoch = 0;
  codec_limits limits;
  batching_config batching;
  std::uint64_t snapshot_every = 100;          ///< snapshot an aggregate every N events (0: never)
  std::uint64_t max_replay = 10'000;           ///< bound on events replayed to recover a partition
  std::size_t replay_chunk = 4000;             ///< events per read during recovery (two in flight)
  std::chrono::milliseconds idle_timeout{60'000}; ///< passivate aggregates idle this long
  std::size_t max_resident = 100'000;          ///< live aggregate actors per partition
  std::size_t max_stash = 1000;                ///< commands waiting per aggregate or recovering partition
};

/// Spawns the journal actor for `j`: adaptive group commit across all aggregates of a node.
/// It sends a batch as soon as fewer than max_in_flight are in flight and collects while they
/// are, bounded by count and bytes. A backlog beyond max_pending_events answers persist_req
/// with overloaded.
caf::actor spawn_journal_actor(caf::actor_system& sys, std::shared_ptr<journal> j, batching_config cfg,
                               std::shared_ptr<host_stats> stats);

/// The actors hosting one aggregate type.
struct hosted {
  caf::actor journal_actor;
  std::vector<caf::actor> partitions; ///< index = partition number
  std::shared_ptr<host_stats> stats;
  std::shared_ptr<const aggregate_ops> ops;
};

/// Spawns the journal actor and one partition actor per partition; each partition recovers
/// at once and serves commands when ready (commands wait meanwhile).
hosted spawn_host(caf::actor_system& sys, host_config cfg);

/// Returns the partition actor of aggregate `id`.
const caf::actor& route(const hosted& h, std::string_view id);

} // namespace cafes
