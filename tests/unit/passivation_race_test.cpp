// Passivation against what races it: commands routed while an offer is queued, offers of
// stale incarnations, offers while a catch-up is pending; and an oversized event among others.
// Ordering comes from the runtime's own mailboxes, not from timing: the tests that need a
// passivation offer at a chosen point host the aggregate on the node's actor system
// themselves, so that they hold the partition actor and speak to it as its aggregates do.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/actors/host.hpp"
#include "cafes/runtime/node.hpp"
#include "journal_wrappers.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace bank;
using cafes::test::read_gate;
using cafes::test::eventually;
using cafes::test::scaled;

namespace {

using predicate = std::shared_ptr<const std::function<bool(const std::any&)>>;

node_config memory_config() {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "race";
  c.log_level = "off";
  c.threads = 2;
  c.command_timeout = scaled(std::chrono::seconds{10});
  return c;
}

/// Reads every event of an aggregate, in journal order, over every partition.
std::vector<event_envelope> events_of(journal& j, const std::string& id) {
  std::vector<event_envelope> out;
  for (std::int32_t p = 0; p < j.partitions(); ++p) {
    offset from{0};
    for (;;) {
      auto c = j.read(partition_id{p}, from, 1000);
      REQUIRE(c);
      for (auto& e : c->events)
        if (e.id.str() == id)
          out.push_back(e);
      if (c->end)
        break;
      from = c->next;
    }
  }
  return out;
}

std::vector<std::uint64_t> seqs_of(journal& j, const std::string& id) {
  std::vector<std::uint64_t> out;
  for (auto& e : events_of(j, id))
    out.push_back(e.seq.value());
  return out;
}

std::vector<std::uint64_t> one_to(std::uint64_t n) {
  std::vector<std::uint64_t> v(n);
  for (std::uint64_t i = 0; i < n; ++i)
    v[i] = i + 1;
  return v;
}

/// A command's reply and the aggregate incarnation that answered it.
template <class C>
struct answer {
  expected<reply_t<account, C>> reply;
  caf::actor from;
};

/// The account type hosted on one partition of a node's actor system, as node::host does,
/// but with the partition actor in the test's hands. Stops its actors when it goes.
struct raw_host {
  std::shared_ptr<host_stats> stats = std::make_shared<host_stats>();
  caf::actor_system& sys;
  hosted h;

