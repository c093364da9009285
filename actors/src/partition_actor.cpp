// The partition actor: hosts one partition's aggregates, keeps recovery bounded, releases.
#include "logger.hpp"
#include "partition.hpp"

namespace cafes::detail::part {


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

// Stops the partition's live aggregates (they are not linked to it: passivation ends them).
void stop_aggregates(self_ptr self, const caf::error& reason) {
  auto& st = self->state;
  for (auto& [id, l] : st.live)
    self->send_exit(l.actor, reason);
  st.ctx->cfg.stats->resident -= st.live.size();
  st.live.clear();
}

// Takes the partition out of host_stats' ready and failed gauges.
void uncount(partition_state& st) {
  if (st.counted == partition_state::counted_ready)
    --st.ctx->cfg.stats->partitions_ready;
  else if (st.counted == partition_state::counted_failed)
    --st.ctx->cfg.stats->partitions_failed;
  st.counted = partition_state::uncounted;
}

void lose(self_ptr self, const cafes::error& why) {
  auto& st = self->state;
  if (st.lost)
    return;
  st.lost = true;
  actors_log().warn("partition {}/{} stops serving: {}; it is taken over again if this node still owns it",
                    st.ctx->cfg.journal->topic(), st.p.value(), why.to_string());
  st.failure = cafes::error{actor_errc::not_owner, "partition " + std::to_string(st.p.value()) + " of " +
                                                     st.ctx->cfg.journal->topic() + " stopped serving: " + why.message};
  st.ready = true; // what waits for the recovery gets the failure
  uncount(st);
  serve_stash(self);
  self->send(st.owner, lost_atom::value, st.p.value(), why == errc::fenced || st.ctx->cfg.journal->fenced(st.p));
}

// Loses the partition if its writer is lost (see lose); returns whether it was.
bool lost_writer(self_ptr self) {
  auto& st = self->state;
  if (st.lost)
    return true;
  if (st.standby || st.releasing || !st.ctx->cfg.journal->lost(st.p))
    return false;
  lose(self, cafes::error{actor_errc::not_owner, "its writer is lost (fenced by a newer owner, or its producer "
                                                 "failed)"});
  return true;
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
  if (!st.failure)
    lost_writer(self);
  if (st.failure) {
    rp.deliver(command_reply{*st.failure, {}});
    return;
  }
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
    auto a = spawn_aggregate(self, st.ctx, self, std::move(start));
    l = st.live.emplace(m.id, live_entry{a, 0, 0}).first;
    ++st.ctx->cfg.stats->activations;
    ++st.ctx->cfg.stats->resident;
    evict(self);
  }
  ++l->second.routed;
  l->second.tick = ++st.tick;
  rp.delegate(l->second.actor, std::move(m));
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
    uncount(s);
    stop_aggregates(self, caf::exit_reason::user_shutdown); // a failed partition did not ask them back
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
  if (st.failure) // nothing can be written (a lost writer, a failed recovery)
    return finish_release(self);
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
    --st.ctx->cfg.stats->resident;
  }
  if (m.resolved)
    st.cold[m.id] = cold_entry{std::move(m.state), m.seq, m.last, m.dirty ? 1u : 0u, 0};
  else // its state may miss events: never snapshotted, its events stay above the checkpoint
    st.cold.erase(m.id);
}

caf::behavior partition_actor(self_ptr self, context_ptr ctx, partition_id p, caf::actor owner, bool standby) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.p = p;
  st.owner = std::move(owner);
  st.assigned = st.ctx->cfg.stats->start();
  st.io = spawn_io(self, st.ctx, p);
  // Stopping a partition stops its aggregates.
  self->set_exit_handler([=](caf::exit_msg& em) {
    stop_aggregates(self, em.reason);
    self->quit(em.reason);
  });
  if (standby)
    start_standby(self);
  else
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
      auto rp = self->make_response_promise();
      if (lost_writer(self)) {
        catch_up_result r;
        r.err = *s.failure;
        rp.deliver(std::move(r));
        return;
      }
      if (auto h = s.holds.find(id); h != s.holds.end() && from.value() >= 0)
        from = offset{std::max(from.value(), h->second)};
      rp.delegate(s.io, a, std::move(id), from);
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
      if (!s.ready) {
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
    [=](read_atom) { // a standby's next tail read
      auto& s = self->state;
      if (!s.standby || !s.tail_idle || s.promote_pending)
        return;
      s.tail_idle = false;
      replay(self, offset{s.end});
    },
    [=](promote_atom) {
      promote(self);
      return true;
    },
    [=](owned_atom) {
      auto& s = self->state;
      return owned_partition{s.p.value(), s.epoch, s.ready};
    },
    [=](owned_atom, stats_atom) {
      auto& s = self->state;
      const auto phase = s.releasing ? partition_phase::releasing
                         : !s.ready  ? partition_phase::recovering
                         : s.failure ? partition_phase::failed
                                     : partition_phase::ready;
      return partition_detail{s.p.value(), s.epoch,       phase,         s.stored_checkpoint, s.end,
                              s.live.size(), s.cold.size(), s.stopped.size()};
    },
    [=](snapshot_done_msg& m) {
      auto& s = self->state;
      s.snapshot_requested.erase(m.id);
      if (m.err) {
        ++s.ctx->cfg.stats->snapshot_failures;
        actors_log().warn("snapshot of '{}' failed: {}", m.id, m.err->to_string());
        if (lost_writer(self))
          return;
      } else {
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
      ++s.ctx->cfg.stats->passivations;
      --s.ctx->cfg.stats->resident;
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

} // namespace cafes::detail::part

namespace cafes::detail {

caf::actor spawn_partition(caf::actor_system& sys, context_ptr ctx, partition_id p, caf::actor owner, bool standby) {
  return sys.spawn(part::partition_actor, std::move(ctx), p, std::move(owner), standby);
}

} // namespace cafes::detail
