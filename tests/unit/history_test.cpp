// Historical state and the audit trail (node::state_at, state_at_time, history) on memory storage.
#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/runtime/node.hpp"
#include "journal_wrappers.hpp"
#include "test_env.hpp"
#include "transfer.hpp"

using namespace cafes;
using namespace bank;
using cafes::test::wrapped_journal;

namespace {

constexpr std::int32_t parts = 4;

struct storage {
  std::shared_ptr<wrapped_journal> j =
    std::make_shared<wrapped_journal>(make_memory_journal("hist.account.events", parts));
  std::shared_ptr<snapshot_store> s = make_memory_snapshot_store(parts);
};

node_config memory_config(std::string name = "node-1") {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "hist";
  c.node_name = std::move(name);
  c.log_level = "warn";
  c.threads = 2;
  c.command_timeout = cafes::test::scaled(c.command_timeout);
  return c;
}

host_options options(storage& st, std::uint64_t snapshot_every, bool assign_all = true) {
  host_options o;
  o.partitions = parts;
  o.journal = st.j;
  o.snapshots = st.s;
  o.snapshot_every = snapshot_every;
  o.assign_all = assign_all;
  o.idle_timeout = std::chrono::milliseconds{1'000'000};
  return o;
}

std::string packed(const account::state& s) {
  msgpack::sbuffer b;
  msgpack::pack(b, s);
  return {b.data(), b.size()};
}

/// The state after the first `n` of `events`.
account::state fold(const std::vector<account::events>& events, std::size_t n) {
  account::state s;
  for (std::size_t i = 0; i < n; ++i)
    std::visit([&](const auto& e) { account::apply(s, e); }, events[i]);
  return s;
}

/// What one aggregate's commands wrote: its events and their command ids, in order.
struct written {
  std::vector<account::events> events;
  std::vector<std::string> command_ids;
};

/// Opens `id` and makes `deposits` deposits and one withdrawal: 2 + deposits events.
written write(node& n, const std::string& id, int deposits) {
  written w;
  REQUIRE(n.ask<account>(id, open{"ann", 10}, id + "/open"));
  w.events.emplace_back(opened{"ann", 10});
  w.command_ids.push_back(id + "/open");
  for (int i = 1; i <= deposits; ++i) {
    const auto ref = "r" + std::to_string(i), cid = id + "/c" + std::to_string(i);
    REQUIRE(n.ask<account>(id, deposit{i, ref}, cid));
    w.events.emplace_back(deposited{i, ref});
    w.command_ids.push_back(cid);
  }
  REQUIRE(n.ask<account>(id, withdraw{7, "w"}, id + "/w"));
  w.events.emplace_back(withdrawn{7, "w"});
  w.command_ids.push_back(id + "/w");
  return w;
}

/// Waits (bounded) until the snapshot store holds a snapshot of `id` at `seq`.
void wait_for_snapshot(snapshot_store& s, const std::string& id, std::uint64_t seq) {
  auto aid = aggregate_id::make(id).value();
  REQUIRE(cafes::test::eventually([&] {
    auto snap = s.load(aid);
    return snap && *snap && (*snap)->seq.value() == seq;
  }));
}

} // namespace

