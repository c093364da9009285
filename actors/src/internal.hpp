// Private pieces shared by the aggregate, partition and I/O actors.
#pragma once

#include <memory>

#include <caf/all.hpp>

#include "cafes/actors/host.hpp"

namespace cafes::detail {

/// What every actor of one hosted aggregate type shares (immutable after start).
struct host_context {
  host_config cfg;
  caf::actor journal_actor;
  std::string source; ///< ce_source of this type's events
};

using context_ptr = std::shared_ptr<const host_context>;

/// The state an aggregate actor starts from.
struct aggregate_start {
  std::string id;
  std::any state;
  seq_nr seq{0};
  offset last{-1};
  std::uint64_t since_snapshot = 0;
  std::uint64_t epoch = 0; ///< its partition's ownership epoch, written with each event
};

/// Spawns the aggregate actor of one instance.
caf::actor spawn_aggregate(caf::local_actor* parent, context_ptr ctx, caf::actor partition, caf::actor io,
                           aggregate_start start);

/// Spawns the detached actor that runs one partition's blocking reads and checkpoint writes.
caf::actor spawn_io(caf::local_actor* parent, context_ptr ctx, partition_id p);

/// Spawns the partition actor of partition `p`.
caf::actor spawn_partition(caf::actor_system& sys, context_ptr ctx, partition_id p);

/// Saves a snapshot of `state` asynchronously and tells `partition` when it is durable.
void save_snapshot(const host_context& ctx, const caf::actor& partition, const std::string& id,
                   const std::any& state, seq_nr seq, offset last);

} // namespace cafes::detail
