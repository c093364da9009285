// The partition actor's state and the steps its parts share (private to the actors library).
#pragma once

#include <deque>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "internal.hpp"

namespace cafes::detail::part {

struct cold_entry {
  std::any state;
  seq_nr seq{0};
  offset last{-1};
  std::uint64_t since_snapshot = 0;
  std::uint64_t snapshot_seq = 0; // during recovery: the seq its snapshot covers
};

struct live_entry {
  caf::actor actor;
  std::uint64_t routed = 0;
  std::uint64_t tick = 0;
};

// An aggregate whose state cannot be rebuilt (apply threw on one of its events): it answers
// `err` until the node restarts, and `floor`, its first event not covered by a snapshot,
// holds the stored checkpoint, so that none of its events is lost.
struct stopped_entry {
  std::int64_t floor = 0;
  cafes::error err;
};

// Where an aggregate's events stand against its latest durable snapshot.
struct track {
  std::int64_t uncovered = -1; // offset of the first event not covered by a snapshot
  std::int64_t last = -1;      // offset of its last event
};

struct partition_state {
  static inline const char* name = "cafes.partition";
  context_ptr ctx;
  partition_id p;
  caf::actor owner; // the type's owner actor, told when the partition stops serving on its own
  io_actor io;
  bool ready = false;
  std::optional<cafes::error> failure;
  std::deque<std::pair<command_msg, caf::response_promise>> stash;
  // Queries that came while recovering, answered once ready (no aggregate missing from them).
  std::vector<std::pair<std::shared_ptr<const std::function<bool(const std::any&)>>, caf::response_promise>>
    waiting_queries;
  std::unordered_map<std::string, live_entry> live;
  std::unordered_map<std::string, cold_entry> cold;
  std::unordered_map<std::string, track> tracks;
  std::map<std::int64_t, std::unordered_set<std::string>> holders; // uncovered offset -> ids
  std::unordered_set<std::string> snapshot_requested;
  std::int64_t end = 0;              // one past the last offset seen
  std::int64_t stored_checkpoint = 0;
  std::uint64_t epoch = 0;           // this owner's epoch, stored before it serves (0: not yet)
  // Released (revoke): commands get not_owner; the partition drains, snapshots, stores its
  // checkpoint, closes its writer, then answers `release` and stops.
  bool releasing = false;
  bool release_finishing = false;
  bool lost = false;                 // stopped on its own (see lose): its owner takes it over again
  std::size_t release_waiting = 0;   // live aggregates that have not handed their state back
  std::unordered_set<std::string> release_snaps; // snapshots the release waits for
  caf::response_promise release;
  enum { uncounted, counted_ready, counted_failed } counted = uncounted; // in host_stats' gauges
  // The checkpoint that would be stored if no aggregate were stopped: the replay bound counts
  // from it, so that a stopped aggregate never holds its partition's commands back.
  std::int64_t bound_checkpoint = 0;
  std::unordered_map<std::string, stopped_entry> stopped;
  bool checkpoint_in_flight = false;
  std::uint64_t tick = 0;
  // The checkpoint also stays below the end the partition had when each batch in flight was
  // sent, and below the same end for each aggregate whose outcome is unknown until it caught
  // up: their events may sit at any offset from there on.
  std::map<std::uint64_t, std::int64_t> batch_pins; // batch -> end when it was sent
  std::unordered_map<std::string, std::int64_t> holds; // aggregate -> lowest offset its events may have
  // A standby (hot standby replica): it reads the snapshots and tails the journal of a
  // partition another node owns, serves nothing and writes nothing, until it is promoted
  // (assigned): then it fences, claims the epoch and replays only what it has not read yet.
  bool standby = false;
  bool promote_pending = false; // promoted while a read was in flight: at its end
  bool tail_idle = false;       // waiting for the next tail read (no read in flight)
  // When the partition was assigned (or its standby promoted): its recovery time counts from it.
  std::chrono::steady_clock::time_point assigned;
};

using self_ptr = caf::stateful_actor<partition_state>*;

// The checkpoint as far as the aggregates that are not stopped go.
std::int64_t checkpoint(const partition_state& st);
// The checkpoint that may be stored: the stopped aggregates hold it too.
std::int64_t storable(const partition_state& st);
void set_uncovered(partition_state& st, const std::string& id, std::int64_t off);
void stop(partition_state& st, const std::string& id, std::int64_t off, cafes::error err);
void keep_bounded(self_ptr self);
void maybe_store_checkpoint(self_ptr self);
void serve_stash(self_ptr self);
// Stops serving the partition after its writer was lost or its recovery failed for a reason
// that may pass (Kafka unreachable, fenced): commands get not_owner, and its owner releases
// it and takes it over again, after a pause, if this node still owns it.
void lose(self_ptr self, const cafes::error& why);

// Recovery (partition_recovery.cpp): takes the partition over, recovers it, then serves.
void recover(self_ptr self);
// Replays the journal from `from` in chunks (recovery, or a standby's tail).
void replay(self_ptr self, offset from);
// Starts a standby: reads the snapshots, replays, then tails the journal.
void start_standby(self_ptr self);
// Takes over the partition this standby kept warm.
void promote(self_ptr self);

} // namespace cafes::detail::part
