// The partition actor: recovers one partition, hosts its aggregates, keeps recovery bounded.
#include <deque>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "internal.hpp"
#include "logger.hpp"

namespace cafes::detail {

namespace {

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
  caf::actor io;
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
};

using self_ptr = caf::stateful_actor<partition_state>*;

// The checkpoint as far as the aggregates that are not stopped go.
std::int64_t checkpoint(const partition_state& st) {
  auto c = st.holders.empty() ? st.end : st.holders.begin()->first;
  for (auto& [b, off] : st.batch_pins)
    c = std::min(c, off);
  for (auto& [id, off] : st.holds)
    c = std::min(c, off);
  return c;
}

// The checkpoint that may be stored: the stopped aggregates hold it too.
std::int64_t storable(const partition_state& st) {
  auto c = checkpoint(st);
  for (auto& [id, x] : st.stopped)
    c = std::min(c, x.floor);
  return c;
}

void set_uncovered(partition_state& st, const std::string& id, std::int64_t off) {
  auto& t = st.tracks[id];
  if (t.uncovered >= 0) {
    auto h = st.holders.find(t.uncovered);
    if (h != st.holders.end()) {
      h->second.erase(id);
      if (h->second.empty())
        st.holders.erase(h);
    }
  }
  t.uncovered = off;
  if (off >= 0)
    st.holders[off].insert(id);
}

void on_persisted(partition_state& st, const persisted_msg& m) {
  auto& t = st.tracks[m.id];
  if (t.uncovered < 0) {
    if (auto x = st.stopped.find(m.id); x != st.stopped.end())
      x->second.floor = std::min(x->second.floor, m.first.value());
    else
      set_uncovered(st, m.id, m.first.value());
  }
  t.last = std::max(t.last, m.last.value());
  st.end = std::max(st.end, m.last.value() + 1);
}

// Whether the partition holds new commands back: its stored checkpoint lags the end by
// max_replay, so a recovery now would read that many events. They are served again once a
// checkpoint closer to the end is stored. This makes the replay bound hard: max_replay plus
// what the commands already routed write, whatever the snapshots' latency. Stopped
// aggregates do not count (bound_checkpoint): they suspend the bound as far as their own
// events go, until they are fixed, and never stall their partition.
bool throttled(const partition_state& st) {
  const auto max_replay = static_cast<std::int64_t>(st.ctx->cfg.max_replay);
  return st.ready && !st.failure && max_replay > 0 && st.end - st.bound_checkpoint >= max_replay;
}

void serve_stash(self_ptr self);
void checkpoint_stored(self_ptr self, std::int64_t c);

void maybe_store_checkpoint(self_ptr self) {
  auto& st = self->state;
  const auto c = checkpoint(st);
  const auto step = std::max<std::int64_t>(1, static_cast<std::int64_t>(st.ctx->cfg.max_replay / 8));
  if (st.checkpoint_in_flight || c <= st.bound_checkpoint ||
      (c - st.bound_checkpoint < step && !st.holders.empty() && !throttled(st)))
    return;
  const auto store = storable(st);
  if (store <= st.stored_checkpoint) // stopped aggregates hold it: nothing new to write
    return checkpoint_stored(self, c);
  st.checkpoint_in_flight = true;
  self->request(st.io, caf::infinite, checkpt_atom::value, offset{store}, st.epoch)
    .then([=](checkpoint_result& r) {
      auto& s = self->state;
      s.checkpoint_in_flight = false;
      if (r.err) {
        actors_log().warn("checkpoint of {}/{} not stored: {}", s.ctx->cfg.journal->topic(), s.p.value(),
                          r.err->to_string());
        if (throttled(s)) // commands wait for it: try again soon
          self->delayed_send(self, std::chrono::milliseconds{500}, checkpt_atom::value);
        return;
      }
      s.stored_checkpoint = std::max(s.stored_checkpoint, r.off.value());
      if (s.ctx->cfg.stats)
        ++s.ctx->cfg.stats->checkpoints_written;
      checkpoint_stored(self, c);
    });
}

// Checkpoint `c` is stored, or would be but for the stopped aggregates.
void checkpoint_stored(self_ptr self, std::int64_t c) {
  auto& st = self->state;
  st.bound_checkpoint = std::max(st.bound_checkpoint, c);
  maybe_store_checkpoint(self);
  if (!throttled(st) && !st.stash.empty())
    serve_stash(self);
}

// Stops aggregate `id`, which answers `err` from now on: its state cannot be rebuilt from the
// journal. It keeps the stored checkpoint at its first event not covered by a snapshot (or at
// `off`, the event that stopped it), so that the next start, with a fixed apply, reads all of
// its events; it is never snapshotted, and no longer counts for the replay bound.
void stop(partition_state& st, const std::string& id, std::int64_t off, cafes::error err) {
  auto floor = off;
  if (auto x = st.stopped.find(id); x != st.stopped.end())
    floor = std::min(floor, x->second.floor);
  if (auto t = st.tracks.find(id); t != st.tracks.end() && t->second.uncovered >= 0)
    floor = std::min(floor, t->second.uncovered);
  set_uncovered(st, id, -1);
  if (auto h = st.holds.find(id); h != st.holds.end()) {
    floor = std::min(floor, h->second);
    st.holds.erase(h);
  }
  st.snapshot_requested.erase(id);
  st.cold.erase(id);
  actors_log().error("{}; partition {}/{} keeps its events from offset {} on (recovery reads from there)",
                     err.to_string(), st.ctx->cfg.journal->topic(), st.p.value(), floor);
  if (st.ctx->cfg.stats)
    ++st.ctx->cfg.stats->aggregates_stopped;
  st.stopped.insert_or_assign(id, stopped_entry{floor, std::move(err)});
}

// Snapshots the aggregates that hold the checkpoint back, so that recovery stays within
// max_replay. It starts at half the bound, so the snapshots land before the bound is reached.
void keep_bounded(self_ptr self) {
  auto& st = self->state;
  const auto max_replay = static_cast<std::int64_t>(st.ctx->cfg.max_replay);
  if (st.releasing || max_replay <= 0 || st.end - checkpoint(st) <= max_replay / 2)
    return;
  const auto target = st.end - max_replay / 2;
  std::size_t asked = 0;
  for (auto& [off, ids] : st.holders) {
    if (off >= target || asked >= 256)
      break;
    for (auto& id : ids) {
      if (st.snapshot_requested.count(id))
        continue;
      st.snapshot_requested.insert(id);
      ++asked;
      if (auto l = st.live.find(id); l != st.live.end()) {
        self->send(l->second.actor, snapshot_now_msg{});
      } else if (auto c = st.cold.find(id); c != st.cold.end()) {
        c->second.since_snapshot = 0;
        save_snapshot(*st.ctx, self, id, c->second.state, c->second.seq, c->second.last);
      }
    }
  }
}

cafes::error released_error(const partition_state& st) {
  return cafes::error{actor_errc::not_owner, "partition " + std::to_string(st.p.value()) + " of " +
                                                 st.ctx->cfg.journal->topic() + " is being handed over"};
}

void activate(self_ptr self, command_msg& m, caf::response_promise& rp);

void serve_stash(self_ptr self) {
  auto stash = std::move(self->state.stash);
  self->state.stash.clear();
  for (auto& [m, rp] : stash)
    activate(self, m, rp);
  if (self->state.ready) {
    auto queries = std::move(self->state.waiting_queries);
    self->state.waiting_queries.clear();
    for (auto& [pred, rp] : queries)
      rp.delegate(caf::actor_cast<caf::actor>(self), query_atom::value, std::move(pred));
  }
}

void evict(self_ptr self) {
  auto& st = self->state;
  if (st.live.size() <= st.ctx->cfg.max_resident)
    return;
  // Ask the least recently used residents beyond the cap (and a tenth more, so that this
  // does not run on every activation) to passivate; busy ones do so once idle.
  std::vector<std::pair<std::uint64_t, caf::actor>> by_age;
  by_age.reserve(st.live.size());
  for (auto& [id, l] : st.live)
    by_age.emplace_back(l.tick, l.actor);
  auto n = std::min(st.live.size(), st.live.size() - st.ctx->cfg.max_resident +
                                      std::max<std::size_t>(1, st.ctx->cfg.max_resident / 10));
  std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(n - 1), by_age.end(),
                   [](auto& a, auto& b) { return a.first < b.first; });
  for (std::size_t i = 0; i < n; ++i)
    self->send(by_age[i].second, passivate_now_msg{});
}

