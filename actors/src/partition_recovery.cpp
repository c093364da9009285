// Recovering a partition: fence older owners, read snapshots and the checkpoint, claim the
// epoch, replay the journal from the checkpoint, then serve.
#include "logger.hpp"
#include "partition.hpp"

namespace cafes::detail::part {

void finish_recovery(self_ptr self) {
  auto& st = self->state;
  st.ready = true;
  st.ctx->cfg.stats->recovered(st.assigned);
  st.ctx->cfg.stats->aggregates_recovered += st.cold.size();
  ++st.ctx->cfg.stats->partitions_ready;
  st.counted = partition_state::counted_ready;
  notify_settled(*st.ctx);
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

// Whether a recovery that failed with `e` may succeed when tried again: Kafka was unreachable
// or slow, or the writer was lost. A gap, a repeat or a record that does not decode stays.
bool passing(const cafes::error& e) {
  return e == errc::timeout || e == errc::broker_unavailable || e == errc::fenced || e == errc::kafka_error ||
         e == errc::fatal || e == errc::transaction_aborted || e == errc::not_owned || e == errc::unauthorized ||
         e == errc::tls_failed ||
         e == actor_errc::recovery_failed;
}

void fail_recovery(self_ptr self, cafes::error e) {
  auto& st = self->state;
  if (st.standby && !st.promote_pending) { // the owner actor starts a new standby if it still wants one
    actors_log().warn("standby of partition {}/{} stops: {}", st.ctx->cfg.journal->topic(), st.p.value(),
                      e.to_string());
    return self->quit(caf::exit_reason::user_shutdown);
  }
  if (passing(e))
    return lose(self, e);
  actors_log().error("partition {}/{} stops: {}", st.ctx->cfg.journal->topic(), st.p.value(), e.to_string());
  st.standby = false; // a standby promoted meanwhile fails as its owner
  st.failure = cafes::error{actor_errc::recovery_failed, e.to_string()};
  st.ready = true;
  if (st.counted == partition_state::counted_ready)
    --st.ctx->cfg.stats->partitions_ready;
  if (st.counted != partition_state::counted_failed)
    ++st.ctx->cfg.stats->partitions_failed;
  st.counted = partition_state::counted_failed;
  notify_settled(*st.ctx);
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
  auto f = fold_event(*st.ctx, st.p, c.state, c.seq, c.snapshot_seq, ev, off);
  switch (f.what) {
    case folded::known: return {};
    case folded::failed: return f.err;
    case folded::threw: stop(st, ev.id.str(), off.value(), f.err); return {};
    case folded::applied: break;
  }
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
  (s.standby ? s.ctx->cfg.stats->standby_events : s.ctx->cfg.stats->events_replayed) += r.chunk.events.size();
  for (std::size_t i = 0; i < r.chunk.events.size(); ++i) {
    if (auto ok = replay_one(s, r.chunk.events[i], r.chunk.offsets[i]); !ok) {
      ++s.ctx->cfg.stats->sequence_errors;
      return fail_recovery(self, ok.error());
    }
    s.end = r.chunk.offsets[i].value() + 1;
  }
  s.end = std::max(s.end, r.chunk.next.value());
  if (!r.chunk.end)
    return;
  if (!s.standby)
    return finish_recovery(self);
  if (s.promote_pending)
    return promote(self);
  s.tail_idle = true; // read again a little later
  self->delayed_send(self, s.ctx->cfg.standby_poll, read_atom::value);
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

// One step of a recovery: asks the I/O actor, then, unless the partition is being released
// meanwhile, fails the recovery on an error or goes on with `next(answer)`.
template <class R, class F, class... Ts>
void io_step(self_ptr self, F next, Ts... xs) {
  self->request(self->state.io, caf::infinite, xs...)
    .then(
      [=](R& r) {
        if (self->state.releasing)
          return;
        if (r.err)
          return fail_recovery(self, *r.err);
        next(r);
      },
      recovery_error(self));
}

// Opens the partition's writer, which fences every older owner (and finishes or aborts its
// last transaction), so that nothing of an older owner can land after the journal is read;
// then runs `next`.
template <class F>
void open_writer(self_ptr self, F next) {
  io_step<io_result>(self, [=](io_result&) { next(); }, open_atom::value);
}

// Taking the partition over cold: open the writer, read the snapshots and the mark, claim the
// epoch, replay from the checkpoint.
void recover(self_ptr self) {
  open_writer(self, [=] { scan(self); });
}

// Stores the new owner's epoch (one more than the last owner's) with the checkpoint the
// recovery starts from, through the freshly opened writer, then replays. A node never writes
// an event of an epoch it has not stored: epochs grow with every change of owner.
void claim_epoch(self_ptr self, std::int64_t from, std::uint64_t last_epoch, std::int64_t replay_from) {
  const auto epoch = last_epoch + 1;
  io_step<checkpoint_result>(
    self,
    [=](checkpoint_result&) {
      auto& s = self->state;
      s.epoch = epoch;
      actors_log().debug("partition {}/{}: epoch {}", s.ctx->cfg.journal->topic(), s.p.value(), epoch);
      replay(self, offset{replay_from});
    },
    checkpt_atom::value, offset{from}, epoch);
}

void scan(self_ptr self) {
  io_step<scan_result>(
    self,
    [=](scan_result& r) {
      auto& s = self->state;
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
      if (!s.standby)
        s.ctx->cfg.stats->snapshots_read += r.snapshots.size();
      s.ctx->cfg.stats->corrupt_snapshots += r.corrupt;
      // A corrupt snapshot means the checkpoint cannot be trusted for its aggregate: replay
      // the partition from its start (logged above and counted), never lose events.
      std::int64_t from = 0;
      if (r.mark && !fallback)
        from = r.mark->checkpoint.value();
      s.stored_checkpoint = from;
      s.bound_checkpoint = from;
      s.end = std::max(s.end, from);
      if (s.standby)
        return replay(self, offset{from});
      claim_epoch(self, from, r.mark ? r.mark->epoch : 0, from);
    },
    scan_atom::value);
}

void start_standby(self_ptr self) {
  self->state.standby = true;
  scan(self);
}

// The previous owner's checkpoint `c` says that every event below it is covered by a
// snapshot, including those this standby did not see: the aggregates it tracked as uncovered
// there are covered up to it.
void cover_below(partition_state& st, std::int64_t c) {
  std::vector<std::string> ids;
  for (auto i = st.holders.begin(); i != st.holders.end() && i->first < c; ++i)
    ids.insert(ids.end(), i->second.begin(), i->second.end());
  for (auto& id : ids) {
    auto& t = st.tracks[id];
    set_uncovered(st, id, t.last >= c ? c : -1);
  }
}

void promote(self_ptr self) {
  auto& st = self->state;
  if (!st.tail_idle && !st.promote_pending) { // a read is in flight: promote at its end
    st.promote_pending = true;
    return;
  }
  st.standby = false;
  st.promote_pending = false;
  st.tail_idle = false;
  st.assigned = st.ctx->cfg.stats->start();
  ++st.ctx->cfg.stats->promotions;
  // As a cold takeover: open the writer first, read the stored mark, claim the next epoch.
  open_writer(self, [=] {
    io_step<mark_result>(
      self,
      [=](mark_result& m) {
        auto& s = self->state;
        // A corrupt mark: stores from 0, as a cold takeover would, and loses nothing.
        const auto c = m.mark ? std::min(m.mark->checkpoint.value(), s.end) : 0;
        cover_below(s, c);
        s.stored_checkpoint = c;
        s.bound_checkpoint = c;
        actors_log().debug("partition {}/{}: standby promoted at offset {} (checkpoint {})",
                           s.ctx->cfg.journal->topic(), s.p.value(), s.end, c);
        claim_epoch(self, c, m.mark ? m.mark->epoch : 0, s.end);
      },
      mark_atom::value);
  });
}

} // namespace cafes::detail::part
