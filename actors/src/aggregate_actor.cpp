// The aggregate actor: one persistent aggregate instance. Decides, persists, then replies.
#include <algorithm>
#include <chrono>
#include <vector>

#include "internal.hpp"
#include "logger.hpp"

namespace cafes::detail {

namespace {

struct waiting {
  command_msg msg;
  caf::response_promise rp;
};

struct in_flight {
  caf::response_promise rp;
  std::any reply;
  std::vector<std::any> events; // empty: a reply that waits only for the persists before it
  bool done = false;
  std::optional<cafes::error> err; // a rejection that waits for the persists before it
  std::uint64_t first_seq = 0;     // the seq of its first event (0: none)
};

struct aggregate_state {
  static inline const char* name = "cafes.aggregate";
  context_ptr ctx;
  caf::actor partition;
  aggregate_id id;
  partition_id p{0};
  std::any durable;     // state after the last durable event
  std::any speculative; // pipelining: state after the events in flight
  seq_nr seq{0};        // last durable sequence number
  std::uint64_t next_seq = 0;
  offset last{-1};      // journal offset of the last durable event
  std::uint64_t since_snapshot = 0;
  std::uint64_t handled = 0;
  std::uint64_t generation = 0; // bumped on failure: stale persist results are ignored
  // Vectors, not deques: an empty std::deque allocates about 600 bytes, and most aggregates
  // are idle with both queues empty. Both stay short (bounded by max_stash).
  std::vector<waiting> stash;
  std::vector<in_flight> flight;
  bool recovering = false;
  bool passivate_asked = false; // the partition wants it gone: offer once idle
  // A persist's outcome is unknown: its events may be in the journal or still land. Until a
  // catch-up read past a barrier resolves it, the aggregate takes no command, takes no
  // snapshot and does not passivate, and its partition holds the checkpoint back.
  bool needs_catch_up = false;
  // apply threw on the durable state: it is lost. Once no persist is in flight, the aggregate
  // rebuilds it from its latest snapshot and the journal (a catch-up from the snapshot);
  // commands wait meanwhile, as in a catch-up.
  bool restart = false;
  bool snapshot_wanted = false; // the partition asked for a snapshot while unresolved
  std::chrono::milliseconds retry{0}; // back-off of the next catch-up after a failed one
  // Its state cannot be rebuilt from the journal (apply threw while it was rebuilt, or the
  // journal holds a gap): every command gets this error; it never snapshots nor passivates,
  // and its partition keeps its events for the next start (stopped_msg).
  std::optional<cafes::error> stopped;
  std::uint64_t epoch = 0;             // the partition's ownership epoch (ce_cafesepoch)
  // The partition is handed over: what waits gets not_owner; the state goes back to the
  // partition once the persists in flight are answered.
  std::optional<caf::typed_response_promise<passivate_msg>> release;
};

using self_ptr = caf::stateful_actor<aggregate_state>*;

void pump(self_ptr self);
void catch_up(self_ptr self);

bool unresolved(const aggregate_state& st) {
  return st.needs_catch_up || st.restart || st.recovering;
}

void take_snapshot(self_ptr self) {
  auto& st = self->state;
  if (st.stopped)
    return;
  if (unresolved(st)) {
    st.snapshot_wanted = true; // a state that may miss events is never snapshotted
    return;
  }
  st.snapshot_wanted = false;
  if (st.seq.value() == 0)
    return;
  st.since_snapshot = 0;
  save_snapshot(*st.ctx, st.partition, st.id.str(), st.durable, st.seq, st.last);
}

void offer_passivation(self_ptr self) {
  auto& st = self->state;
  st.passivate_asked = false;
  if (!st.flight.empty() || !st.stash.empty() || unresolved(st) || st.stopped)
    return; // a state that may miss events never leaves the actor
  self->send(st.partition, passivate_msg{st.id.str(), st.handled, st.durable, st.seq, st.last, st.since_snapshot > 0});
}

// Delivers the replies at the front whose events are durable, in command order.
void deliver_ready(self_ptr self) {
  auto& st = self->state;
  while (!st.flight.empty() && (st.flight.front().done || st.flight.front().events.empty())) {
    auto& f = st.flight.front();
    f.rp.deliver(command_reply{std::move(f.err), std::move(f.reply)});
    st.flight.erase(st.flight.begin());
  }
}

// Fails every command in flight: the first failed persist's commands and, with pipelining,
// those decided on a state that included its events. Waiting commands stay: they are decided
// once the aggregate knows its durable state again.
void fail_in_flight(self_ptr self, const cafes::error& e) {
  auto& st = self->state;
  ++st.generation;
  for (auto& f : st.flight)
    f.rp.deliver(command_reply{e, {}});
  st.flight.clear();
  st.next_seq = st.seq.value();
  st.speculative.reset();
}

void fail_stash(self_ptr self, const cafes::error& e) {
  auto& st = self->state;
  for (auto& w : st.stash)
    w.rp.deliver(command_reply{e, {}});
  st.stash.clear();
}

void schedule_catch_up(self_ptr self) {
  auto& st = self->state;
  st.retry = std::clamp(st.retry * 2, std::chrono::milliseconds{100}, std::chrono::milliseconds{5000});
  self->delayed_send(self, st.retry, catchup_atom::value);
}

// Stops the aggregate until the node restarts: its state cannot be rebuilt from the journal.
void stop(self_ptr self, offset off, cafes::error e) {
  auto& st = self->state;
  st.stopped = e;
  self->send(st.partition, stopped_msg{st.id.str(), off, std::move(e)});
}

void restart(self_ptr self, const std::string& what) {
  auto& st = self->state;
  actors_log().warn("{}: apply threw on its durable state ({}); it restarts from its snapshot and the journal",
                    describe(*st.ctx, st.id.str()), what);
  ++st.ctx->cfg.stats->aggregate_restarts;
  st.restart = true;
  catch_up(self);
}

// Reads the events this aggregate may have written after its last known one, up to a
// barrier past which nothing of the failed persist can still land; for a restart, every
// event after its latest snapshot, up to the barrier, once no persist is in flight. Its
// partition holds the checkpoint meanwhile. If Kafka cannot be read now, waiting commands
// fail and it retries with a growing back-off.
void catch_up(self_ptr self) {
  auto& st = self->state;
  if (st.recovering || !(st.needs_catch_up || st.restart) || !st.flight.empty())
    return;
  st.recovering = true;
  auto gen = st.generation;
  const offset from{st.restart ? -1 : st.last.value() + 1}; // -1: from the latest snapshot
  self->request(st.partition, caf::infinite, catchup_atom::value, st.id.str(), from)
    .then(
      [=](catch_up_result& r) {
        auto& s = self->state;
        if (gen != s.generation)
          return;
        s.recovering = false;
        if (r.err) {
          actors_log().warn("catch-up of '{}' failed: {}", s.id.str(), r.err->to_string());
          fail_stash(self, cafes::error{actor_errc::persist_failed, "cannot read '" + s.id.str() +
                                                                        "' back from the journal: " +
                                                                        r.err->to_string()});
          schedule_catch_up(self);
          return;
        }
        if (s.restart) {
          s.durable = r.state.has_value() ? std::move(r.state) : s.ctx->cfg.ops->initial_state();
          s.seq = r.seq;
          s.last = r.last;
          s.since_snapshot = 0;
        }
        for (std::size_t i = 0; i < r.events.size(); ++i) {
          auto f = fold_event(*s.ctx, s.p, s.durable, s.seq, s.seq.value(), r.events[i], r.offsets[i]);
          if (f.what == folded::known)
            continue;
          if (f.what == folded::failed || (f.what == folded::threw && s.restart)) {
            // A gap, an event that does not decode, or an apply that threw while the state
            // was rebuilt: it would fail at every restart.
            stop(self, r.offsets[i], std::move(f.err));
            break;
          }
          if (f.what == folded::threw) // on the live state: the restart reads these events again
            return restart(self, f.thrown);
          s.last = r.offsets[i];
          ++s.since_snapshot;
          self->send(s.partition, persisted_msg{s.id.str(), s.seq, r.offsets[i], r.offsets[i], 1});
        }
        s.needs_catch_up = false;
        s.restart = false;
        s.retry = std::chrono::milliseconds{0};
        s.next_seq = s.seq.value();
        self->send(s.partition, resolved_msg{s.id.str()});
        self->send(s.ctx->journal_actor, unpoison_msg{s.id.str()});
        if (s.snapshot_wanted)
          take_snapshot(self);
        pump(self);
      },
      [=](caf::error& err) {
        auto& s = self->state;
        if (gen != s.generation)
          return;
        s.recovering = false;
        fail_stash(self, cafes::error{actor_errc::persist_failed, "catch-up failed: " + self->system().render(err)});
        schedule_catch_up(self);
      });
}

void on_persisted(self_ptr self, std::uint64_t gen, std::uint64_t first_seq, persist_res& r) {
  auto& st = self->state;
  if (gen != st.generation)
    return;
  if (r.err && *r.err == errc::fenced)
    r.err = cafes::error{actor_errc::not_owner, r.err->to_string()}; // another node owns the partition now
  if (r.err) {
    // A refusal (the journal's backlog bound) can overtake earlier persists of a pipelined
    // aggregate that are still in flight. Failing those would leave their events, which may
    // still land, out of the state: then the outcome is unknown as far as they go.
    auto oldest = std::find_if(st.flight.begin(), st.flight.end(), [](auto& f) { return !f.done && !f.events.empty(); });
    if (r.outcome == event_outcome::not_written && oldest != st.flight.end() && oldest->first_seq != first_seq)
      r.outcome = event_outcome::unknown;
    if (r.outcome == event_outcome::not_written) {
      // Refused before anything was written (overloaded, too large, …): the state is
      // still exact. Fail what built on it, keep the error's cause, and go on.
      fail_in_flight(self, *r.err);
      self->send(st.ctx->journal_actor, unpoison_msg{st.id.str()});
    } else {
      fail_in_flight(self, *r.err == actor_errc::not_owner
                             ? *r.err
                             : cafes::error{actor_errc::persist_failed,
                                            r.err->message.empty() ? r.err->to_string() : r.err->message});
      st.needs_catch_up = true;
    }
    catch_up(self); // after an unknown outcome, or a restart that waited for the persists in flight
    pump(self);
    return;
  }
  // The journal answers one aggregate's requests in order: this is the oldest undone one.
  auto it = std::find_if(st.flight.begin(), st.flight.end(), [](auto& f) { return !f.done && !f.events.empty(); });
  if (it == st.flight.end() || r.positions.size() != it->events.size()) {
    fail_in_flight(self, cafes::error{actor_errc::persist_failed, "journal answer does not match the request"});
    st.needs_catch_up = true;
    catch_up(self);
    pump(self);
    return;
  }
  // The same apply took these events at decide time, so it throws here only if it is not
  // deterministic. The events are durable: their command succeeds, and the lost state is
  // rebuilt from the journal. A state already lost takes no events: the restart reads them.
  std::optional<std::string> threw;
  if (!st.restart)
    threw = guarded([&] {
      for (auto& e : it->events)
        st.ctx->cfg.ops->apply(st.durable, e);
    });
  const auto n = it->events.size();
  st.seq = seq_nr{st.seq.value() + n};
  st.last = r.positions.back().off;
  it->done = true;
  st.ctx->cfg.stats->events_persisted += n;
  deliver_ready(self);
  if (threw)
    restart(self, *threw);
  else
    catch_up(self); // a restart waits for the last persist in flight
  st.since_snapshot += n;
  if (st.snapshot_wanted || (st.ctx->cfg.snapshot_every > 0 && st.since_snapshot >= st.ctx->cfg.snapshot_every))
    take_snapshot(self);
  pump(self);
}

// Returns why `state` cannot be snapshotted (too large, or not encodable), if it cannot.
std::optional<cafes::error> check_state(const host_context& ctx, const aggregate_id& id, std::uint64_t seq,
                                        const std::any& state) {
  auto enc = ctx.cfg.ops->encode_state(state);
  if (!enc)
    return enc.error();
  snapshot s{id, seq_nr{seq}, offset{0}, std::move(enc->type), enc->version, std::move(enc->bytes)};
  if (auto ok = check_snapshot(s, ctx.cfg.limits); !ok)
    return ok.error();
  return std::nullopt;
}

// handle, or apply on a copy of the state at decide time, threw: the command fails, nothing
// is written, and the aggregate goes on from its state, which neither touched.
cafes::error handler_failed(self_ptr self, std::string_view handler, const std::string& what) {
  auto& st = self->state;
  ++st.ctx->cfg.stats->handler_failures;
  cafes::error e{actor_errc::handler_failed, describe(*st.ctx, st.id.str()) + ": " + std::string{handler} +
                                               " threw: " + what};
  actors_log().warn("{}; the command fails, nothing is written", e.message);
  return e;
}

// Answers a command that writes nothing: at once, or after the persists before it, so that
// replies leave in command order.
void answer(self_ptr self, caf::response_promise& rp, std::optional<cafes::error> err, std::any reply) {
  auto& st = self->state;
  if (st.flight.empty())
    rp.deliver(command_reply{std::move(err), std::move(reply)});
  else
    st.flight.push_back(in_flight{rp, std::move(reply), {}, true, std::move(err), 0});
}

void pump(self_ptr self) {
  auto& st = self->state;
  const auto& ctx = *st.ctx;
  const bool pipelining = ctx.cfg.ops->pipelining();
  while (!unresolved(st) && !st.stash.empty() && (st.flight.empty() || pipelining)) {
    auto w = std::move(st.stash.front());
    st.stash.erase(st.stash.begin());
    if (st.stopped) {
      w.rp.deliver(command_reply{*st.stopped, {}});
      continue;
    }
    if (st.flight.empty())
      st.speculative.reset();
    const std::any& base = st.speculative.has_value() ? st.speculative : st.durable;
    decided d;
    if (auto what = guarded([&] { d = ctx.cfg.ops->decide(base, w.msg.command); })) {
      answer(self, w.rp, handler_failed(self, "handle", *what), {});
      continue;
    }
    if (d.rejection) {
      ++ctx.cfg.stats->rejections;
      answer(self, w.rp, std::move(d.rejection), {});
      continue;
    }
    // reply_with: the reply is a function of the state after the events (base if none).
    auto reply_from = [&](const std::any& next) -> std::optional<cafes::error> {
      if (!d.reply_from)
        return std::nullopt;
      std::optional<cafes::error> err;
      if (auto what = guarded([&] {
            auto r = d.reply_from(next);
            if (r)
              d.reply = std::move(*r);
            else
              err = std::move(r).error();
          }))
        return handler_failed(self, "reply_with", *what);
      return err;
    };
    if (d.events.empty()) {
      if (auto err = reply_from(base))
        answer(self, w.rp, std::move(err), {});
      else
        answer(self, w.rp, std::nullopt, std::move(d.reply));
      continue;
    }
    std::vector<event_envelope> envs;
    std::optional<cafes::error> bad;
    auto seq = st.next_seq;
    for (auto& ev : d.events) {
      auto enc = ctx.cfg.ops->encode_event(ev);
      if (!enc) {
        bad = enc.error();
        break;
      }
      event_envelope e;
      e.id = st.id;
      e.seq = seq_nr{++seq};
      e.type = std::move(enc->type);
      e.schema_version = enc->version;
      e.source = ctx.source;
      e.command_id = w.msg.command_id;
      e.writer_node = ctx.cfg.node_name;
      e.writer_epoch = st.epoch;
      e.payload = std::move(enc->bytes);
      // Check the limits here, so that one bad event never fails other aggregates' batch.
      if (auto r = check_event(e, ctx.cfg.journal->topic(), ctx.cfg.limits); !r) {
        bad = r.error();
        break;
      }
      envs.push_back(std::move(e));
    }
    // The state after these events must still fit a snapshot: one that cannot be snapshotted
    // would hold its partition's checkpoint back for good, and recovery would be unbounded.
    // And apply must take them: an event it rejects is never written, or it would stop the
    // aggregate at every recovery.
    std::any next = base;
    if (!bad) {
      if (auto what = guarded([&] {
            for (auto& ev : d.events)
              ctx.cfg.ops->apply(next, ev);
          })) {
        answer(self, w.rp, handler_failed(self, "apply", *what), {});
        continue;
      }
      bad = check_state(ctx, st.id, seq, next);
      if (!bad)
        if (auto err = reply_from(next)) {
          answer(self, w.rp, std::move(err), {});
          continue;
        }
    }
    if (bad) {
      ++ctx.cfg.stats->rejections;
      answer(self, w.rp, std::move(bad), {});
      continue;
    }
    if (pipelining)
      st.speculative = std::move(next);
    const auto first = st.next_seq + 1;
    st.next_seq = seq;
    st.flight.push_back(in_flight{w.rp, std::move(d.reply), std::move(d.events), false, std::nullopt, first});
    auto gen = st.generation;
    self->request(ctx.journal_actor, caf::infinite, persist_req{std::move(envs)})
      .then([=](persist_res& r) { on_persisted(self, gen, first, r); },
            [=](caf::error& err) {
              persist_res r;
              r.err = cafes::error{actor_errc::persist_failed, self->system().render(err)};
              r.outcome = event_outcome::unknown;
              on_persisted(self, gen, first, r);
            });
  }
  if (st.release && st.flight.empty()) {
    st.release->deliver(passivate_msg{st.id.str(), st.handled, st.durable, st.seq, st.last, st.since_snapshot > 0,
                                      !unresolved(st) && !st.stopped});
    st.release.reset();
    return;
  }
  if (st.passivate_asked && st.flight.empty() && st.stash.empty() && !unresolved(st))
    offer_passivation(self);
}

cafes::error handed_over(const aggregate_state& st) {
  return cafes::error{actor_errc::not_owner, "the partition of '" + st.id.str() + "' is being handed over"};
}

caf::behavior aggregate_actor(self_ptr self, context_ptr ctx, caf::actor partition, aggregate_start start) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.partition = std::move(partition);
  st.id = aggregate_id::unchecked(std::move(start.id));
  st.p = start.p;
  st.durable = start.state.has_value() ? std::move(start.state) : st.ctx->cfg.ops->initial_state();
  st.seq = start.seq;
  st.next_seq = start.seq.value();
  st.last = start.last;
  st.since_snapshot = start.since_snapshot;
  st.epoch = start.epoch;
  return {
    [=](command_msg& m) {
      auto& s = self->state;
      ++s.handled;
      auto rp = self->make_response_promise();
      if (s.release) {
        rp.deliver(command_reply{handed_over(s), {}});
        return;
      }
      if (s.stash.size() >= s.ctx->cfg.max_stash) {
        rp.deliver(command_reply{cafes::error{actor_errc::overloaded, "aggregate '" + s.id.str() + "' has " +
                                                                          std::to_string(s.stash.size()) +
                                                                          " commands waiting"},
                                 {}});
        return;
      }
      s.stash.push_back(waiting{std::move(m), rp});
      pump(self);
    },
    [=](snapshot_now_msg) {
      // The partition learns of a persist before its aggregate does: with one in flight, the
      // snapshot waits for it, or it would miss the very event the partition asks about.
      // Always answered, so that the partition may ask again later.
      if (!self->state.flight.empty())
        self->state.snapshot_wanted = true;
      else
        take_snapshot(self);
    },
    [=](catchup_atom) { catch_up(self); },
    [=](release_atom) {
      auto& s = self->state;
      s.release = self->make_response_promise<passivate_msg>();
      auto rp = *s.release;
      fail_stash(self, handed_over(s));
      pump(self);
      return rp;
    },
    [=](query_atom, std::shared_ptr<const std::function<bool(const std::any&)>> pred) {
      auto& s = self->state;
      return !s.stopped && !s.restart && (*pred)(s.durable); // a lost state matches nothing
    },
    [=](passivate_now_msg) {
      auto& s = self->state;
      if (s.flight.empty() && s.stash.empty() && !unresolved(s))
        offer_passivation(self);
      else
        s.passivate_asked = true;
    },
    caf::after(st.ctx->cfg.idle_timeout) >> [=] { offer_passivation(self); },
  };
}

} // namespace

caf::actor spawn_aggregate(caf::local_actor* parent, context_ptr ctx, caf::actor partition, aggregate_start start) {
  return parent->spawn(aggregate_actor, std::move(ctx), std::move(partition), std::move(start));
}

} // namespace cafes::detail
