// The transfer saga's process manager (one actor per node) and the bank's error category.
#include "saga.hpp"

#include <future>
#include <map>
#include <mutex>
#include <utility>

#include <caf/all.hpp>

namespace bank {

namespace {

/// Calls a transfer callback exactly once: with the outcome, or with shutting_down when the
/// request is dropped unanswered (the node stopped).
class completion {
 public:
  explicit completion(transfer_callback f) : f_(std::move(f)) {}
  ~completion() { (*this)(cafes::error{cafes::actor_errc::shutting_down, "the transfer manager stopped"}); }
  completion(const completion&) = delete;
  completion& operator=(const completion&) = delete;

  void operator()(cafes::expected<transfer::state> r) {
    if (auto f = std::exchange(f_, nullptr))
      f(std::move(r));
  }

 private:
  transfer_callback f_;
};

/// Someone waiting for a transfer: answered at its final status, or once it is settled.
struct waiter {
  std::optional<start_transfer> start; ///< the request's parameters, checked against the transfer
  bool until_settled = false;
  std::shared_ptr<completion> done;
};

/// Asks the manager to drive a transfer.
struct drive_req {
  std::string id;
  waiter w;
};

} // namespace

} // namespace bank

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bank::drive_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bank::saga_stats)

namespace bank {

namespace {

using saga_stats_atom = caf::atom_constant<caf::atom("sagastats")>;

/// Bound on the steps of one drive: started, debited, credit_failed, final, settled.
constexpr int max_steps = 8;

/// One running drive.
struct drive_run {
  std::vector<waiter> waiters;
  std::optional<transfer::state> final; ///< once known, later joiners get it at once
};

struct manager_state {
  caf::actor accounts, transfers;
  std::chrono::milliseconds timeout{};
  std::map<std::string, drive_run> runs; // at most one drive per transfer id
  saga_stats stats;
  static inline const char* name = "bank.transfer_manager";
};

using manager = caf::stateful_actor<manager_state>;

void answer(waiter& w, const cafes::expected<transfer::state>& r) {
  if (r && w.start && (w.start->from != r->from || w.start->to != r->to || w.start->amount != r->amount))
    return (*w.done)(cafes::error{bank_errc::invalid_transfer, "the transfer id is taken by another transfer"});
  (*w.done)(r);
}

/// Ends the drive of `id` and answers everyone still waiting.
void finish(manager* self, const std::string& id, const cafes::expected<transfer::state>& r) {
  auto i = self->state.runs.find(id);
  if (i == self->state.runs.end())
    return;
  auto run = std::move(i->second);
  self->state.runs.erase(i);
  for (auto& w : run.waiters)
    answer(w, r);
}

/// Sends command `c` to aggregate (A, id) and hands the typed reply (or the request's
/// timeout) to `then`, without blocking the actor.
template <class A, class C, class F>
void ask(manager* self, const caf::actor& to, std::string id, C c, std::string command_id, F then) {
  const auto timeout = self->state.timeout;
  self->request(to, timeout, cafes::make_command<A>(std::move(id), std::move(c), std::move(command_id)))
    .then([then](cafes::command_reply& r) { then(cafes::reply_of<A, C>(std::move(r))); },
          [self, then, timeout](caf::error& e) {
            if (e == caf::sec::request_timeout)
              then(cafes::error{cafes::actor_errc::timeout, "no reply within " + std::to_string(timeout.count()) + " ms"});
            else
              then(cafes::error{cafes::actor_errc::shutting_down, self->system().render(e)});
          });
}

void advance(manager* self, const std::string& id, const transfer::state& t, int steps);

/// Records a step in the transfer aggregate, then acts on the recorded state. A step the
/// transfer refuses as out of order was taken by another driver of the same transfer (a
/// client that retried at another node of a cluster): this one reads where the transfer
/// stands and goes on from there, so both answer the transfer's true outcome.
template <class C>
void record(manager* self, const std::string& id, C c, int steps) {
  ask<transfer>(self, self->state.transfers, id, std::move(c), std::string{},
                [self, id, steps](cafes::expected<transfer::state> r) {
                  if (r)
                    return advance(self, id, *r, steps + 1);
                  if (r.error() != bank_errc::unknown_transfer)
                    return finish(self, id, std::move(r).error());
                  ask<transfer>(self, self->state.transfers, id, get_transfer{}, std::string{},
                                [self, id, steps](cafes::expected<transfer::state> now) {
                                  if (!now)
                                    return finish(self, id, std::move(now).error());
                                  advance(self, id, *now, steps + 1);
                                });
                });
}

/// Applies one leg; records `ok` if the account applied it and `failed(reason)` if it refused
/// it (a refusal is final: account.hpp). Any error ends the drive with an unknown outcome
/// (resumed later), and so does a refused refund (`failed` gives nothing).
template <class Ok, class Failed>
void leg(manager* self, const std::string& id, const std::string& account_id, leg_kind kind, std::int64_t amount,
         int steps, Ok ok, Failed failed) {
  auto ref = id + ":" + std::string{to_string(kind)};
  ask<account>(self, self->state.accounts, account_id, apply_leg{id, kind, amount}, std::move(ref),
               [self, id, steps, ok, failed](cafes::expected<leg_result> r) {
                 if (!r)
                   return finish(self, id, std::move(r).error());
                 if (r->applied)
                   return record(self, id, ok, steps);
                 if (auto f = failed(r->refusal))
                   return record(self, id, *f, steps);
                 finish(self, id, cafes::error{bank_errc::invalid_transfer, "the refund was refused: " + r->refusal});
               });
}

/// The transfer is final: answers who waited for that, then makes the accounts forget its
/// legs (the sender holds a debit, applied or refused, and maybe a refund; the receiver of a
/// transfer that was debited holds a credit, applied or refused) and records the settlement.
void settle(manager* self, const std::string& id, const transfer::state& t, int steps) {
  auto& run = self->state.runs[id];
  run.final = t;
  std::vector<waiter> later;
  for (auto& w : run.waiters)
    if (w.until_settled && !t.settled)
      later.push_back(std::move(w));
    else
      answer(w, t);
  run.waiters = std::move(later);
  if (t.settled)
    return finish(self, id, t);
  std::vector<std::string> holders{t.from}; // a debit, decided (a rejected transfer's is refused)
  if (t.status != transfer_status::rejected) // a credit, decided: applied or refused
    holders.push_back(t.to);
  auto left = std::make_shared<std::size_t>(holders.size());
  auto failed = std::make_shared<std::optional<cafes::error>>();
  for (auto& a : holders)
    ask<account>(self, self->state.accounts, a, settle_legs{id}, id + ":settle",
                 [self, id, steps, left, failed](cafes::expected<cafes::done> r) {
                   if (!r && !*failed)
                     *failed = r.error();
                   if (--*left > 0)
                     return;
                   if (*failed)
                     return finish(self, id, **failed);
                   record(self, id, record_settlement{}, steps);
                 });
}

void advance(manager* self, const std::string& id, const transfer::state& t, int steps) {
  if (steps > max_steps)
    return finish(self, id, cafes::error{bank_errc::invalid_transfer, "transfer " + id + " did not settle"});
  using opt = std::optional<record_rejection>;
  switch (t.status) {
    case transfer_status::started:
      return leg(self, id, t.from, leg_kind::debit, t.amount, steps, record_debit{},
                 [](std::string why) { return opt{record_rejection{std::move(why)}}; });
    case transfer_status::debited:
      return leg(self, id, t.to, leg_kind::credit, t.amount, steps, record_credit{},
                 [](std::string why) { return std::optional{record_credit_failure{std::move(why)}}; });
    case transfer_status::credit_failed:
      // The refund must go through: the sender is open (the debit did) and holds the debit.
      return leg(self, id, t.from, leg_kind::refund, t.amount, steps, record_compensation{},
                 [](std::string) { return std::optional<record_compensation>{}; });
    case transfer_status::none:
      return finish(self, id, cafes::error{bank_errc::unknown_transfer});
    default:
      return settle(self, id, t, steps);
  }
}

caf::behavior transfer_manager_actor(manager* self, caf::actor accounts, caf::actor transfers,
                                     std::chrono::milliseconds timeout) {
  self->state.accounts = std::move(accounts);
  self->state.transfers = transfers;
  self->state.timeout = timeout;
  // Lives as long as the node hosts transfers; its state's waiters learn of the shutdown.
  self->monitor(transfers);
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  return {
    [self](drive_req& r) {
      auto& st = self->state;
      if (auto i = st.runs.find(r.id); i != st.runs.end()) {
        ++st.stats.joined;
        if (i->second.final && !r.w.until_settled)
          return answer(r.w, *i->second.final);
        i->second.waiters.push_back(std::move(r.w));
        return;
      }
      ++st.stats.drives;
      auto start = r.w.start;
      st.runs[r.id].waiters.push_back(std::move(r.w));
      auto then = [self, id = r.id](cafes::expected<transfer::state> t) {
        if (!t)
          return finish(self, id, std::move(t).error());
        advance(self, id, *t, 0);
      };
      if (start)
        ask<transfer>(self, st.transfers, r.id, std::move(*start), r.id + ":start", then);
      else
        ask<transfer>(self, st.transfers, r.id, get_transfer{}, std::string{}, then);
    },
    [self](saga_stats_atom) {
      auto s = self->state.stats;
      s.running = self->state.runs.size();
      return s;
    },
  };
}

constexpr auto manager_key = caf::atom("banksaga");

/// Returns the node's transfer manager, spawning it on first use: exactly one per node.
cafes::expected<caf::actor> transfer_manager(cafes::node& node) {
  auto transfers = node.router<transfer>();
  if (!transfers)
    return std::move(transfers).error();
  auto accounts = node.router<account>();
  if (!accounts)
    return std::move(accounts).error();
  static std::mutex spawning;
  std::lock_guard guard{spawning};
  auto& registry = node.system().registry();
  if (auto m = registry.get<caf::actor>(manager_key))
    return m;
  auto m = node.system().spawn(transfer_manager_actor, *accounts, *transfers, node.config().command_timeout);
  registry.put(manager_key, m);
  return m;
}

void submit(cafes::node& node, std::string id, waiter w) {
  auto m = transfer_manager(node);
  if (!m)
    return (*w.done)(std::move(m).error());
  caf::anon_send(*m, drive_req{std::move(id), std::move(w)});
}

std::future<cafes::expected<transfer::state>> submit(cafes::node& node, std::string id,
                                                      std::optional<start_transfer> start, bool until_settled) {
  auto p = std::make_shared<std::promise<cafes::expected<transfer::state>>>();
  auto f = p->get_future();
  auto done = std::make_shared<completion>([p](cafes::expected<transfer::state> r) { p->set_value(std::move(r)); });
  submit(node, std::move(id), waiter{std::move(start), until_settled, std::move(done)});
  return f;
}

cafes::expected<transfer_status> status_of(cafes::expected<transfer::state> r) {
  if (!r)
    return std::move(r).error();
  return r->status;
}

} // namespace

std::string_view to_string(transfer_status s) noexcept {
  switch (s) {
    case transfer_status::none: return "none";
    case transfer_status::started: return "started";
    case transfer_status::debited: return "debited";
    case transfer_status::credit_failed: return "credit_failed";
    case transfer_status::completed: return "completed";
    case transfer_status::compensated: return "compensated";
    case transfer_status::rejected: return "rejected";
  }
  return "?";
}

std::string_view to_string(leg_kind l) noexcept {
  switch (l) {
    case leg_kind::debit: return "debit";
    case leg_kind::credit: return "credit";
    case leg_kind::refund: return "refund";
  }
  return "?";
}

cafes::expected<void> host_bank(cafes::node& node, const cafes::host_options& opts) {
  return host_bank(node, opts, opts);
}

cafes::expected<void> host_bank(cafes::node& node, const cafes::host_options& accounts,
                                const cafes::host_options& transfers) {
  if (auto ok = node.host<account>(accounts); !ok)
    return ok;
  if (auto ok = node.host<transfer>(transfers); !ok)
    return ok;
  if (auto m = transfer_manager(node); !m)
    return std::move(m).error();
  return {};
}

cafes::expected<void> host_bank(cafes::node& node, std::int32_t partitions, std::uint64_t snapshot_every) {
  cafes::host_options opts;
  opts.partitions = partitions;
  opts.snapshot_every = snapshot_every;
  return host_bank(node, opts);
}

void drive_async(cafes::node& node, std::string id, std::optional<start_transfer> start, transfer_callback done) {
  submit(node, std::move(id), waiter{std::move(start), false, std::make_shared<completion>(std::move(done))});
}

cafes::expected<transfer_status> run_transfer(cafes::node& node, const std::string& id, const std::string& from,
                                              const std::string& to, std::int64_t amount) {
  return status_of(submit(node, id, start_transfer{from, to, amount}, false).get());
}

cafes::expected<transfer_status> drive(cafes::node& node, const std::string& id) {
  return status_of(submit(node, id, std::nullopt, false).get());
}

cafes::expected<std::size_t> resume_transfers(cafes::node& node) {
  auto ids = node.query<transfer>([](const transfer::state& s) { return s.unsettled(); });
  if (!ids)
    return std::move(ids).error();
  // Many at once, in windows, so that no account's queue of waiting commands overflows.
  constexpr std::size_t window = 256;
  std::optional<cafes::error> failed;
  std::size_t done = 0;
  for (std::size_t first = 0; first < ids->size(); first += window) {
    std::vector<std::future<cafes::expected<transfer::state>>> drives;
    for (auto i = first; i < std::min(first + window, ids->size()); ++i)
      drives.push_back(submit(node, (*ids)[i], std::nullopt, true));
    for (auto& d : drives) {
      auto r = d.get();
      if (r)
        ++done;
      else if (!failed)
        failed = r.error();
    }
  }
  if (failed)
    return std::move(*failed);
  return done;
}

cafes::expected<saga_stats> transfer_manager_stats(cafes::node& node) {
  auto m = transfer_manager(node);
  if (!m)
    return std::move(m).error();
  cafes::expected<saga_stats> out = cafes::error{cafes::actor_errc::timeout, "no answer"};
  caf::scoped_actor self{node.system()};
  self->request(*m, node.config().command_timeout, saga_stats_atom::value)
    .receive([&](saga_stats s) { out = s; },
             [&](caf::error& e) { out = cafes::error{cafes::actor_errc::timeout, self->system().render(e)}; });
  return out;
}

} // namespace bank