void activate(self_ptr self, command_msg& m, caf::response_promise& rp) {
  auto& st = self->state;
  if (st.releasing) {
    rp.deliver(command_reply{released_error(st), {}});
    return;
  }
  if (!st.failure && st.ctx->cfg.journal->fenced(st.p)) {
    // A newer owner took the partition over: this node never writes to it again.
    actors_log().warn("partition {}/{} is fenced: its commands get not_owner", st.ctx->cfg.journal->topic(),
                      st.p.value());
    st.failure = cafes::error{actor_errc::not_owner, "partition " + std::to_string(st.p.value()) + " of " +
                                                         st.ctx->cfg.journal->topic() + " is owned by another node"};
  }
  if (st.failure) {
    rp.deliver(command_reply{*st.failure, {}});
    return;
  }
  if (st.ctx->cfg.stats)
    ++st.ctx->cfg.stats->commands;
  auto id = aggregate_id::make(m.id);
  if (!id) {
    rp.deliver(command_reply{id.error(), {}});
    return;
  }
  auto l = st.live.find(m.id);
  if (l == st.live.end()) {
    if (auto x = st.stopped.find(m.id); x != st.stopped.end()) { // stopped during recovery
      rp.deliver(command_reply{x->second.err, {}});
      return;
    }
    aggregate_start start;
    start.id = m.id;
    start.p = st.p;
    if (auto c = st.cold.find(m.id); c != st.cold.end()) {
      start.state = std::move(c->second.state);
      start.seq = c->second.seq;
      start.last = c->second.last;
      start.since_snapshot = c->second.since_snapshot;
      st.cold.erase(c);
    }
    start.epoch = st.epoch;
    auto a = spawn_aggregate(self, st.ctx, self, st.io, std::move(start));
    l = st.live.emplace(m.id, live_entry{a, 0, 0}).first;
    if (st.ctx->cfg.stats) {
      ++st.ctx->cfg.stats->activations;
      ++st.ctx->cfg.stats->resident;
    }
    evict(self);
  }
  ++l->second.routed;
  l->second.tick = ++st.tick;
  rp.delegate(l->second.actor, std::move(m));
}

