// Spawning the actors that host one aggregate type, and the owner of its partition table.
#include "cafes/actors/host.hpp"

#include <map>
#include <utility>

#include "cafes/persistence/partitioner.hpp"
#include "internal.hpp"
#include "logger.hpp"

namespace cafes {

namespace {

struct owner_state {
  static inline const char* name = "cafes.owner";
  detail::context_ptr ctx;
  std::vector<caf::actor> parts;     // owned and serving (null: not owned)
  std::vector<caf::actor> writers;   // what the journal actor settles batches with (releasing ones too)
  std::map<std::int32_t, std::vector<caf::response_promise>> assign_after; // assigned while releasing
  std::vector<caf::actor> standbys;  // hot standbys of partitions other nodes own (null: none)
  // Partitions that stopped on their own (their writer was lost, or their recovery failed on
  // a Kafka error) and are taken over again after a pause that grows while they keep failing.
  struct retake {
    bool pending = false;
    int failures = 0; // pauses so far
    std::chrono::steady_clock::time_point last{}; // when it last stopped
  };
  std::vector<retake> retakes;
};

using owner_ptr = caf::stateful_actor<owner_state>*;

// The first pause before a partition that stopped on its own is taken over again: long
// enough for a zombie's group member to hear of its expulsion first.
constexpr std::chrono::milliseconds retake_pause{500};

void publish_writers(owner_ptr self) {
  self->send(self->state.ctx->journal_actor, partitions_msg{self->state.writers});
}

// Starts a hot standby of partition p (watched: one that stops is started again).
void start_standby(owner_ptr self, std::int32_t p) {
  auto& st = self->state;
  auto a = detail::spawn_partition(self->system(), st.ctx, partition_id{p}, caf::actor_cast<caf::actor>(self), true);
  self->monitor(a);
  st.standbys[static_cast<std::size_t>(p)] = a;
  ++st.ctx->cfg.stats->standbys;
}

// Takes p's standby out of the standby table (it stops, or becomes the owner).
caf::actor take_standby(owner_ptr self, std::int32_t p) {
  auto& st = self->state;
  auto a = std::exchange(st.standbys[static_cast<std::size_t>(p)], nullptr);
  if (a) {
    self->demonitor(a);
    --st.ctx->cfg.stats->standbys;
  }
  return a;
}

// Spawns the owning partition actor of p, watched: one that dies is taken over again.
caf::actor spawn_owned(owner_ptr self, std::int32_t p) {
  auto a = detail::spawn_partition(self->system(), self->state.ctx, partition_id{p}, caf::actor_cast<caf::actor>(self));
  self->monitor(a);
  return a;
}

caf::actor assign(owner_ptr self, std::int32_t p) {
  auto& st = self->state;
  st.retakes[static_cast<std::size_t>(p)].pending = false;
  caf::actor a = take_standby(self, p);
  if (a) {
    // Warm: it replays only what it has not read. A standby that stopped just before (its
    // DOWN not seen yet) is replaced by a cold takeover.
    self->request(a, caf::infinite, promote_atom::value)
      .then([](bool) {},
            [=](caf::error&) {
              auto& s = self->state;
              const auto i = static_cast<std::size_t>(p);
              if (s.parts[i] != a)
                return;
              self->demonitor(a);
              s.parts[i] = s.writers[i] = spawn_owned(self, p);
              publish_writers(self);
            });
    self->monitor(a);
  } else {
    a = spawn_owned(self, p);
  }
  st.parts[static_cast<std::size_t>(p)] = a;
  st.writers[static_cast<std::size_t>(p)] = a;
  ++st.ctx->cfg.stats->partitions_owned;
  ++st.ctx->cfg.stats->assignments;
  return a;
}

// Asks every owned partition the same request and merges the answers into one (a partition
// that fails to answer contributes nothing).
template <class Out, class T, class Merge, class... Ts>
caf::typed_response_promise<Out> gather(owner_ptr self, Merge merge, Ts... xs) {
  struct acc {
    Out out;
    std::size_t waiting = 0;
    caf::typed_response_promise<Out> rp;
  };
  auto g = std::make_shared<acc>();
  g->rp = self->make_response_promise<Out>();
  for (auto& a : self->state.parts)
    if (a)
      ++g->waiting;
  if (g->waiting == 0)
    g->rp.deliver(Out{});
  for (auto& a : self->state.parts) {
    if (!a)
      continue;
    self->request(a, caf::infinite, xs...)
      .then(
        [g, merge](T& x) {
          merge(g->out, x);
          if (--g->waiting == 0)
            g->rp.deliver(std::move(g->out));
        },
        [g](caf::error&) {
          if (--g->waiting == 0)
            g->rp.deliver(std::move(g->out));
        });
  }
  return g->rp;
}

// Asks again after a pause that doubles with each failure in a row, up to 8 s.
void schedule_retake(owner_ptr self, std::int32_t p) {
  auto& r = self->state.retakes[static_cast<std::size_t>(p)];
  const auto pause = std::min(retake_pause * (1 << std::min(r.failures++, 4)), std::chrono::milliseconds{8000});
  actors_log().info("partition {}/{} is taken over again in {} ms", self->state.ctx->cfg.journal->topic(), p,
                    pause.count());
  self->delayed_send(self, pause, retake_atom::value, p);
}

// Partition p stopped serving on its own (see part::lose), or died: it is taken over again
// after a pause, unless the group revokes it meanwhile. A takeover fences every other writer
// and recovers, so that even a wrong one serves nothing stale; in cluster mode it waits for
// the group to confirm that this node still holds p, so that a zombie (paused past its
// session, not told of its expulsion yet) takes nothing back. In single-node mode, a
// partition fenced by another writer is given up: another node runs on this namespace.
void want_back(owner_ptr self, std::int32_t p, bool fenced) {
  auto& s = self->state;
  if (fenced && !s.ctx->cfg.still_owned) {
    actors_log().warn("partition {}/{} was fenced by another writer; this node gives it up (is another node "
                      "running on this namespace in single-node mode?)",
                      s.ctx->cfg.journal->topic(), p);
    return;
  }
  auto& r = s.retakes[static_cast<std::size_t>(p)];
  const auto now = std::chrono::steady_clock::now();
  if (now - r.last > std::chrono::minutes{1}) // not a partition that keeps stopping
    r.failures = 0;
  r.last = now;
  r.pending = true;
}

// Releases partition p (no longer in `parts`): it answers what waits with not_owner, drains,
// snapshots, stores its checkpoint and closes its writer (a lost one skips what it cannot
// write), then stops. Once released (or dead: then it writes nothing more either), it is
// forgotten, an assign that waited for it takes it over, and `then` runs.
template <class F>
void release(owner_ptr self, std::int32_t p, caf::actor a, F then) {
  auto released = [=](std::optional<caf::error> err) mutable {
    auto& s = self->state;
    s.writers[static_cast<std::size_t>(p)] = nullptr;
    --s.ctx->cfg.stats->partitions_owned;
    detail::notify_settled(*s.ctx);
    if (auto i = s.assign_after.find(p); i != s.assign_after.end()) {
      auto waiting = std::move(i->second);
      s.assign_after.erase(i);
      assign(self, p);
      for (auto& w : waiting)
        w.deliver(true);
    }
    publish_writers(self);
    then(std::move(err));
  };
  self->request(a, caf::infinite, release_atom::value)
    .then([=](bool) mutable { released(std::nullopt); }, [=](caf::error& err) mutable { released(err); });
}

caf::behavior owner_actor(owner_ptr self, detail::context_ptr ctx) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  const auto n = static_cast<std::size_t>(st.ctx->cfg.journal->partitions());
  st.parts.resize(n);
  st.writers.resize(n);
  st.standbys.resize(n);
  st.retakes.resize(n);
  // Stopping the owner stops its partitions (releasing ones too).
  self->set_exit_handler([=](caf::exit_msg& em) {
    for (auto* v : {&self->state.writers, &self->state.standbys})
      for (auto& a : *v)
        if (a)
          self->send_exit(a, em.reason);
    self->quit(em.reason);
  });
  // A standby that stopped (Kafka errors while it read, a gap in the journal) starts again
  // after a pause. An owned partition that died is taken over again (see want_back).
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& s = self->state;
    for (std::size_t p = 0; p < s.standbys.size(); ++p)
      if (s.standbys[p] && s.standbys[p].address() == dm.source) {
        take_standby(self, static_cast<std::int32_t>(p));
        self->delayed_send(self, std::chrono::seconds{5}, standby_atom::value, static_cast<std::int32_t>(p), true);
      }
    for (std::size_t p = 0; p < s.parts.size(); ++p)
      if (s.parts[p] && s.parts[p].address() == dm.source) {
        actors_log().error("partition {}/{} died: {}", s.ctx->cfg.journal->topic(), p, self->system().render(dm.reason));
        s.parts[p] = s.writers[p] = nullptr;
        --s.ctx->cfg.stats->partitions_owned;
        detail::notify_settled(*s.ctx);
        publish_writers(self);
        want_back(self, static_cast<std::int32_t>(p), false);
        if (s.retakes[p].pending)
          schedule_retake(self, static_cast<std::int32_t>(p));
      }
  });
  return {
    [=](partitions_msg& initial) { // the partitions spawn_host assigned (its first message)
      auto& s = self->state;
      for (std::size_t p = 0; p < initial.partitions.size(); ++p) {
        s.parts[p] = s.writers[p] = initial.partitions[p];
        self->monitor(initial.partitions[p]);
      }
      publish_writers(self);
    },
    [=](command_msg& m) {
      auto& s = self->state;
      auto rp = self->make_response_promise();
      auto p = partition_for(m.id, static_cast<std::int32_t>(s.parts.size())).value();
      if (auto& a = s.parts[static_cast<std::size_t>(p)])
        rp.delegate(a, std::move(m));
      else if (s.retakes[static_cast<std::size_t>(p)].pending)
        rp.deliver(command_reply{cafes::error{actor_errc::not_owner, "partition " + std::to_string(p) + " of " +
                                                                         s.ctx->cfg.journal->topic() +
                                                                         " is being taken over again"},
                                 {}});
      else if (s.ctx->cfg.forwarder && !m.routed)
        rp.delegate(s.ctx->cfg.forwarder, forward_msg{std::string{s.ctx->cfg.ops->name()}, p, std::move(m)});
      else
        rp.deliver(command_reply{cafes::error{actor_errc::not_owner, "partition " + std::to_string(p) + " of " +
                                                                         s.ctx->cfg.journal->topic() +
                                                                         " is not owned by this node"},
                                 {}});
    },
    [=](assign_atom, std::int32_t p) -> caf::result<bool> {
      auto& s = self->state;
      if (p < 0 || static_cast<std::size_t>(p) >= s.parts.size())
        return caf::sec::invalid_argument;
      if (s.parts[static_cast<std::size_t>(p)])
        return true;
      if (s.writers[static_cast<std::size_t>(p)]) { // still releasing: take it over once released
        auto rp = self->make_response_promise();
        s.assign_after[p].push_back(rp);
        return rp;
      }
      assign(self, p);
      publish_writers(self);
      return true;
    },
    [=](revoke_atom, std::int32_t p) -> caf::result<bool> {
      auto& s = self->state;
      if (p < 0 || static_cast<std::size_t>(p) >= s.parts.size())
        return caf::sec::invalid_argument;
      s.retakes[static_cast<std::size_t>(p)].pending = false; // the group took it away
      auto a = s.parts[static_cast<std::size_t>(p)];
      if (!a)
        return true;
      // New commands get not_owner at once; the partition answers once released.
      s.parts[static_cast<std::size_t>(p)] = nullptr;
      auto rp = self->make_response_promise<bool>();
      release(self, p, a, [=](std::optional<caf::error> err) mutable {
        ++self->state.ctx->cfg.stats->revocations;
        if (err)
          rp.deliver(std::move(*err));
        else
          rp.deliver(true);
      });
      return rp;
    },
    [=](lost_atom, std::int32_t p, bool fenced) {
      // Partition p stopped serving: its writer was lost, or its recovery failed on a Kafka
      // error. It is released (it cannot write, so it only answers what waits and closes),
      // then taken over again.
      auto& s = self->state;
      const auto i = static_cast<std::size_t>(p);
      auto a = s.parts[i];
      if (!a || a != caf::actor_cast<caf::actor>(self->current_sender()))
        return; // revoked meanwhile, or an earlier incarnation
      s.parts[i] = nullptr;
      want_back(self, p, fenced);
      release(self, p, a, [=](std::optional<caf::error>) {
        if (self->state.retakes[static_cast<std::size_t>(p)].pending && !self->state.parts[static_cast<std::size_t>(p)])
          schedule_retake(self, p);
      });
    },
    [=](retake_atom, std::int32_t p) {
      auto& s = self->state;
      const auto i = static_cast<std::size_t>(p);
      if (!s.retakes[i].pending || s.parts[i] || s.writers[i])
        return;
      if (!s.ctx->cfg.still_owned)
        return self->send(self, retake_atom::value, p, true);
      // Asked off the actor's thread: the group coordinator answers within a round trip.
      auto me = caf::actor_cast<caf::actor>(self);
      auto ask = s.ctx->cfg.still_owned;
      self->spawn<caf::detached>([=](caf::event_based_actor* helper) {
        helper->send(me, retake_atom::value, p, ask(p));
        helper->quit();
      });
    },
    [=](retake_atom, std::int32_t p, bool confirmed) {
      auto& s = self->state;
      const auto i = static_cast<std::size_t>(p);
      if (!s.retakes[i].pending || s.parts[i] || s.writers[i])
        return;
      if (!confirmed) // a rebalance (revoke or not) is on its way; ask again meanwhile
        return schedule_retake(self, p);
      ++s.ctx->cfg.stats->retakes;
      assign(self, p);
      publish_writers(self);
    },
    [=](standby_atom, std::int32_t p, bool on) -> caf::result<bool> {
      auto& s = self->state;
      if (p < 0 || static_cast<std::size_t>(p) >= s.parts.size())
        return caf::sec::invalid_argument;
      const auto i = static_cast<std::size_t>(p);
      if (!on) {
        if (auto a = take_standby(self, p))
          self->send_exit(a, caf::exit_reason::user_shutdown);
      } else if (!s.standbys[i] && !s.writers[i]) { // not owned, nor being released
        start_standby(self, p);
      }
      return true;
    },
    [=](standby_atom) {
      std::vector<std::int32_t> out;
      for (std::size_t p = 0; p < self->state.standbys.size(); ++p)
        if (self->state.standbys[p])
          out.push_back(static_cast<std::int32_t>(p));
      return out;
    },
    [=](owned_atom a) {
      return gather<std::vector<owned_partition>, owned_partition>(
        self, [](auto& out, owned_partition& x) { out.push_back(x); }, a);
    },
    [=](owned_atom a, stats_atom s) {
      return gather<std::vector<partition_detail>, partition_detail>(
        self, [](auto& out, partition_detail& x) { out.push_back(x); }, a, s);
    },
    [=](query_atom q, std::shared_ptr<const std::function<bool(const std::any&)>> pred) {
      return gather<std::vector<std::string>, std::vector<std::string>>(
        self, [](auto& out, std::vector<std::string>& ids) { out.insert(out.end(), ids.begin(), ids.end()); }, q,
        std::move(pred));
    },
  };
}

} // namespace