  raw_host(node& n, std::shared_ptr<journal> j, std::chrono::milliseconds idle_timeout) : sys(n.system()) {
    host_config hc;
    hc.ops = make_ops<account>();
    hc.journal = std::move(j);
    hc.snapshots = make_memory_snapshot_store(1);
    hc.stats = stats;
    hc.snapshot_every = 0;
    hc.idle_timeout = idle_timeout;
    h = spawn_host(sys, std::move(hc));
  }
  ~raw_host() {
    caf::anon_send_exit(h.journal_actor, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(h.owner, caf::exit_reason::user_shutdown); // stops the partition too
  }

  const caf::actor& partition() const { return h.partitions.at(0); }
  bool ready() const {
    return eventually([&] { return stats->partitions_ready == 1; });
  }

  template <class C>
  answer<C> ask(const std::string& id, C c) {
    caf::scoped_actor self{sys};
    answer<C> out{cafes::error{errc::timeout, "no reply"}, {}};
    self->send(partition(), make_command<account>(id, std::move(c)));
    self->receive(
      [&](command_reply& r) {
        out.reply = reply_of<account, C>(std::move(r));
        out.from = caf::actor_cast<caf::actor>(self->current_sender());
      },
      caf::after(scaled(std::chrono::seconds{10})) >> [] {});
    return out;
  }

  /// Returns once `a` handled every message sent to it before: a query answers R (bool from
  /// an aggregate, the matching ids from the partition).
  template <class R>
  bool sync(const caf::actor& a) {
    caf::scoped_actor self{sys};
    auto none = std::make_shared<const std::function<bool(const std::any&)>>([](const std::any&) { return false; });
    bool answered = false;
    self->request(a, scaled(std::chrono::seconds{10}), query_atom::value, predicate{none})
      .receive([&](R&) { answered = true; }, [&](caf::error&) {});
    return answered;
  }
};

/// The state of ann's open account with `balance`.
std::any account_with(std::int64_t balance) {
  account::state s;
  s.open = true;
  s.owner = "ann";
  s.balance = balance;
  return s;
}

constexpr auto forever = std::chrono::milliseconds{3'600'000};

} // namespace

TEST_CASE("a command routed while its aggregate's passivation offer is queued is answered and kept",
          "[passivation][race]") {
  // The offer counts one command, the partition has routed two: it refuses, and the live
  // aggregate answers. Fails without the partition's `routed != handled` check: the
  // aggregate is stopped with the deposit in its mailbox, and it is not answered.
  node n{memory_config()};
  auto j = std::shared_ptr<journal>(make_memory_journal("race.account.events", 1));
  raw_host h{n, j, forever};
  REQUIRE(h.ready());
  // A passivated aggregate, on whose state the partition evaluates a query's predicate itself.
  auto g = h.ask("g", open{"gil", 0});
  REQUIRE(g.reply);
  caf::anon_send(g.from, passivate_now_msg{});
  REQUIRE(eventually([&] { return h.stats->passivations == 1; }));
  auto a = h.ask("a", open{"ann", 0});
  REQUIRE(a.reply);

  // The partition is held inside a query's predicate while the deposit and then the offer
  // queue behind it, in that order.
  struct gate {
    std::atomic<bool> entered{false};
    std::atomic<bool> go{false};
  };
  auto gt = std::make_shared<gate>();
  auto hold = std::make_shared<const std::function<bool(const std::any&)>>([gt](const std::any&) {
    if (!gt->entered.exchange(true))
      eventually([&] { return gt->go.load(); });
    return false;
  });
  caf::scoped_actor q{n.system()};
  caf::scoped_actor c{n.system()};
  q->send(h.partition(), query_atom::value, predicate{hold});
  REQUIRE(eventually([&] { return gt->entered.load(); }));
  c->send(h.partition(), make_command<account>("a", deposit{5, "d1"}));
  caf::anon_send(a.from, passivate_now_msg{}); // idle: it offers at once, having handled one command
  REQUIRE(h.sync<bool>(a.from));                     // so the offer is queued behind the deposit
  gt->go = true;

  std::optional<expected<std::int64_t>> deposited;
  c->receive([&](command_reply& r) { deposited = reply_of<account, deposit>(std::move(r)); },
             caf::after(scaled(std::chrono::seconds{10})) >> [] {});
  q->receive([](std::vector<std::string>&) {}, caf::after(scaled(std::chrono::seconds{10})) >> [] {});
  REQUIRE(deposited);
  REQUIRE(*deposited);
  CHECK(**deposited == 5);
  auto balance = h.ask("a", get_balance{});
  REQUIRE(balance.reply);
  CHECK(*balance.reply == 5);
  CHECK(balance.from == a.from);         // the same incarnation: the offer was refused
  CHECK(h.stats->passivations == 1);     // only g's
  CHECK(h.stats->activations == 2);      // g and a, once each
  CHECK(seqs_of(*j, "a") == one_to(2));
}

TEST_CASE("commands racing idle passivations of one aggregate are all answered and all kept", "[passivation][race]") {
  // A 1 ms idle timeout makes the aggregate offer to passivate whenever its clients pause;
  // clients on four threads hammer it meanwhile. Every deposit adds 1, so the replies must
  // be exactly 1..N (none lost, none applied twice) and the journal exactly seqs 1..N+1.
  // The deterministic proof of this race is the test above; this one runs it by chance
  // over 2000 commands (without the partition's `routed != handled` check it fails in
  // every run: a command reaches an aggregate already told to stop, and is never answered).
  auto j = std::shared_ptr<journal>(make_memory_journal("race.account.events", 1));
  node n{memory_config()};
  host_options o;
  o.partitions = 1;
  o.journal = j;
  o.snapshots = make_memory_snapshot_store(1);
  o.idle_timeout = std::chrono::milliseconds{1};
  REQUIRE(n.host<account>(o));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  auto stats = n.stats("account");
  REQUIRE(n.ask<account>("a", open{"ann", 0}));

  constexpr int rounds = 50;
  constexpr int clients = 4;
  constexpr int per_client = 10;
  std::vector<std::int64_t> replies;
  std::vector<std::string> errors; // collected on the clients' threads, checked here
  std::mutex mtx;
  for (int r = 0; r < rounds; ++r) {
    // Every other round starts only once the aggregate passivated; the others race its offer.
    if (r % 2 == 0)
      REQUIRE(eventually([&] { return stats->resident == 0; }));
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t)
      threads.emplace_back([&, r, t] {
        for (int i = 0; i < per_client; ++i) {
          auto ref = std::to_string(r) + "-" + std::to_string(t) + "-" + std::to_string(i);
          // Pauses of 0 to 1.5 ms around the idle timeout: a command often reaches the
          // partition just after the aggregate offered (a workload's shape, not a wait).
          std::this_thread::sleep_for(std::chrono::microseconds{(r * 331 + t * 97 + i * 211) % 1500});
          auto x = n.ask<account>("a", deposit{1, ref});
          std::lock_guard guard{mtx};
          if (x)
            replies.push_back(*x);
          else
            errors.push_back(ref + ": " + x.error().to_string());
        }
      });
    for (auto& t : threads)
      t.join();
  }
  const auto total = static_cast<std::uint64_t>(rounds * clients * per_client);
  for (auto& e : errors)
    UNSCOPED_INFO(e);
  CHECK(errors.empty());
  std::sort(replies.begin(), replies.end());
  std::vector<std::int64_t> want(total);
  for (std::uint64_t i = 0; i < total; ++i)
    want[i] = static_cast<std::int64_t>(i) + 1;
  CHECK(replies == want);
  CHECK(n.ask<account>("a", get_balance{}).value() == static_cast<std::int64_t>(total));
  CHECK(seqs_of(*j, "a") == one_to(total + 1));
  CHECK(stats->passivations >= std::uint64_t{rounds / 2}); // the race really ran against passivations
  CHECK(stats->activations > std::uint64_t{rounds / 2});
  CHECK(stats->sequence_errors == 0);
}