void finish_recovery(self_ptr self) {
  auto& st = self->state;
  st.ready = true;
  if (st.ctx->cfg.stats) {
    st.ctx->cfg.stats->aggregates_recovered += st.cold.size();
    ++st.ctx->cfg.stats->partitions_ready;
    st.counted = partition_state::counted_ready;
  }
  actors_log().debug("partition {}/{} ready: {} aggregates, checkpoint {}, end {}", st.ctx->cfg.journal->topic(),
                    st.p.value(), st.cold.size(), checkpoint(st), st.end);
  if (!st.stopped.empty())
    actors_log().warn("partition {}/{} serves with {} aggregates stopped; until they are fixed, its stored checkpoint "
                      "stays at offset {} and every recovery reads from there, beyond max_replay",
                      st.ctx->cfg.journal->topic(), st.p.value(), st.stopped.size(), storable(st));
  keep_bounded(self);
  maybe_store_checkpoint(self); // a replay from an older checkpoint than the snapshots allow
  serve_stash(self);
}

void fail_recovery(self_ptr self, cafes::error e) {
  auto& st = self->state;
  actors_log().error("partition {}/{} stops: {}", st.ctx->cfg.journal->topic(), st.p.value(), e.to_string());
  st.failure = cafes::error{e == errc::fenced ? actor_errc::not_owner : actor_errc::recovery_failed, e.to_string()};
  st.ready = true;
  if (st.ctx->cfg.stats) {
    if (st.counted == partition_state::counted_ready)
      --st.ctx->cfg.stats->partitions_ready;
    if (st.counted != partition_state::counted_failed)
      ++st.ctx->cfg.stats->partitions_failed;
    st.counted = partition_state::counted_failed;
  }
  serve_stash(self);
}

