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

/// Tells the host's on_settled, if any, that the partitions' gauges changed (host_config).
inline void notify_settled(const host_context& ctx) {
  if (ctx.cfg.on_settled)
    ctx.cfg.on_settled();
}

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

/// What folding one replayed event into an aggregate's state did.
struct folded {
  enum kind { applied, known, failed, threw } what = applied;
  cafes::error err;   ///< failed: a gap, a repeat or an event that does not decode; threw: stopped_error
  std::string thrown; ///< threw: what apply threw
};

/// Folds `ev`, read at `off` of partition `p`, into an aggregate's `state` at `seq`. An event
/// at or below `known` was folded before (or a snapshot covers it) and is skipped; the next
/// seq is decoded and applied, and `seq` moves on; anything else is a repeat or a gap in the
/// journal. A partition's recovery and an aggregate's catch-up both replay with it.
inline folded fold_event(const host_context& ctx, partition_id p, std::any& state, seq_nr& seq,
                         std::uint64_t known, const event_envelope& ev, offset off) {
  auto at = [&] {
    return " at " + ctx.cfg.journal->topic() + "/" + std::to_string(p.value()) + "@" + std::to_string(off.value());
  };
  if (ev.seq.value() <= known)
    return {folded::known, {}, {}};
  if (ev.seq.value() <= seq.value())
    return {folded::failed,
            cafes::error{errc::sequence_repeat,
                         "aggregate '" + ev.id.str() + "' repeats seq " + std::to_string(ev.seq.value()) + at()},
            {}};
  if (ev.seq.value() != seq.value() + 1)
    return {folded::failed,
            cafes::error{errc::sequence_gap, "aggregate '" + ev.id.str() + "' jumps from seq " +
                                               std::to_string(seq.value()) + " to " +
                                               std::to_string(ev.seq.value()) + at()},
            {}};
  auto typed = ctx.cfg.ops->decode_event(ev);
  if (!typed)
    return {folded::failed, cafes::error{typed.error().code, typed.error().message + at()}, {}};
  if (auto what = guarded([&] { ctx.cfg.ops->apply(state, *typed); }))
    return {folded::threw, stopped_error(ctx, ev.id.str(), p, off, *what), *what};
  seq = ev.seq;
  return {};
}

/// Spawns the aggregate actor of one instance.
caf::actor spawn_aggregate(caf::local_actor* parent, context_ptr ctx, caf::actor partition, aggregate_start start);

/// The detached actor that runs one partition's blocking reads and writes (journal, snapshots,
/// checkpoint), typed: a request it does not take, or an answer of the wrong type, does not
/// compile.
using io_actor = caf::typed_actor<caf::replies_to<scan_atom>::with<scan_result>,
                                  caf::replies_to<mark_atom>::with<mark_result>,
                                  caf::replies_to<read_atom, offset, std::size_t>::with<read_result>,
                                  caf::replies_to<catchup_atom, std::string, offset>::with<catch_up_result>,
                                  caf::replies_to<checkpt_atom, offset, std::uint64_t>::with<checkpoint_result>,
                                  caf::replies_to<open_atom>::with<io_result>,
                                  caf::replies_to<close_atom>::with<io_result>>;

/// Spawns partition p's I/O actor, linked to `parent` (its partition actor).
io_actor spawn_io(caf::local_actor* parent, context_ptr ctx, partition_id p);

/// Spawns the partition actor of partition `p`, which serves it for the type's `owner` actor
/// (and tells it when it stops serving on its own), or with `standby` a hot standby that keeps
/// its states warm until promote_atom makes it serve.
caf::actor spawn_partition(caf::actor_system& sys, context_ptr ctx, partition_id p, caf::actor owner,
                           bool standby = false);

/// Saves a snapshot of `state` asynchronously and tells `partition` when it is durable.
void save_snapshot(const host_context& ctx, const caf::actor& partition, const std::string& id,
                   const std::any& state, seq_nr seq, offset last);

} // namespace cafes::detail