TEST_CASE("an offer of a stale incarnation never removes the live one", "[passivation][race]") {
  // Each incarnation passivates, the next one handles two commands, then every earlier one
  // offers again (as its idle timeout would before its exit arrives) with the same count of
  // commands and its old state. Fails without the partition's sender check: the live
  // incarnation is stopped and the account comes back with a stale balance.
  node n{memory_config()};
  auto j = std::shared_ptr<journal>(make_memory_journal("race.account.events", 1));
  raw_host h{n, j, forever};
  REQUIRE(h.ready());
  auto first = h.ask("a", open{"ann", 0});
  REQUIRE(first.reply);
  auto d = h.ask("a", deposit{1, "d0"});
  REQUIRE(d.reply);
  REQUIRE(d.from == first.from);
  std::vector<caf::actor> incarnations{d.from};
  std::vector<std::int64_t> balances{1}; // each incarnation's balance when it passivated
  std::uint64_t events = 2;
  constexpr int cycles = 10;
  for (int k = 1; k <= cycles; ++k) {
    caf::anon_send(incarnations.back(), passivate_now_msg{});
    REQUIRE(eventually([&] { return h.stats->passivations == static_cast<std::uint64_t>(k); }));
    caf::actor live;
    for (int i = 0; i < 2; ++i) {
      auto r = h.ask("a", deposit{1, "d" + std::to_string(k) + "-" + std::to_string(i)});
      REQUIRE(r.reply);
      live = r.from;
    }
    events += 2;
    const auto balance = balances.back() + 2;
    CHECK(std::find(incarnations.begin(), incarnations.end(), live) == incarnations.end());
    for (std::size_t i = 0; i < incarnations.size(); ++i) {
      const auto seq = 2 + 2 * i; // the events the old incarnation had seen
      caf::send_as(incarnations[i], h.partition(),
                   passivate_msg{"a", 2, account_with(balances[i]), seq_nr{seq}, offset{static_cast<std::int64_t>(seq) - 1},
                                 false});
    }
    auto now = h.ask("a", get_balance{}); // queued behind the offers
    REQUIRE(now.reply);
    CHECK(*now.reply == balance);
    CHECK(now.from == live);
    CHECK(h.stats->passivations == static_cast<std::uint64_t>(k));
    CHECK(h.stats->activations == static_cast<std::uint64_t>(k) + 1);
    incarnations.push_back(live);
    balances.push_back(balance);
  }
  CHECK(seqs_of(*j, "a") == one_to(events));
  CHECK(h.ask("a", deposit{1, "last"}).reply.value() == balances.back() + 1);
}