// Applies one recovered event; returns an error on a gap or a repeat. An apply that throws
// stops only its aggregate, whose later events are skipped.
expected<void> replay_one(partition_state& st, event_envelope& ev, offset off) {
  if (st.stopped.count(ev.id.str()))
    return {};
  auto& c = st.cold[ev.id.str()];
  if (!c.state.has_value())
    c.state = st.ctx->cfg.ops->initial_state();
  auto at = [&] {
    return " at " + st.ctx->cfg.journal->topic() + "/" + std::to_string(st.p.value()) + "@" +
           std::to_string(off.value());
  };
  if (ev.seq.value() <= c.snapshot_seq)
    return {}; // covered by the snapshot
  if (ev.seq.value() <= c.seq.value())
    return cafes::error{errc::sequence_repeat, "aggregate '" + ev.id.str() + "' repeats seq " +
                                                   std::to_string(ev.seq.value()) + at()};
  if (ev.seq.value() != c.seq.value() + 1)
    return cafes::error{errc::sequence_gap, "aggregate '" + ev.id.str() + "' jumps from seq " +
                                                std::to_string(c.seq.value()) + " to " +
                                                std::to_string(ev.seq.value()) + at()};
  auto typed = st.ctx->cfg.ops->decode_event(ev);
  if (!typed)
    return cafes::error{typed.error().code, typed.error().message + at()};
  if (auto what = guarded([&] { st.ctx->cfg.ops->apply(c.state, *typed); })) {
    stop(st, ev.id.str(), off.value(), stopped_error(*st.ctx, ev.id.str(), st.p, off, *what));
    return {};
  }
  c.seq = ev.seq;
  c.last = off;
  ++c.since_snapshot;
  auto& t = st.tracks[ev.id.str()];
  if (t.uncovered < 0)
    set_uncovered(st, ev.id.str(), off.value());
  t.last = off.value();
  return {};
}

// Replays the journal from `from` in chunks. The next chunk is requested before the current
// one is applied, so that the I/O actor reads while this actor applies (two cores busy).
void replay(self_ptr self, offset from);

void on_chunk(self_ptr self, read_result& r) {
  auto& s = self->state;
  if (s.failure || s.releasing)
    return;
  if (r.err)
    return fail_recovery(self, *r.err);
  if (!r.chunk.end)
    replay(self, r.chunk.next);
  if (s.ctx->cfg.stats)
    s.ctx->cfg.stats->events_replayed += r.chunk.events.size();
  for (std::size_t i = 0; i < r.chunk.events.size(); ++i) {
    if (auto ok = replay_one(s, r.chunk.events[i], r.chunk.offsets[i]); !ok) {
      if (s.ctx->cfg.stats)
        ++s.ctx->cfg.stats->sequence_errors;
      return fail_recovery(self, ok.error());
    }
    s.end = r.chunk.offsets[i].value() + 1;
  }
  s.end = std::max(s.end, r.chunk.next.value());
  if (r.chunk.end)
    finish_recovery(self);
}

// The error handler of a recovery step's request: the I/O actor died (the partition stops).
auto recovery_error(self_ptr self) {
  return [=](caf::error& err) {
    if (!self->state.failure)
      fail_recovery(self, cafes::error{actor_errc::recovery_failed, self->system().render(err)});
  };
}

void replay(self_ptr self, offset from) {
  auto& st = self->state;
  self->request(st.io, caf::infinite, read_atom::value, from, st.ctx->cfg.replay_chunk)
    .then([=](read_result& r) { on_chunk(self, r); }, recovery_error(self));
}

void scan(self_ptr self);

// Taking the partition over: open its writer first (which fences any older owner), so that
// nothing of an older owner can land after the recovery has read the journal.
void recover(self_ptr self) {
  auto& st = self->state;
  self->request(st.io, caf::infinite, open_atom::value)
    .then(
      [=](io_result& r) {
        if (self->state.releasing)
          return;
        if (r.err)
          return fail_recovery(self, *r.err);
        scan(self);
      },
      recovery_error(self));
}

// Stores the new owner's epoch (one more than the last owner's) with the checkpoint the
// recovery starts from, through the freshly opened writer, then replays. A node never writes
// an event of an epoch it has not stored: epochs grow with every change of owner.
void claim_epoch(self_ptr self, std::int64_t from, std::uint64_t last_epoch) {
  auto& st = self->state;
  const auto epoch = last_epoch + 1;
  self->request(st.io, caf::infinite, checkpt_atom::value, offset{from}, epoch)
    .then(
      [=](checkpoint_result& r) {
        auto& s = self->state;
        if (s.releasing)
          return;
        if (r.err)
          return fail_recovery(self, *r.err);
        s.epoch = epoch;
        actors_log().debug("partition {}/{}: epoch {}", s.ctx->cfg.journal->topic(), s.p.value(), epoch);
        replay(self, offset{from});
      },
      recovery_error(self));
}

