// The journal actor: adaptive group commit of many aggregates' events into one journal.
#include <deque>
#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "cafes/actors/host.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "logger.hpp"

namespace cafes {

namespace {

struct request {
  std::string id;
  std::int32_t partition = 0;
  seq_nr last_seq{0};
  std::vector<event_envelope> events;
  std::size_t count = 0;
  std::size_t bytes = 0;
  caf::response_promise rp;
  bool taken = false; // moved into a batch (or failed) while still in the pending deque
};

struct journal_state {
  static inline const char* name = "cafes.journal";
  std::shared_ptr<journal> j;
  batching_config cfg;
  std::shared_ptr<host_stats> stats;
  std::deque<request> pending;
  std::size_t pending_events = 0;
  struct batch {
    std::vector<request> reqs;
    std::chrono::steady_clock::time_point sent;
  };
  std::map<std::uint64_t, batch> in_flight; // by batch number
  // Aggregates with a batch in flight: their next requests wait, so that at most one batch
  // per aggregate is ever in flight and a failed batch cannot be overtaken by a later one.
  std::unordered_map<std::string, int> busy;
  std::uint64_t batch_no = 0;
  // Aggregates whose persist failed: refused until they recovered and said so (unpoison).
  std::unordered_set<std::string> poisoned;
  std::vector<caf::actor> partitions; // to settle batches with (empty in some tests)
};

using self_ptr = caf::stateful_actor<journal_state>*;

void deliver_error(request& r, const cafes::error& e, event_outcome o) {
  r.rp.deliver(persist_res{e, {}, o});
}

void drop_taken(journal_state& st) {
  while (!st.pending.empty() && st.pending.front().taken)
    st.pending.pop_front();
}

// Sends batches while fewer than max_in_flight are in flight. A batch takes pending requests
// in order, skipping (with all their later requests) the aggregates that have a batch in
// flight, within the count and byte bounds; its first request always goes.
void flush(self_ptr self) {
  auto& st = self->state;
  while (st.in_flight.size() < st.cfg.max_in_flight && !st.pending.empty()) {
    std::vector<event_envelope> batch;
    std::vector<request> reqs;
    std::unordered_set<std::string> blocked;
    std::size_t bytes = 0, scanned = 0;
    const std::size_t scan_limit = 4 * st.cfg.max_batch_events + 16;
    for (auto& r : st.pending) {
      if (++scanned > scan_limit)
        break;
      if (r.taken)
        continue;
      if (st.busy.count(r.id) || blocked.count(r.id)) {
        blocked.insert(r.id);
        continue;
      }
      if (!reqs.empty() && (batch.size() + r.count > st.cfg.max_batch_events || bytes + r.bytes > st.cfg.max_batch_bytes))
        break;
      bytes += r.bytes;
      st.pending_events -= r.count;
      for (auto& e : r.events)
        batch.push_back(std::move(e));
      r.events.clear();
      r.taken = true;
      reqs.push_back(std::move(r));
    }
    drop_taken(st);
    if (reqs.empty())
      return; // everything pending waits for a batch in flight
    for (auto& r : reqs)
      ++st.busy[r.id];
    if (!st.partitions.empty()) {
      std::set<std::int32_t> touched;
      for (auto& r : reqs)
        touched.insert(r.partition);
      for (auto p : touched)
        if (auto& a = st.partitions[static_cast<std::size_t>(p)]) // null: not owned here any more
          self->send(a, batch_sent_msg{st.batch_no + 1});
    }
    st.stats->batch_sent(batch.size());
    const auto no = ++st.batch_no;
    st.in_flight.emplace(no, journal_state::batch{std::move(reqs), st.stats->start()});
    // The callback runs on a journal thread: it only turns the outcome into a message.
    st.j->append(std::move(batch), [hdl = caf::actor{self}, no](append_result r) {
      caf::anon_send(hdl, batch_done{no, std::move(r)});
    });
  }
}

// Answers each request of a finished batch with its own outcome. An aggregate's requests
// after its first failed one build on it: they fail too, and if any of them (or the failed
// one) may have landed, the aggregate must re-read the journal (outcome unknown).
// Fails the waiting (not yet sent) requests of poisoned aggregates: their events must not be
// written after a failed or refused request of the same aggregate, nor after its re-read.
void drop_poisoned(journal_state& st) {
  for (auto& r : st.pending)
    if (!r.taken && st.poisoned.count(r.id)) {
      st.pending_events -= r.count;
      deliver_error(r, cafes::error{actor_errc::persist_failed, "an earlier persist of '" + r.id + "' failed"},
                    event_outcome::not_written);
      r.taken = true;
    }
  drop_taken(st);
  st.stats->backlog = st.pending_events;
}

void settle(self_ptr self, std::uint64_t batch, std::vector<request>& reqs, const append_result& res) {
  auto& st = self->state;
  // First pass: which request fails first per aggregate, and with what outcome.
  std::unordered_map<std::string, event_outcome> failed; // aggregate -> outcome of its failure
  std::vector<bool> fails(reqs.size(), false);
  std::size_t i = 0;
  for (std::size_t k = 0; k < reqs.size(); ++k) {
    auto& r = reqs[k];
    auto o = res.outcome_of(i, r.count);
    i += r.count;
    if (auto f = failed.find(r.id); f != failed.end()) {
      fails[k] = true;
      if (o != event_outcome::not_written)
        f->second = event_outcome::unknown;
    } else if (o != event_outcome::durable) {
      fails[k] = true;
      failed.emplace(r.id, o);
    }
  }
  if (!failed.empty()) {
    ++st.stats->persist_failures;
    actors_log().warn("journal append of {} requests failed for {} aggregates: {}", reqs.size(), failed.size(),
                      res.err ? res.err->to_string() : std::string{"no error given"});
  }
  // Each partition learns first what became durable and what is unknown, then the
  // aggregates get their answers: its checkpoint never passes events it was not told of.
  if (!st.partitions.empty()) {
    std::map<std::int32_t, batch_settled_msg> by_part;
    i = 0;
    for (std::size_t k = 0; k < reqs.size(); ++k) {
      auto& r = reqs[k];
      auto& m = by_part[r.partition];
      m.batch = batch;
      if (!fails[k])
        m.durable.push_back(persisted_msg{r.id, r.last_seq, res.positions[i].off, res.positions[i + r.count - 1].off,
                                          r.count});
      else if (failed.at(r.id) == event_outcome::unknown &&
               std::find(m.unknown.begin(), m.unknown.end(), r.id) == m.unknown.end())
        m.unknown.push_back(r.id);
      i += r.count;
    }
    for (auto& [p, m] : by_part)
      if (auto& a = st.partitions[static_cast<std::size_t>(p)])
        self->send(a, std::move(m));
  }
  const cafes::error cause = res.err ? *res.err : cafes::error{actor_errc::persist_failed, "journal append failed"};
  i = 0;
  for (std::size_t k = 0; k < reqs.size(); ++k) {
    auto& r = reqs[k];
    const auto first = i;
    i += r.count;
    if (!fails[k]) {
      persist_res ok;
      ok.positions.assign(res.positions.begin() + static_cast<std::ptrdiff_t>(first),
                          res.positions.begin() + static_cast<std::ptrdiff_t>(first + r.count));
      r.rp.deliver(std::move(ok));
      continue;
    }
    // An unknown outcome is persist_failed whatever the cause, except fencing: then another
    // node owns the partition (whatever landed is its now) and the aggregate answers
    // not_owner. A refusal keeps its cause (overloaded, event_too_large, ...), so that
    // clients see what to do.
    const auto o = failed.at(r.id);
    st.poisoned.insert(r.id);
    deliver_error(r,
                  o == event_outcome::unknown && cause != errc::fenced
                    ? cafes::error{actor_errc::persist_failed, cause.to_string()}
                    : cause,
                  o);
  }
  drop_poisoned(st);
}

caf::behavior journal_actor(self_ptr self, std::shared_ptr<journal> j, batching_config cfg,
                            std::shared_ptr<host_stats> stats) {
  self->state.j = std::move(j);
  self->state.cfg = cfg;
  if (self->state.cfg.max_in_flight == 0)
    self->state.cfg.max_in_flight = 1;
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
                               {},
                               event_outcome::not_written});
        return rp;
      }
      if (st.pending_events + req.events.size() > st.cfg.max_pending_events) {
        // Refused before anything is written. The aggregate's later requests (pipelining)
        // build on this one, so they are refused too until it resets (unpoison); its earlier
        // ones still waiting are dropped, or they could land after the re-read that the
        // refusal of a pipelined aggregate leads to.
        st.poisoned.insert(id);
        drop_poisoned(st);
        ++st.stats->overloads;
        rp.deliver(persist_res{cafes::error{actor_errc::overloaded,
                                            "the journal backlog holds " + std::to_string(st.pending_events) +
                                                " events (bound " + std::to_string(st.cfg.max_pending_events) + ")"},
                               {},
                               event_outcome::not_written});
        return rp;
      }
      std::size_t bytes = 0;
      for (auto& e : req.events)
        bytes += e.payload.size() + e.id.str().size() + e.type.size() + 128;
      const auto count = req.events.size();
      const auto last_seq = req.events.back().seq;
      st.pending_events += count;
      st.pending.push_back(request{id, partition_for(id, st.j->partitions()).value(), last_seq, std::move(req.events),
                                   count, bytes, rp, false});
      flush(self);
      st.stats->backlog = st.pending_events;
      return rp;
    },
    [=](batch_done& done) {
      auto& st = self->state;
      auto it = st.in_flight.find(done.batch);
      if (it == st.in_flight.end())
        return;
      auto reqs = std::move(it->second.reqs);
      st.stats->batch_done(it->second.sent);
      st.in_flight.erase(it);
      for (auto& r : reqs)
        if (--st.busy[r.id] == 0)
          st.busy.erase(r.id);
      settle(self, done.batch, reqs, done.result);
      flush(self);
      st.stats->backlog = st.pending_events;
    },
    [=](unpoison_msg& m) { self->state.poisoned.erase(m.id); },
    [=](partitions_msg& m) { self->state.partitions = std::move(m.partitions); },
  };
}

} // namespace

caf::actor spawn_journal_actor(caf::actor_system& sys, std::shared_ptr<journal> j, batching_config cfg,
                               std::shared_ptr<host_stats> stats) {
  if (!stats) // a journal actor always counts, whether or not anyone reads its counters
    stats = std::make_shared<host_stats>();
  return sys.spawn(journal_actor, std::move(j), cfg, std::move(stats));
}

} // namespace cafes
