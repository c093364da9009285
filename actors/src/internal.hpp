// Private pieces shared by the aggregate, partition and I/O actors.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <string>

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
  partition_id p{0};
  std::any state;
  seq_nr seq{0};
  offset last{-1};
  std::uint64_t since_snapshot = 0;
  std::uint64_t epoch = 0; ///< its partition's ownership epoch, written with each event
};

/// Runs `f`, which calls the aggregate type's own code (handle, apply). Returns the what() of
/// the exception it threw, if any: a throwing handler must never kill an actor.
template <class F>
std::optional<std::string> guarded(F&& f) {
  try {
    f();
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string{e.what()};
  } catch (...) {
    return std::string{"unknown exception"};
  }
}

/// Names an aggregate in errors and logs.
inline std::string describe(const host_context& ctx, std::string_view id) {
  return "aggregate '" + std::string{id} + "' of type '" + std::string{ctx.cfg.ops->name()} + "'";
}

/// The error a stopped aggregate answers: apply threw `what` on its event at `off`.
inline cafes::error stopped_error(const host_context& ctx, std::string_view id, partition_id p, offset off,
                                  std::string_view what) {
  return cafes::error{actor_errc::handler_failed,
                      describe(ctx, id) + " is stopped: apply threw on its event at " + ctx.cfg.journal->topic() +
                        "/" + std::to_string(p.value()) + "@" + std::to_string(off.value()) + ": " +
                        std::string{what} + "; it serves again once apply is fixed and the node restarted"};
}

/// Spawns the aggregate actor of one instance.
caf::actor spawn_aggregate(caf::local_actor* parent, context_ptr ctx, caf::actor partition, caf::actor io,
                           aggregate_start start);

/// Spawns the detached actor that runs one partition's blocking reads and checkpoint writes.
caf::actor spawn_io(caf::local_actor* parent, context_ptr ctx, partition_id p);

/// Spawns the partition actor of partition `p`, which serves it for the type's `owner` actor
/// (and tells it when it stops serving on its own), or with `standby` a hot standby that keeps
/// its states warm until promote_atom makes it serve.
caf::actor spawn_partition(caf::actor_system& sys, context_ptr ctx, partition_id p, caf::actor owner,
                           bool standby = false);

/// Saves a snapshot of `state` asynchronously and tells `partition` when it is durable.
void save_snapshot(const host_context& ctx, const caf::actor& partition, const std::string& id,
                   const std::any& state, seq_nr seq, offset last);

} // namespace cafes::detail