void scan(self_ptr self) {
  auto& st = self->state;
  self->request(st.io, caf::infinite, scan_atom::value)
    .then(
      [=](scan_result& r) {
        auto& s = self->state;
        if (s.releasing)
          return;
        if (r.err)
          return fail_recovery(self, *r.err);
        bool fallback = r.corrupt > 0;
        for (auto& snap : r.snapshots) {
          auto state = s.ctx->cfg.ops->decode_state(snap.state_type, snap.state_version, snap.state);
          if (!state) {
            actors_log().error("snapshot of '{}' in partition {} does not decode ({}); it recovers from the journal",
                               snap.id.str(), s.p.value(), state.error().to_string());
            ++r.corrupt;
            fallback = true;
            continue;
          }
          s.cold[snap.id.str()] = cold_entry{std::move(*state), snap.seq, snap.journal_offset, 0, snap.seq.value()};
          s.tracks[snap.id.str()].last = snap.journal_offset.value();
          s.end = std::max(s.end, snap.journal_offset.value() + 1);
        }
        if (s.ctx->cfg.stats) {
          s.ctx->cfg.stats->snapshots_read += r.snapshots.size();
          s.ctx->cfg.stats->corrupt_snapshots += r.corrupt;
        }
        // A corrupt snapshot means the checkpoint cannot be trusted for its aggregate: replay
        // the partition from its start (logged above and counted), never lose events.
        std::int64_t from = 0;
        if (r.mark && !fallback)
          from = r.mark->checkpoint.value();
        s.stored_checkpoint = from;
        s.bound_checkpoint = from;
        s.end = std::max(s.end, from);
        claim_epoch(self, from, r.mark ? r.mark->epoch : 0);
      },
      recovery_error(self));
}

// The last steps of a release: store the checkpoint the snapshots allow, close the writer
// (finishing its transaction), answer, stop. Failures only make the next owner replay more.
void finish_release(self_ptr self) {
  auto& st = self->state;
  if (st.release_finishing)
    return;
  st.release_finishing = true;
  auto done = [=] {
    auto& s = self->state;
    if (s.ctx->cfg.stats) {
      if (s.counted == partition_state::counted_ready)
        --s.ctx->cfg.stats->partitions_ready;
      else if (s.counted == partition_state::counted_failed)
        --s.ctx->cfg.stats->partitions_failed;
    }
    s.counted = partition_state::uncounted;
    actors_log().debug("partition {}/{} released at checkpoint {} (epoch {})", s.ctx->cfg.journal->topic(),
                       s.p.value(), s.stored_checkpoint, s.epoch);
    s.release.deliver(true);
    self->quit();
  };
  auto close = [=] {
    self->request(self->state.io, caf::infinite, close_atom::value)
      .then(
        [=](io_result& r) {
          if (r.err)
            actors_log().warn("closing the writer of {}/{}: {}", self->state.ctx->cfg.journal->topic(),
                              self->state.p.value(), r.err->to_string());
          done();
        },
        [=](caf::error&) { done(); });
  };
  const auto c = storable(st);
  if (!st.ready || st.failure || st.epoch == 0 || c <= st.stored_checkpoint)
    return close();
  self->request(st.io, caf::infinite, checkpt_atom::value, offset{c}, st.epoch)
    .then(
      [=](checkpoint_result& r) {
        if (!r.err)
          self->state.stored_checkpoint = std::max(self->state.stored_checkpoint, r.off.value());
        close();
      },
      [=](caf::error&) { close(); });
}

// Snapshots every aggregate that holds the checkpoint back and whose state is exact, so
// that the next owner replays little; finish_release once they are durable (or failed).
void release_snapshots(self_ptr self) {
  auto& st = self->state;
  for (auto& [off, holding] : st.holders)
    for (auto& id : holding)
      if (!st.holds.count(id) && !st.stopped.count(id) && st.cold.count(id))
        st.release_snaps.insert(id);
  for (auto& id : std::vector<std::string>{st.release_snaps.begin(), st.release_snaps.end()}) {
    auto& c = st.cold.at(id);
    save_snapshot(*st.ctx, self, id, c.state, c.seq, c.last);
  }
  if (st.release_snaps.empty())
    finish_release(self);
}