TEST_CASE("an aggregate whose catch-up is pending does not passivate and keeps its landed event",
          "[passivation][race]") {
  // A deposit is written but reported failed; the catch-up that re-reads it is held. The
  // aggregate is asked to passivate (and idles at 1 ms) meanwhile, and the partition gets an
  // offer from it with nothing routed since. Neither passivates it. Fails without the
  // partition's `holds` check: the offer is taken, and the state without the deposit goes cold.
  node n{memory_config()};
  auto mem = std::shared_ptr<journal>(make_memory_journal("race.account.events", 1));
  auto faulty = std::make_shared<test::wrapped_journal>(mem);
  auto reads = std::make_shared<read_gate>(faulty);
  raw_host h{n, reads, std::chrono::milliseconds{1}};
  struct open_on_exit {
    read_gate& g;
    ~open_on_exit() { g.open(); } // never leave the I/O thread blocked at shutdown
  } guard{*reads};
  REQUIRE(h.ready());
  REQUIRE(h.ask("a", open{"ann", 0}).reply);
  REQUIRE(eventually([&] { return h.stats->resident == 0; })); // idle: passivated
  const auto passivations = h.stats->passivations.load();

  reads->close();
  std::atomic<bool> arm{true};
  faulty->fault = [&](std::uint64_t) {
    return arm.exchange(false) ? test::append_fault::fail_after_write : test::append_fault::none;
  };
  auto landed = h.ask("a", deposit{100, "landed"}); // activates a new incarnation
  REQUIRE_FALSE(landed.reply);
  CHECK(landed.reply.error() == actor_errc::persist_failed);
  REQUIRE(eventually([&] { return reads->waiting() == 1; })); // the catch-up is pending

  caf::anon_send(landed.from, passivate_now_msg{});
  REQUIRE(h.sync<bool>(landed.from)); // handled: it made no offer
  caf::send_as(landed.from, h.partition(), passivate_msg{"a", 1, account_with(0), seq_nr{1}, offset{0}, false});
  REQUIRE(h.sync<std::vector<std::string>>(h.partition())); // handled the offer: refused
  CHECK(h.stats->passivations == passivations);
  CHECK(h.stats->resident == 1);

  reads->open();
  auto balance = h.ask("a", get_balance{});
  REQUIRE(balance.reply);
  CHECK(*balance.reply == 100);
  CHECK(seqs_of(*mem, "a") == one_to(2));
  // Resolved, it passivates again when idle, and comes back with the deposit.
  REQUIRE(eventually([&] { return h.stats->passivations > passivations; }));
  CHECK(h.ask("a", deposit{5, "after"}).reply.value() == 105);
  CHECK(seqs_of(*mem, "a") == one_to(3));
}

