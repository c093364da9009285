// The messages between the runtime's actors (in-process only; never sent to other nodes).
// Internal to cafes (not installed); command_msg and command_reply are public (command.hpp).
#pragma once

#include <any>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "cafes/actors/command.hpp"
#include "cafes/actors/host_options.hpp"
#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/snapshot_store.hpp"

namespace cafes {

/// The owner actor hands a command for a partition it does not own to the node's forwarder,
/// which sends it to the partition's owner and answers with its command_reply.
struct forward_msg {
  std::string type;
  std::int32_t partition = 0;
  command_msg cmd;
};

/// Asks the journal actor to make these events durable (one aggregate's events, in order).
struct persist_req {
  std::vector<event_envelope> events;
};

/// The journal actor's answer: where each event landed, or an error and what became of the
/// events (not_written: they are not in the journal; unknown: they may be).
struct persist_res {
  std::optional<cafes::error> err;
  std::vector<position> positions;
  event_outcome outcome = event_outcome::durable;
};

/// A completed journal append, delivered to the journal actor from the journal's thread.
struct batch_done {
  std::uint64_t batch = 0;
  append_result result;
};

/// Lifts the journal actor's refusal of an aggregate whose persist failed: the aggregate has
/// reset its next sequence number (and re-read the journal if the outcome was unknown).
struct unpoison_msg {
  std::string id;
};

/// An aggregate tells its partition that events became durable.
struct persisted_msg {
  std::string id;
  seq_nr seq;
  offset first;
  offset last;
  std::uint64_t count = 0;
};

/// The journal actor tells a partition that a batch with some of its events is in flight:
/// the partition's checkpoint must not pass its current end until the batch is settled, so
/// that a later batch that completes first cannot move it past this one's events.
struct batch_sent_msg {
  std::uint64_t batch = 0;
};

/// The journal actor settles a batch with a partition: the aggregates' events that became
/// durable, and the aggregates whose outcome is unknown (the partition keeps holding the
/// checkpoint for them until they caught up: resolved_msg).
struct batch_settled_msg {
  std::uint64_t batch = 0;
  std::vector<persisted_msg> durable;
  std::vector<std::string> unknown;
};

/// An aggregate caught up after an unknown outcome: its partition stops holding for it.
struct resolved_msg {
  std::string id;
};

/// A live aggregate stopped at its event at `off` (apply threw while it was rebuilt, or the
/// journal holds a gap): it answers every command with `err`, never snapshots, and its
/// partition keeps the checkpoint at its first event not covered by a snapshot.
struct stopped_msg {
  std::string id;
  offset off;
  cafes::error err;
};

/// Tells the journal actor the partition actors to settle batches with (index = partition).
struct partitions_msg {
  std::vector<caf::actor> partitions;
};

/// An aggregate (or the partition itself) reports a durable snapshot.
struct snapshot_done_msg {
  std::string id;
  seq_nr seq;
  offset off;
  std::optional<cafes::error> err;
};

/// An idle aggregate offers to stop; the partition accepts only if nothing was routed since.
/// Also an aggregate's answer to release_atom: then `resolved` says whether its state is
/// exact (false: an outcome is still unknown, the state must not be snapshotted).
struct passivate_msg {
  std::string id;
  std::uint64_t handled = 0;
  std::any state;
  seq_nr seq;
  offset last;
  bool dirty = false; ///< events since the last snapshot
  bool resolved = true;
};

/// The partition asks a live aggregate to snapshot now (it holds the checkpoint back).
struct snapshot_now_msg {};
/// The partition asks a live aggregate to offer passivation now (resident cap).
struct passivate_now_msg {};

/// The snapshots and checkpoint of one partition, read by its I/O actor.
struct scan_result {
  std::optional<cafes::error> err;
  std::vector<snapshot> snapshots;
  std::optional<partition_mark> mark; ///< checkpoint and epoch of the last owner, if any
  std::uint64_t corrupt = 0;
};

/// The stored checkpoint and epoch of a partition (mark_atom), if any.
struct mark_result {
  std::optional<cafes::error> err;
  std::optional<partition_mark> mark;
};

/// The outcome of a partition job of the I/O actor (opening or closing its writer).
struct io_result {
  std::optional<cafes::error> err;
};

/// Events of one aggregate read back after a failed persist, or for a restart (then from its
/// latest snapshot: `state`, empty if it has none, is the snapshot's state after `seq`, the
/// event at `last`).
struct catch_up_result {
  std::optional<cafes::error> err;
  std::vector<event_envelope> events;
  std::vector<offset> offsets;
  std::any state;
  seq_nr seq{0};
  offset last{-1};
};

/// One chunk of a journal partition, read by the I/O actor.
struct read_result {
  std::optional<cafes::error> err;
  read_chunk chunk;
};

/// The outcome of storing a checkpoint.
struct checkpoint_result {
  std::optional<cafes::error> err;
  offset off;
};

using scan_atom = caf::atom_constant<caf::atom("scan")>;
using read_atom = caf::atom_constant<caf::atom("read")>;
using catchup_atom = caf::atom_constant<caf::atom("catchup")>;
using checkpt_atom = caf::atom_constant<caf::atom("checkpt")>;
/// To a partition actor or the owner actor: `owned_atom, stats_atom` asks for the
/// partition_detail of each owned partition.
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using query_atom = caf::atom_constant<caf::atom("query")>;
/// To a type's owner actor: take partition p (open its writer, recover, serve).
using assign_atom = caf::atom_constant<caf::atom("assign")>;
/// To a type's owner actor: give partition p up gracefully (answered once it is released).
using revoke_atom = caf::atom_constant<caf::atom("revoke")>;
/// To a type's owner actor: the partitions owned now (std::vector<owned_partition>).
using owned_atom = caf::atom_constant<caf::atom("owned")>;
/// To a partition or an aggregate: stop serving, drain, hand the state back.
using release_atom = caf::atom_constant<caf::atom("release")>;
using open_atom = caf::atom_constant<caf::atom("open")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
/// To the I/O actor: read the partition's stored mark. To the owner actor: `standby_atom, p,
/// on` starts or stops a hot standby of partition p; `standby_atom` alone lists them.
using mark_atom = caf::atom_constant<caf::atom("mark")>;
using standby_atom = caf::atom_constant<caf::atom("standby")>;
/// To a standby partition actor: take the partition over.
using promote_atom = caf::atom_constant<caf::atom("promote")>;
/// From a partition actor to its owner: `lost_atom, p, fenced`: it stopped serving (its
/// writer was lost, or its recovery failed on a Kafka error). Owner-internal: `retake_atom,
/// p[, confirmed]` takes such a partition over again.
using lost_atom = caf::atom_constant<caf::atom("lost")>;
using retake_atom = caf::atom_constant<caf::atom("retake")>;

} // namespace cafes

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::mark_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::forward_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::persist_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::persist_res)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::batch_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::unpoison_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::persisted_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::snapshot_done_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::partitions_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::resolved_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::stopped_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::batch_settled_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::batch_sent_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::passivate_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::snapshot_now_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::passivate_now_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::scan_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::catch_up_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::read_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::checkpoint_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::io_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::owned_partition)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<cafes::owned_partition>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::partition_detail)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<cafes::partition_detail>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::error)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::offset)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<const std::function<bool(const std::any&)>>)