// Takes back the state of an aggregate that stopped for the release.
void take_back(self_ptr self, passivate_msg& m) {
  auto& st = self->state;
  if (auto l = st.live.find(m.id); l != st.live.end()) {
    self->send_exit(l->second.actor, caf::exit_reason::user_shutdown);
    st.live.erase(l);
    if (st.ctx->cfg.stats)
      --st.ctx->cfg.stats->resident;
  }
  if (m.resolved)
    st.cold[m.id] = cold_entry{std::move(m.state), m.seq, m.last, m.dirty ? 1u : 0u, 0};
  else // its state may miss events: never snapshotted, its events stay above the checkpoint
    st.cold.erase(m.id);
}

caf::behavior partition_actor(self_ptr self, context_ptr ctx, partition_id p) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.p = p;
  st.io = spawn_io(self, st.ctx, p);
  // Stopping a partition stops its aggregates (they are not linked: passivation ends them).
  self->set_exit_handler([=](caf::exit_msg& em) {
    for (auto& [id, l] : self->state.live)
      self->send_exit(l.actor, em.reason);
    self->quit(em.reason);
  });
  recover(self);
  return {
    [=](command_msg& m) {
      auto& s = self->state;
      auto rp = self->make_response_promise();
      if (s.releasing) {
        rp.deliver(command_reply{released_error(s), {}});
        return;
      }
      if (!s.ready || throttled(s) || !s.stash.empty()) {
        if (s.stash.size() >= s.ctx->cfg.max_stash) {
          rp.deliver(command_reply{cafes::error{actor_errc::overloaded,
                                                "partition " + std::to_string(s.p.value()) +
                                                  (s.ready ? " waits for its checkpoint" : " is recovering") +
                                                  " and has " + std::to_string(s.stash.size()) + " commands waiting"},
                                   {}});
          return;
        }
        if (s.ready && s.stash.empty()) {
          if (s.ctx->cfg.stats)
            ++s.ctx->cfg.stats->throttles;
          keep_bounded(self);
          maybe_store_checkpoint(self);
        }
        s.stash.emplace_back(std::move(m), rp);
        return;
      }
      activate(self, m, rp);
    },
    [=](persisted_msg& m) {
      on_persisted(self->state, m);
      keep_bounded(self);
    },
    [=](batch_sent_msg& m) {
      auto& s = self->state;
      s.batch_pins.emplace(m.batch, s.end);
    },
    [=](batch_settled_msg& m) {
      auto& s = self->state;
      for (auto& d : m.durable)
        on_persisted(s, d);
      auto pin = s.batch_pins.find(m.batch);
      const auto floor = pin != s.batch_pins.end() ? pin->second : checkpoint(s);
      for (auto& id : m.unknown) {
        if (auto x = s.stopped.find(id); x != s.stopped.end()) {
          x->second.floor = std::min(x->second.floor, floor);
          continue;
        }
        auto [h, fresh] = s.holds.emplace(id, floor);
        if (!fresh)
          h->second = std::min(h->second, floor);
      }
      if (pin != s.batch_pins.end())
        s.batch_pins.erase(pin);
      keep_bounded(self);
      maybe_store_checkpoint(self);
    },
    [=](checkpt_atom) { maybe_store_checkpoint(self); },
    [=](resolved_msg& m) {
      self->state.holds.erase(m.id);
      maybe_store_checkpoint(self);
    },
    [=](stopped_msg& m) {
      stop(self->state, m.id, m.off.value(), std::move(m.err));
      maybe_store_checkpoint(self); // it may have been what held the commands back
    },
    [=](catchup_atom a, std::string& id, offset from) {
      // Events of a failed persist land after the end the partition had when it was sent. A
      // restart (from < 0) reads every event after the snapshot.
      auto& s = self->state;
      if (auto h = s.holds.find(id); h != s.holds.end() && from.value() >= 0)
        from = offset{std::max(from.value(), h->second)};
      return self->delegate(s.io, a, std::move(id), from);
    },
    [=](release_atom) -> caf::result<bool> {
      auto& s = self->state;
      if (s.releasing)
        return caf::sec::invalid_argument; // one release per partition actor
      s.releasing = true;
      s.release = self->make_response_promise();
      for (auto& [m, rp] : s.stash) // the caller retries them with the next owner
        rp.deliver(command_reply{released_error(s), {}});
      s.stash.clear();
      if (!s.ready || s.failure) {
        finish_release(self);
        return s.release;
      }
      // Each live aggregate answers what it waits for (its persists in flight), refuses the
      // rest with not_owner and hands its state back.
      s.release_waiting = s.live.size();
      for (auto& [id, l] : s.live)
        self->request(l.actor, caf::infinite, release_atom::value)
          .then(
            [=](passivate_msg& m) {
              take_back(self, m);
              if (--self->state.release_waiting == 0)
                release_snapshots(self);
            },
            [=](caf::error&) { // it passivated meanwhile, or died
              if (--self->state.release_waiting == 0)
                release_snapshots(self);
            });
      if (s.release_waiting == 0)
        release_snapshots(self);
      return s.release;
    },
    [=](owned_atom) {
      auto& s = self->state;
      return owned_partition{s.p.value(), s.epoch, s.ready};
    },
    [=](snapshot_done_msg& m) {
      auto& s = self->state;
      s.snapshot_requested.erase(m.id);
      if (m.err) {
        actors_log().warn("snapshot of '{}' failed: {}", m.id, m.err->to_string());
      } else {
        if (s.ctx->cfg.stats)
          ++s.ctx->cfg.stats->snapshots_written;
        auto& t = s.tracks[m.id];
        if (t.uncovered >= 0 && t.uncovered <= m.off.value())
          set_uncovered(s, m.id, t.last > m.off.value() ? m.off.value() + 1 : -1);
        maybe_store_checkpoint(self);
      }
      if (s.releasing) {
        if (s.release_snaps.erase(m.id) && s.release_waiting == 0 && s.release_snaps.empty())
          finish_release(self);
        return;
      }
      // Snapshots may come back after the writes that asked for them have stopped: check the
      // bound again, or a partition that went quiet would keep a checkpoint far behind.
      keep_bounded(self);
    },
    [=](passivate_msg& m) {
      auto& s = self->state;
      auto l = s.live.find(m.id);
      // A stale offer of an earlier incarnation, or a command on its way: it stays.
      if (l == s.live.end() || self->current_sender() != caf::actor_cast<caf::strong_actor_ptr>(l->second.actor) ||
          l->second.routed != m.handled || s.holds.count(m.id))
        return;
      self->send_exit(l->second.actor, caf::exit_reason::user_shutdown);
      s.live.erase(l);
      auto& c = s.cold[m.id];
      c = cold_entry{std::move(m.state), m.seq, m.last, 0, 0};
      if (m.dirty) // snapshot on passivation
        save_snapshot(*s.ctx, self, m.id, c.state, c.seq, c.last);
      if (s.ctx->cfg.stats) {
        ++s.ctx->cfg.stats->passivations;
        --s.ctx->cfg.stats->resident;
      }
    },
    [=](query_atom, std::shared_ptr<const std::function<bool(const std::any&)>> pred)
      -> caf::result<std::vector<std::string>> {
      // Ids of the aggregates whose durable state matches: passivated ones are checked
      // here, resident ones are asked.
      if (!self->state.ready) {
        auto rp = self->make_response_promise();
        self->state.waiting_queries.emplace_back(std::move(pred), rp);
        return rp;
      }
      struct gather {
        std::vector<std::string> ids;
        std::size_t waiting = 0;
        caf::typed_response_promise<std::vector<std::string>> rp;
      };
      auto g = std::make_shared<gather>();
      g->rp = self->make_response_promise<std::vector<std::string>>();
      for (auto& [id, c] : self->state.cold)
        if ((*pred)(c.state))
          g->ids.push_back(id);
      g->waiting = self->state.live.size();
      if (g->waiting == 0)
        g->rp.deliver(std::move(g->ids));
      for (auto& [id, l] : self->state.live)
        self->request(l.actor, caf::infinite, query_atom::value, pred)
          .then(
            [g, id = id](bool match) {
              if (match)
                g->ids.push_back(id);
              if (--g->waiting == 0)
                g->rp.deliver(std::move(g->ids));
            },
            [g](caf::error&) {
              if (--g->waiting == 0)
                g->rp.deliver(std::move(g->ids));
            });
      return g->rp;
    },
  };
}

} // namespace

caf::actor spawn_partition(caf::actor_system& sys, context_ptr ctx, partition_id p) {
  return sys.spawn(partition_actor, std::move(ctx), p);
}

} // namespace cafes::detail