hosted spawn_host(caf::actor_system& sys, host_config cfg) {
  if (!cfg.stats)
    cfg.stats = std::make_shared<host_stats>();
  hosted h;
  h.stats = cfg.stats;
  h.ops = cfg.ops;
  h.partition_count = cfg.journal->partitions();
  h.journal_actor = spawn_journal_actor(sys, cfg.journal, cfg.batching, cfg.stats);
  auto ctx = std::make_shared<detail::host_context>();
  ctx->source = "/cafes/" + cfg.journal->topic();
  ctx->journal_actor = h.journal_actor;
  ctx->cfg = std::move(cfg);
  h.owner = sys.spawn(owner_actor, ctx);
  if (ctx->cfg.assign_all) {
    for (std::int32_t p = 0; p < h.partition_count; ++p)
      h.partitions.push_back(detail::spawn_partition(sys, ctx, partition_id{p}, h.owner));
    // Counted before spawn_host returns, so that a caller waiting for them sees them.
    h.stats->partitions_owned += static_cast<std::uint64_t>(h.partition_count);
    h.stats->assignments += static_cast<std::uint64_t>(h.partition_count);
    caf::anon_send(h.owner, partitions_msg{h.partitions});
  }
  return h;
}

std::string_view to_string(partition_phase p) noexcept {
  switch (p) {
    case partition_phase::recovering: return "recovering";
    case partition_phase::ready: return "ready";
    case partition_phase::failed: return "failed";
    case partition_phase::releasing: return "releasing";
  }
  return "unknown";
}

} // namespace cafes
