// Spawns the actors that host one aggregate type on a node: journal actor, partition actors.
// Internal to cafes (not installed): the runtime and the project's own tests use it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "cafes/actors/host_options.hpp"
#include "cafes/actors/messages.hpp"
#include "cafes/actors/ops.hpp"
#include "cafes/actors/stats.hpp"
#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/snapshot_store.hpp"

namespace cafes {

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
  /// Called after a partition settled (it recovered, or stopped on an error) and after one
  /// stopped being owned: when host_stats' partitions_ready, partitions_failed or
  /// partitions_owned changed towards "every owned partition settled". It runs on an actor's
  /// thread and must not block (the node wakes what waits in wait_ready()).
  std::function<void()> on_settled;
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