TEST_CASE("an oversized event among others fails only its own command", "[limits][race]") {
  // A deposit whose ref makes its event larger than the node's limit, sent amid many
  // deposits to the same aggregate and to another of the same partition. Only it fails, with
  // event_too_large; nothing of it reaches the journal; the aggregate goes on.
  auto j = std::shared_ptr<journal>(make_memory_journal("race.account.events", 1));
  node n{memory_config()};
  host_options o;
  o.partitions = 1;
  o.journal = j;
  o.snapshots = make_memory_snapshot_store(1);
  REQUIRE(n.host<account>(o));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  REQUIRE(n.ask<account>("a", open{"ann", 0}));
  REQUIRE(n.ask<account>("b", open{"bob", 0}));
  const std::string huge(2 << 20, 'x');
  REQUIRE(huge.size() > j->limits().max_event_bytes);

  constexpr std::size_t each = 100;
  std::vector<std::future<expected<std::int64_t>>> a;
  std::vector<std::future<expected<std::int64_t>>> b;
  std::optional<std::future<expected<std::int64_t>>> big;
  for (std::size_t i = 0; i < each; ++i) {
    if (i == each / 2)
      big = n.ask_async<account>("a", deposit{1000, huge});
    a.push_back(n.ask_async<account>("a", deposit{1, "a" + std::to_string(i)}));
    b.push_back(n.ask_async<account>("b", deposit{1, "b" + std::to_string(i)}));
  }
  auto refused = big->get();
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == errc::event_too_large);
  std::set<std::int64_t> replies;
  for (auto& f : a) {
    auto r = f.get();
    REQUIRE(r);
    replies.insert(*r);
  }
  CHECK(replies.size() == each); // each one applied once, on a state without the refused one
  CHECK(*replies.rbegin() == static_cast<std::int64_t>(each));
  for (auto& f : b)
    REQUIRE(f.get());

  auto events = events_of(*j, "a");
  CHECK(events.size() == each + 1);
  for (auto& e : events)
    CHECK(e.payload.size() < huge.size());
  CHECK(seqs_of(*j, "a") == one_to(each + 1)); // the refused one took no seq
  CHECK(seqs_of(*j, "b") == one_to(each + 1));
  CHECK(n.ask<account>("a", deposit{1, "after"}).value() == static_cast<std::int64_t>(each) + 1);
  CHECK(n.ask<account>("b", get_balance{}).value() == static_cast<std::int64_t>(each));
}

TEST_CASE("a recovering partition's full stash answers overloaded, writes nothing, then serves the rest",
          "[backpressure][race]") {
  auto mem = std::shared_ptr<journal>(make_memory_journal("race.account.events", 1));
  auto gate = std::make_shared<read_gate>(mem);
  gate->close(); // the partition's recovery blocks on its first read
  node n{memory_config()};
  host_options o;
  o.partitions = 1;
  o.journal = gate;
  o.snapshots = make_memory_snapshot_store(1);
  o.max_stash = 2;
  REQUIRE(n.host<account>(o));
  REQUIRE(eventually([&] { return gate->waiting() == 1; }));
  auto a = n.ask_async<account>("a", open{"ann", 0});
  auto b = n.ask_async<account>("b", open{"bob", 0});
  auto c = n.ask<account>("c", open{"cy", 0}); // the stash holds two: refused at once
  REQUIRE_FALSE(c);
  CHECK(c.error() == actor_errc::overloaded);
  CHECK(a.wait_for(std::chrono::seconds{0}) != std::future_status::ready); // still waiting
  gate->open();
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  CHECK(a.get().value() == 0);
  CHECK(b.get().value() == 0);
  auto all = mem->read(partition_id{0}, offset{0}, 100);
  REQUIRE(all);
  REQUIRE(all->events.size() == 2); // a and b opened; nothing of c
  for (auto& e : all->events)
    CHECK(e.id.str() != "c");
  CHECK(n.ask<account>("c", open{"cy", 0}).value() == 0); // and it can come back
}