TEST_CASE("state_at is the fold of the first N events, before and after a snapshot", "[history]") {
  storage st;
  node n{memory_config()};
  REQUIRE(n.host<account>(options(st, 5)));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  auto w = write(n, "acc-1", 11); // 13 events: snapshots after 5 and 10
  auto other = write(n, "acc-2", 3);
  wait_for_snapshot(*st.s, "acc-1", 10);

  for (std::uint64_t seq : {1, 2, 4, 5, 6, 9, 10, 11, 12, 13}) {
    INFO("seq " << seq);
    auto s = n.state_at<account>("acc-1", seq);
    REQUIRE(s);
    CHECK(packed(*s) == packed(fold(w.events, seq)));
  }
  CHECK(n.state_at<account>("acc-2", 5).value().balance == 1 + 2 + 3 - 7);

  // At or after the snapshot's seq, it starts from the snapshot: it reads only the events
  // after the snapshot's offset. Before it, it replays the partition from its start.
  const auto p = partition_for("acc-1", parts).value();
  st.j->reset_counts();
  REQUIRE(n.state_at<account>("acc-1", 10));
  const auto at_snapshot = st.j->events_read(p);
  st.j->reset_counts();
  REQUIRE(n.state_at<account>("acc-1", 13));
  const auto after = st.j->events_read(p);
  st.j->reset_counts();
  REQUIRE(n.state_at<account>("acc-1", 3));
  const auto before = st.j->events_read(p);
  CHECK(at_snapshot == 0);
  CHECK(after < 13);
  CHECK(before >= 3);

  // The live aggregate is undisturbed: it goes on from its own state.
  CHECK(n.ask<account>("acc-1", deposit{100, "later"}).value() == fold(w.events, 13).balance + 100);
  CHECK(n.stats("account")->sequence_errors == 0);
  CHECK(n.state_at<account>("acc-1", 14).value().balance == fold(w.events, 13).balance + 100);
}

TEST_CASE("history is every event as written, with its metadata", "[history]") {
  storage st;
  node n{memory_config()};
  REQUIRE(n.host<account>(options(st, 4)));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  auto w = write(n, "acc-1", 5);
  write(n, "acc-2", 2); // another aggregate, maybe in the same partition

  auto h = n.history<account>("acc-1");
  REQUIRE(h);
  REQUIRE(h->size() == w.events.size());
  const auto p = partition_for("acc-1", parts);
  std::int64_t last_offset = -1;
  for (std::size_t i = 0; i < h->size(); ++i) {
    auto& e = (*h)[i];
    INFO("event " << i);
    CHECK(e.seq.value() == i + 1);
    CHECK(e.type == std::visit([](const auto& x) { return std::string{std::decay_t<decltype(x)>::type_name}; },
                               w.events[i]));
    CHECK(e.event.index() == w.events[i].index());
    CHECK(e.schema_version == (e.get<deposited>() ? 2u : 1u)); // the version each type writes today
    CHECK(e.command_id == w.command_ids[i]);
    CHECK(e.writer_node == "node-1");
    CHECK(e.epoch >= 1);
    CHECK(e.partition == p);
    CHECK(e.off.value() > last_offset);
    CHECK(e.time_ms > 0);
    last_offset = e.off.value();
  }
  REQUIRE((*h)[0].get<opened>());
  CHECK((*h)[0].get<opened>()->owner == "ann");
  CHECK((*h)[0].get<deposited>() == nullptr);
  REQUIRE((*h)[3].get<deposited>());
  CHECK((*h)[3].get<deposited>()->amount == 3);
  CHECK((*h)[3].get<deposited>()->reference == "r3");
  std::int64_t sum = 0;
  for (auto& e : *h)
    e.visit([&]<class E>(const E& ev) {
      if constexpr (std::is_same_v<E, deposited>)
        sum += ev.amount;
    });
  CHECK(sum == 1 + 2 + 3 + 4 + 5);
}

