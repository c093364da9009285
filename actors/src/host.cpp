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
};

using owner_ptr = caf::stateful_actor<owner_state>*;

void publish_writers(owner_ptr self) {
  self->send(self->state.ctx->journal_actor, partitions_msg{self->state.writers});
}

// Starts a hot standby of partition p (watched: one that stops is started again).
void start_standby(owner_ptr self, std::int32_t p) {
  auto& st = self->state;
  auto a = detail::spawn_partition(self->system(), st.ctx, partition_id{p}, true);
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

caf::actor assign(owner_ptr self, std::int32_t p) {
  auto& st = self->state;
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
              s.parts[i] = s.writers[i] = detail::spawn_partition(self->system(), s.ctx, partition_id{p});
              publish_writers(self);
            });
  } else {
    a = detail::spawn_partition(self->system(), st.ctx, partition_id{p});
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

caf::behavior owner_actor(owner_ptr self, detail::context_ptr ctx, std::vector<caf::actor> initial) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  const auto n = static_cast<std::size_t>(st.ctx->cfg.journal->partitions());
  st.parts.resize(n);
  st.writers.resize(n);
  st.standbys.resize(n);
  for (std::size_t p = 0; p < initial.size(); ++p) // counted by spawn_host
    st.parts[p] = st.writers[p] = initial[p];
  // Stopping the owner stops its partitions (releasing ones too).
  self->set_exit_handler([=](caf::exit_msg& em) {
    for (auto* v : {&self->state.writers, &self->state.standbys})
      for (auto& a : *v)
        if (a)
          self->send_exit(a, em.reason);
    self->quit(em.reason);
  });
  // A standby that stopped (Kafka errors while it read, a gap in the journal) starts again
  // after a pause.
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& s = self->state;
    for (std::size_t p = 0; p < s.standbys.size(); ++p)
      if (s.standbys[p] && s.standbys[p].address() == dm.source) {
        take_standby(self, static_cast<std::int32_t>(p));
        self->delayed_send(self, std::chrono::seconds{5}, standby_atom::value, static_cast<std::int32_t>(p), true);
      }
  });
  return {
    [=](command_msg& m) {
      auto& s = self->state;
      auto rp = self->make_response_promise();
      auto p = partition_for(m.id, static_cast<std::int32_t>(s.parts.size())).value();
      if (auto& a = s.parts[static_cast<std::size_t>(p)])
        rp.delegate(a, std::move(m));
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
      auto a = s.parts[static_cast<std::size_t>(p)];
      if (!a)
        return true;
      // New commands get not_owner at once; the partition drains, snapshots what holds its
      // checkpoint back, stores it and closes its writer before it answers.
      s.parts[static_cast<std::size_t>(p)] = nullptr;
      auto rp = self->make_response_promise<bool>();
      // Once released (or dead: then it writes nothing more either), the partition is
      // forgotten, and an assign that waited for it takes it over.
      auto released = [=](std::optional<caf::error> err) mutable {
        auto& s2 = self->state;
        s2.writers[static_cast<std::size_t>(p)] = nullptr;
        --s2.ctx->cfg.stats->partitions_owned;
        ++s2.ctx->cfg.stats->revocations;
        if (auto i = s2.assign_after.find(p); i != s2.assign_after.end()) {
          auto waiting = std::move(i->second);
          s2.assign_after.erase(i);
          assign(self, p);
          for (auto& w : waiting)
            w.deliver(true);
        }
        publish_writers(self);
        if (err)
          rp.deliver(std::move(*err));
        else
          rp.deliver(true);
      };
      self->request(a, caf::infinite, release_atom::value)
        .then([=](bool) mutable { released(std::nullopt); }, [=](caf::error& err) mutable { released(err); });
      return rp;
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
  if (ctx->cfg.assign_all) {
    for (std::int32_t p = 0; p < h.partition_count; ++p)
      h.partitions.push_back(detail::spawn_partition(sys, ctx, partition_id{p}));
    // Counted before spawn_host returns, so that a caller waiting for them sees them.
    h.stats->partitions_owned += static_cast<std::uint64_t>(h.partition_count);
    h.stats->assignments += static_cast<std::uint64_t>(h.partition_count);
  }
  h.owner = sys.spawn(owner_actor, ctx, h.partitions);
  caf::anon_send(h.journal_actor, partitions_msg{h.partitions});
  return h;
}

} // namespace cafes
