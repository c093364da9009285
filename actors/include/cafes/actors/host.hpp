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

/// How to host one aggregate type (node::host). Every field has a default, so designated
/// initializers may name any subset. The node provisions the topics from partitions,
/// replication and min_insync_replicas and places standbys by standby_replicas; the other
/// fields reach the actors through host_config, which extends this.
struct host_options {
  std::int32_t partitions = 12;
  std::int16_t replication = 1;
  std::int16_t min_insync_replicas = 0; ///< topic config min.insync.replicas; 0: the broker's default
  std::uint64_t snapshot_every = 100;          ///< snapshot an aggregate every N events (0: never)
  std::uint64_t max_replay = 10'000;           ///< bound on events replayed to recover a partition
  std::chrono::milliseconds idle_timeout{60'000}; ///< passivate aggregates idle this long
  std::size_t max_resident = 100'000;          ///< live aggregate actors per partition
  std::size_t max_stash = 1000;                ///< commands waiting per aggregate or recovering partition
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
  std::shared_ptr<cafes::snapshot_store> snapshots{};
};

/// How spawn_host hosts one aggregate type: the host_options (their journal and snapshots are
/// the storage to host on, both required; the partition count is the journal's) plus what the
/// node adds.
struct host_config : host_options {
  explicit host_config(host_options o = {}) : host_options(std::move(o)) {}

  std::shared_ptr<const aggregate_ops> ops;
  std::shared_ptr<host_stats> stats;
  std::string node_name = "cafes";
  codec_limits limits;
  std::size_t replay_chunk = 4000;             ///< events per read during recovery (two in flight)
  /// How often a hot standby reads the journal of the partition it keeps warm.
  std::chrono::milliseconds standby_poll{200};
  /// The node's forwarder (routing between nodes), or null: a command for a partition this
  /// node does not own goes to it as forward_msg, unless it came from another node already.
  caf::actor forwarder;
  /// Cluster mode: asks the group whether this node still holds partition p (blocking, up to a
  /// round trip to the group coordinator). A partition that stopped on its own (its writer was
  /// lost) is taken over again only once this confirms it; without it (single-node mode),
  /// it is taken over again unless another writer fenced it.
  std::function<bool(std::int32_t)> still_owned;
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
  /// The owner of the type's partition table: it routes commands (command_msg) to the owned
  /// partitions and answers the others with not_owner; it takes assign_atom / revoke_atom
  /// with a partition number, owned_atom, and query_atom. Stopping it stops the partitions.
  caf::actor owner;
  std::vector<caf::actor> partitions; ///< the partition actors assigned at start (index = partition)
  std::int32_t partition_count = 0;
  std::shared_ptr<host_stats> stats;
  std::shared_ptr<const aggregate_ops> ops;
};

/// Spawns the journal actor and the owner actor. With cfg.assign_all, it assigns every
/// partition at once: each opens its writer, recovers, and serves commands when ready
/// (commands wait meanwhile).
hosted spawn_host(caf::actor_system& sys, host_config cfg);

} // namespace cafes