TEST_CASE("state_at_time is the state after the last event at or before the time", "[history]") {
  storage st;
  node n{memory_config()};
  REQUIRE(n.host<account>(options(st, 3)));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  written w;
  // Events a few milliseconds apart, so that several times fall between them.
  for (int round = 0; round < 3; ++round) {
    if (round == 0)
      w = write(n, "acc-1", 2);
    else
      for (int i = 0; i < 2; ++i) {
        const auto ref = "x" + std::to_string(round) + std::to_string(i);
        REQUIRE(n.ask<account>("acc-1", deposit{10, ref}));
        w.events.emplace_back(deposited{10, ref});
      }
    const auto t = std::chrono::system_clock::now();
    while (std::chrono::system_clock::now() - t < std::chrono::milliseconds{3}) // the clock must move on
      std::this_thread::yield();
  }
  wait_for_snapshot(*st.s, "acc-1", 6);
  auto h = n.history<account>("acc-1");
  REQUIRE(h);
  REQUIRE(h->size() == w.events.size());
  for (auto& e : *h) {
    // The expected prefix: every event whose time is at or before this one's.
    std::size_t upto = 0;
    while (upto < h->size() && (*h)[upto].time_ms <= e.time_ms)
      ++upto;
    INFO("seq " << e.seq.value() << " at " << e.time_ms << " ms: " << upto << " events");
    auto s = n.state_at_time<account>("acc-1", e.time());
    REQUIRE(s);
    CHECK(packed(*s) == packed(fold(w.events, upto)));
  }
  auto latest = n.state_at_time<account>("acc-1", std::chrono::system_clock::now() + std::chrono::hours{1});
  REQUIRE(latest);
  CHECK(packed(*latest) == packed(fold(w.events, w.events.size())));
  auto early = n.state_at_time<account>("acc-1", h->front().time() - std::chrono::milliseconds{1});
  REQUIRE_FALSE(early);
  CHECK(early.error() == actor_errc::out_of_history);
}

TEST_CASE("state_at and history refuse bad input with typed errors", "[history][bad-input]") {
  storage st;
  node n{memory_config()};
  REQUIRE(n.host<account>(options(st, 100)));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  write(n, "acc-1", 2); // 4 events

  CHECK(n.state_at<transfer>("t-1", 1).error() == actor_errc::unknown_aggregate_type);
  CHECK(n.history<transfer>("t-1").error() == actor_errc::unknown_aggregate_type);
  CHECK(n.state_at_time<transfer>("t-1", std::chrono::system_clock::now()).error() ==
        actor_errc::unknown_aggregate_type);

  CHECK(n.state_at<account>("nobody", 1).error() == actor_errc::no_history);
  CHECK(n.history<account>("nobody").error() == actor_errc::no_history);
  CHECK(n.state_at_time<account>("nobody", std::chrono::system_clock::now()).error() == actor_errc::no_history);

  CHECK(n.state_at<account>("acc-1", 0).error() == errc::invalid_argument);
  CHECK(n.state_at<account>("acc-1", 4));
  auto beyond = n.state_at<account>("acc-1", 5);
  REQUIRE_FALSE(beyond);
  CHECK(beyond.error() == actor_errc::out_of_history);
  CHECK(beyond.error().message.find("has 4 events") != std::string::npos);
  CHECK(n.state_at<account>("acc-1", ~std::uint64_t{0}).error() == actor_errc::out_of_history);

  CHECK(n.state_at<account>("", 1).error() == errc::invalid_aggregate_id);
  CHECK(n.history<account>("__cafes.x").error() == errc::reserved_aggregate_id);
  CHECK(n.stats("account")->sequence_errors == 0);
}

TEST_CASE("state_at and history work on a node that does not own the partition", "[history][ownership]") {
  storage st;
  node owner{memory_config("node-a")};
  REQUIRE(owner.host<account>(options(st, 3)));
  REQUIRE(owner.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  auto w = write(owner, "acc-1", 4);
  wait_for_snapshot(*st.s, "acc-1", 6);

  node reader{memory_config("node-b")};
  REQUIRE(reader.host<account>(options(st, 3, false))); // owns no partition
  REQUIRE(reader.owned("account").value().empty());
  for (std::uint64_t seq = 1; seq <= w.events.size(); ++seq)
    CHECK(packed(reader.state_at<account>("acc-1", seq).value()) == packed(fold(w.events, seq)));
  auto h = reader.history<account>("acc-1");
  REQUIRE(h);
  CHECK(h->size() == w.events.size());
  CHECK(h->back().writer_node == "node-a");
  // Commands still go to the owner only.
  CHECK(reader.ask<account>("acc-1", get_balance{}).error() == actor_errc::not_owner);
}
