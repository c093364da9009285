// The journal actor: adaptive group commit of many aggregates' events into one journal.
#include <deque>
#include <unordered_set>

#include "cafes/actors/host.hpp"
#include "logger.hpp"

namespace cafes {

namespace {

struct request {
  std::string id;
  std::vector<event_envelope> events;
  std::size_t count = 0;
  std::size_t bytes = 0;
  caf::response_promise rp;
};

struct journal_state {
  static inline const char* name = "cafes.journal";
  std::shared_ptr<journal> j;
  batching_config cfg;
  std::shared_ptr<host_stats> stats;
  std::deque<request> pending;
  std::size_t pending_events = 0;
  std::vector<request> in_flight;
  std::uint64_t batch_no = 0;
  // Aggregates whose persist failed: refused until they recovered and said so (unpoison).
  // This keeps a pipelined aggregate's later events from landing after a failed earlier one.
  std::unordered_set<std::string> poisoned;
};

using self_ptr = caf::stateful_actor<journal_state>*;

void deliver_error(request& r, const cafes::error& e) {
  r.rp.deliver(persist_res{e, {}});
}

void flush(self_ptr self) {
  auto& st = self->state;
  if (!st.in_flight.empty() || st.pending.empty())
    return;
  std::vector<event_envelope> batch;
  std::size_t bytes = 0;
  while (!st.pending.empty()) {
    auto& r = st.pending.front();
    const bool first = st.in_flight.empty();
    if (!first && (batch.size() + r.count > st.cfg.max_batch_events || bytes + r.bytes > st.cfg.max_batch_bytes))
      break;
    bytes += r.bytes;
    st.pending_events -= r.count;
    for (auto& e : r.events)
      batch.push_back(std::move(e));
    r.events.clear();
    st.in_flight.push_back(std::move(r));
    st.pending.pop_front();
  }
  if (st.stats)
    st.stats->record_batch(batch.size());
  const auto no = ++st.batch_no;
  // The callback runs on a journal thread: it only turns the outcome into a message.
  st.j->append(std::move(batch), [hdl = caf::actor{self}, no](expected<std::vector<position>> r) {
    caf::anon_send(hdl, batch_done{no, std::move(r)});
  });
}

} // namespace

namespace {

caf::behavior journal_actor(self_ptr self, std::shared_ptr<journal> j, batching_config cfg,
                            std::shared_ptr<host_stats> stats) {
  self->state.j = std::move(j);
  self->state.cfg = cfg;
  self->state.stats = std::move(stats);
  return {
    [=](persist_req& req) -> caf::result<persist_res> {
      auto& st = self->state;
      auto rp = self->make_response_promise<persist_res>();
      if (req.events.empty()) {
        rp.deliver(persist_res{});
        return rp;
      }
      const auto& id = req.events.front().id.str();
      if (st.poisoned.count(id)) {
        rp.deliver(persist_res{cafes::error{actor_errc::persist_failed,
                                            "an earlier persist of '" + id + "' failed; it must recover first"},
                               {}});
        return rp;
      }
      if (st.pending_events + req.events.size() > st.cfg.max_pending_events) {
        rp.deliver(persist_res{cafes::error{actor_errc::overloaded,
                                            "the journal backlog holds " + std::to_string(st.pending_events) +
                                                " events (bound " + std::to_string(st.cfg.max_pending_events) + ")"},
                               {}});
        return rp;
      }
      std::size_t bytes = 0;
      for (auto& e : req.events)
        bytes += e.payload.size() + e.id.str().size() + e.type.size() + 128;
      const auto count = req.events.size();
      st.pending_events += count;
      st.pending.push_back(request{id, std::move(req.events), count, bytes, rp});
      flush(self);
      return rp;
    },
    [=](batch_done& done) {
      auto& st = self->state;
      if (done.batch != st.batch_no)
        return; // cannot happen: one batch in flight at a time
      auto reqs = std::move(st.in_flight);
      st.in_flight.clear();
      if (done.result) {
        std::size_t i = 0;
        for (auto& r : reqs) {
          persist_res res;
          res.positions.assign(done.result->begin() + static_cast<std::ptrdiff_t>(i),
                               done.result->begin() + static_cast<std::ptrdiff_t>(i + r.count));
          i += r.count;
          r.rp.deliver(std::move(res));
        }
      } else {
        if (st.stats)
          ++st.stats->persist_failures;
        actors_log().warn("journal append of {} requests failed: {}", reqs.size(), done.result.error().to_string());
        cafes::error e{actor_errc::persist_failed, done.result.error().to_string()};
        for (auto& r : reqs) {
          st.poisoned.insert(r.id);
          deliver_error(r, e);
        }
        // Later events of the failed aggregates must not overtake the failed ones.
        for (auto it = st.pending.begin(); it != st.pending.end();) {
          if (st.poisoned.count(it->id)) {
            st.pending_events -= it->count;
            deliver_error(*it, e);
            it = st.pending.erase(it);
          } else {
            ++it;
          }
        }
      }
      flush(self);
    },
    [=](unpoison_msg& m) { self->state.poisoned.erase(m.id); },
  };
}

} // namespace

caf::actor spawn_journal_actor(caf::actor_system& sys, std::shared_ptr<journal> j, batching_config cfg,
                               std::shared_ptr<host_stats> stats) {
  return sys.spawn(journal_actor, std::move(j), cfg, std::move(stats));
}

} // namespace cafes
