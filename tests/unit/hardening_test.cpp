// The write, recovery and reply paths under the rare outcomes: unknown appends, batches that
// complete out of order, partial batch outcomes, refusals, pipelined replies, corrupt records.
#include <algorithm>
#include <atomic>
#include <thread>
#include <map>
#include <numeric>
#include <mutex>

#include <caf/all.hpp>
#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/runtime/node.hpp"
#include "journal_contract.hpp"
#include "journal_wrappers.hpp"
#include "manual_journal.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace bank;
using cafes::test::eventually;
using cafes::test::scaled;

namespace {

/// A pipelined counter: `add` emits, `check` rejects when the value is over a limit.
struct added {
  static constexpr std::string_view type_name = "counter.added";
  std::int64_t n = 0;
  MSGPACK_DEFINE_MAP(n);
};
struct add {
  std::int64_t n = 0;
};
struct check {
  std::int64_t limit = 0;
};
struct counter {
  static constexpr std::string_view name = "counter";
  static constexpr bool pipelining = true;
  struct state {
    std::int64_t value = 0;
    MSGPACK_DEFINE_MAP(value);
  };
  using commands = std::variant<add, check>;
  using events = std::variant<added>;
  static decision<std::int64_t> handle(const state& s, const add& c) { return emit(added{c.n}).reply(s.value + c.n); }
  static decision<std::int64_t> handle(const state& s, const check& c) {
    if (s.value > c.limit)
      return reject(errc::invalid_argument, "over the limit");
    return reply(s.value);
  }
  static void apply(state& s, const added& e) { s.value += e.n; }
};

/// A blob store whose state keeps every event's bytes: its state outgrows a snapshot long
/// before any one event is too large.
struct appended {
  static constexpr std::string_view type_name = "blob.appended";
  std::string bytes;
  MSGPACK_DEFINE_MAP(bytes);
};
struct append_bytes {
  std::size_t size = 0;
};
struct blob {
  static constexpr std::string_view name = "blob";
  struct state {
    std::string bytes;
    MSGPACK_DEFINE_MAP(bytes);
  };
  using commands = std::variant<append_bytes>;
  using events = std::variant<appended>;
  static decision<std::size_t> handle(const state& s, const append_bytes& c) {
    return emit(appended{std::string(c.size, 'x')}).reply(s.bytes.size() + c.size);
  }
  static void apply(state& s, const appended& e) { s.bytes += e.bytes; }
};

/// A journal whose chosen appends are written at once but answered only when the test
/// releases them (an append that completes late, after later ones), and which can refuse
/// one aggregate's events of a batch before writing (a partial outcome).
class gated_journal final : public journal {
 public:
  explicit gated_journal(std::shared_ptr<journal> inner) : inner_(std::move(inner)) {}

  /// Appends whose batch matches are held.
  std::function<bool(const std::vector<event_envelope>&)> hold_if;
  /// Events of this aggregate are not written and reported not_written, with event_too_large.
  std::string refuse;

  void append(std::vector<event_envelope> batch, append_callback cb) override {
    const bool hold = hold_if && hold_if(batch);
    std::vector<event_envelope> kept;
    std::vector<bool> refused;
    for (auto& e : batch) {
      refused.push_back(!refuse.empty() && e.id.str() == refuse);
      if (!refused.back())
        kept.push_back(e);
    }
    inner_->append(std::move(kept), [this, hold, refused, cb](append_result r) {
      if (std::find(refused.begin(), refused.end(), true) != refused.end()) {
        append_result mixed;
        std::size_t k = 0;
        for (bool no : refused) {
          mixed.positions.push_back(no ? position{} : r.positions.at(k));
          mixed.outcomes.push_back(no ? event_outcome::not_written : r.outcome(k));
          k += no ? 0 : 1;
        }
        mixed.err = cafes::error{errc::event_too_large, "injected refusal"};
        r = std::move(mixed);
      }
      std::lock_guard guard{mtx_};
      if (hold)
        held_.push_back([cb, r] { cb(r); });
      else
        cb(std::move(r));
    });
  }

  std::size_t held() {
    std::lock_guard guard{mtx_};
    return held_.size();
  }

  void release() {
    std::vector<std::function<void()>> go;
    {
      std::lock_guard guard{mtx_};
      go.swap(held_);
    }
    for (auto& f : go)
      f();
  }

  expected<read_chunk> read(partition_id p, offset from, std::size_t max) override {
    auto r = inner_->read(p, from, max);
    if (r)
      reads += r->events.size();
    return r;
  }
  expected<offset> end_offset(partition_id p) override { return inner_->end_offset(p); }
  std::int32_t partitions() const noexcept override { return inner_->partitions(); }
  const std::string& topic() const noexcept override { return inner_->topic(); }

  std::atomic<std::uint64_t> reads{0};

 private:
  std::shared_ptr<journal> inner_;
  std::mutex mtx_;
  std::vector<std::function<void()>> held_;
};

node_config memory_config() {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "hard";
  c.log_level = "off";
  c.threads = 2;
  c.command_timeout = scaled(std::chrono::seconds{10});
  return c;
}

bool has(const std::vector<event_envelope>& batch, std::string_view id) {
  return std::any_of(batch.begin(), batch.end(), [&](auto& e) { return e.id.str() == id; });
}

/// Reads an aggregate's seqs in journal order, over every partition.
std::vector<std::uint64_t> seqs_of(journal& j, const std::string& id) {
  std::vector<std::uint64_t> out;
  for (std::int32_t p = 0; p < j.partitions(); ++p) {
    offset from{0};
    for (;;) {
      auto c = j.read(partition_id{p}, from, 1000);
      REQUIRE(c);
      for (auto& e : c->events)
        if (e.id.str() == id)
          out.push_back(e.seq.value());
      if (c->end)
        break;
      from = c->next;
    }
  }
  return out;
}

/// Reads the amounts of a counter's events in journal order (one partition).
std::vector<std::int64_t> added_of(journal& j, const std::string& id) {
  std::vector<std::int64_t> out;
  auto ops = make_ops<counter>();
  auto c = j.read(partition_id{0}, offset{0}, 1000);
  REQUIRE(c);
  for (auto& e : c->events)
    if (e.id.str() == id)
      out.push_back(std::any_cast<added>(ops->decode_event(e).value()).n);
  return out;
}

/// Storage that outlives node restarts: one partition, so every aggregate shares it.
struct one_partition {
  std::shared_ptr<journal> mem = make_memory_journal("hard.account.events", 1);
  std::shared_ptr<test::wrapped_journal> faulty = std::make_shared<test::wrapped_journal>(mem);
  std::shared_ptr<gated_journal> gated = std::make_shared<gated_journal>(faulty);
  std::shared_ptr<snapshot_store> s = make_memory_snapshot_store(1);

  host_options options(std::uint64_t max_replay) const {
    host_options o;
    o.partitions = 1;
    o.journal = gated;
    o.snapshots = s;
    o.max_replay = max_replay;
    o.snapshot_every = 1'000'000; // only the partition asks for snapshots
    return o;
  }

  std::int64_t stored_checkpoint() {
    auto c = s->load_checkpoint(partition_id{0});
    REQUIRE(c);
    return c->value_or(offset{0}).value();
  }
};

/// Writes `n` deposits to `id` one after another.
void deposits(node& n, const std::string& id, int count) {
  for (int i = 0; i < count; ++i)
    REQUIRE(n.ask<account>(id, deposit{1, id + "-" + std::to_string(i)}));
}

} // namespace

TEST_CASE("an append with an unknown outcome holds the checkpoint until the aggregate caught up", "[hardening]") {
  // Fails on the code before the fix: the aggregate answered the partition's snapshot
  // request with its durable prefix, the checkpoint moved past its landed deposit, and after
  // a restart the account had lost it (and would have reused its seq).
  one_partition st;
  {
    node n{memory_config()};
    REQUIRE(n.host<account>(st.options(20)));
    REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
    REQUIRE(n.ask<account>("a", open{"ann", 0}));
    std::atomic<bool> arm{true};
    st.faulty->fault = [&](std::uint64_t) {
      return arm.exchange(false) ? test::append_fault::fail_after_write : test::append_fault::none;
    };
    auto r = n.ask<account>("a", deposit{100, "landed"});
    REQUIRE_FALSE(r);
    CHECK(r.error() == actor_errc::persist_failed);
    // Other aggregates of the partition move the end far on; the partition asks the
    // aggregates that hold the checkpoint back to snapshot.
    REQUIRE(n.ask<account>("b", open{"bob", 0}));
    deposits(n, "b", 60);
    REQUIRE(eventually([&] { return st.stored_checkpoint() > 40; }));
    st.faulty->fault = nullptr;
  }
  node n{memory_config()};
  REQUIRE(n.host<account>(st.options(20)));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  CHECK(n.ask<account>("a", get_balance{}).value() == 100); // the landed deposit is kept
  CHECK(n.ask<account>("a", deposit{5, "after"}).value() == 105);
  CHECK(seqs_of(*st.mem, "a") == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(n.stats("account")->sequence_errors == 0);
}

TEST_CASE("a batch that completes late holds the checkpoint below its events", "[hardening]") {
  // Fails on the code before the fix: later batches completed first, their snapshots moved
  // the checkpoint past the late batch's deposit, and a restart lost it.
  one_partition st;
  // Snapshots are asked for past 40 events; commands are held back past 80 (the held batch
  // holds the checkpoint at 2), which these 63 events stay below.
  {
    node n{memory_config()};
    REQUIRE(n.host<account>(st.options(80)));
    REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
    REQUIRE(n.ask<account>("a", open{"ann", 0}));
    REQUIRE(n.ask<account>("b", open{"bob", 0}));
    st.gated->hold_if = [](auto& batch) { return has(batch, "a"); };
    auto late = n.ask_async<account>("a", deposit{100, "late"});
    REQUIRE(eventually([&] { return st.gated->held() == 1; }));
    deposits(n, "b", 60); // three more batches may fly beside the held one
    // The partition has asked for snapshots meanwhile (and b's are written).
    REQUIRE(eventually([&] { return n.stats("account")->snapshots_written >= 1; }));
    REQUIRE(n.ask<account>("b", get_balance{}).value() == 60);
    CHECK(st.stored_checkpoint() <= 2); // the held deposit sits at offset 2
    // The node stops before the late append is answered (a crash, as far as it knows).
    st.gated->hold_if = nullptr;
  }
  node n{memory_config()};
  REQUIRE(n.host<account>(st.options(80)));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  CHECK(n.ask<account>("a", get_balance{}).value() == 100);
  CHECK(n.ask<account>("a", deposit{5, "after"}).value() == 105);
  CHECK(seqs_of(*st.mem, "a") == std::vector<std::uint64_t>{1, 2, 3});
}

TEST_CASE("a partition holds commands back while its checkpoint lags max_replay behind", "[hardening]") {
  // Fails on the code before the fix: commands went on while the checkpoint could not move,
  // and a recovery would have read every one of their events.
  one_partition st;
  node n{memory_config()};
  REQUIRE(n.host<account>(st.options(20)));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  REQUIRE(n.ask<account>("a", open{"ann", 0}));
  REQUIRE(n.ask<account>("b", open{"bob", 0}));
  st.gated->hold_if = [](auto& batch) { return has(batch, "a"); };
  auto held = n.ask_async<account>("a", deposit{100, "held"}); // holds the checkpoint at 2
  REQUIRE(eventually([&] { return st.gated->held() == 1; }));
  // One deposit after another, until the partition holds one back.
  std::vector<std::future<expected<std::int64_t>>> more;
  auto throttled = [&] { return n.stats("account")->throttles >= 1; };
  for (int i = 0; i < 40 && !throttled(); ++i) {
    more.push_back(n.ask_async<account>("b", deposit{1, "b" + std::to_string(i)}));
    REQUIRE(eventually([&] {
      return throttled() || more.back().wait_for(std::chrono::seconds{0}) == std::future_status::ready;
    }));
  }
  REQUIRE(throttled());
  CHECK(n.stats("account")->events_persisted <= 2 + 20); // the bound: nothing else was in flight
  CHECK(n.stats("account")->backlog == 0);               // the command waits in the partition
  CHECK(more.back().wait_for(std::chrono::seconds{0}) != std::future_status::ready);
  st.gated->hold_if = nullptr;
  st.gated->release(); // the checkpoint moves on: the held command is served
  REQUIRE(held.get());
  auto s = n.stats("account");
  for (auto& f : more) {
    auto r = f.get();
    INFO("checkpoints " << s->checkpoints_written << ", snapshots " << s->snapshots_written << ", stored "
                        << st.stored_checkpoint() << ", events " << s->events_persisted);
    REQUIRE(r);
  }
  CHECK(n.ask<account>("b", get_balance{}).value() == static_cast<std::int64_t>(more.size()));
}

TEST_CASE("each request of a batch gets its own outcome", "[hardening]") {
  // Fails on the code before the fix: one aggregate's failed event failed the other's
  // durable one too.
  one_partition st;
  node n{memory_config()};
  auto opts = st.options(10'000);
  opts.batching.max_in_flight = 1;
  REQUIRE(n.host<account>(opts));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  REQUIRE(n.ask<account>("a", open{"ann", 0}));
  REQUIRE(n.ask<account>("b", open{"bob", 0}));
  REQUIRE(n.ask<account>("c", open{"cy", 0}));
  // The first append is held, so that the next two commands share one batch.
  st.gated->hold_if = [](auto& batch) { return has(batch, "c"); };
  st.gated->refuse = "a";
  auto c = n.ask_async<account>("c", deposit{1, "c1"});
  REQUIRE(eventually([&] { return st.gated->held() == 1; }));
  auto a = n.ask_async<account>("a", deposit{7, "a1"});
  auto b = n.ask_async<account>("b", deposit{9, "b1"});
  REQUIRE(eventually([&] { return n.stats("account")->backlog == 2; })); // both wait in the journal actor
  st.gated->hold_if = nullptr;
  st.gated->release();
  REQUIRE(c.get());
  auto ra = a.get();
  auto rb = b.get();
  REQUIRE(rb);
  CHECK(*rb == 9);
  REQUIRE_FALSE(ra);
  CHECK(ra.error() == errc::event_too_large); // refused, with its cause
  // Nothing needed a re-read, and both go on.
  st.gated->refuse.clear();
  CHECK(st.gated->reads == 0);
  CHECK(n.ask<account>("b", get_balance{}).value() == 9);
  CHECK(n.ask<account>("a", deposit{3, "a2"}).value() == 3);
  CHECK(seqs_of(*st.mem, "a") == std::vector<std::uint64_t>{1, 2});
}

TEST_CASE("a pipelined aggregate answers a rejection after the commands before it", "[hardening]") {
  // Fails on the code before the fix: the rejection was answered at once, ahead of the
  // earlier command still in flight.
  one_partition st;
  node n{memory_config()};
  auto opts = st.options(10'000);
  opts.journal = std::make_shared<gated_journal>(make_memory_journal("hard.counter.events", 1));
  auto gated = std::static_pointer_cast<gated_journal>(opts.journal);
  REQUIRE(n.host<counter>(opts));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  gated->hold_if = [](auto&) { return true; };
  auto router = n.router<counter>();
  REQUIRE(router);
  caf::scoped_actor self{n.system()};
  self->send(*router, make_command<counter>("k", add{5}));
  self->send(*router, make_command<counter>("k", check{1})); // decided on the speculative 5
  REQUIRE(eventually([&] { return gated->held() == 1 && n.stats("counter")->rejections == 1; }));
  gated->release();
  std::vector<std::string> order;
  for (int i = 0; i < 2; ++i)
    self->receive(
      [&](command_reply& r) { order.push_back(r.err ? "rejected" : "added"); },
      caf::after(scaled(std::chrono::seconds{10})) >> [&] { order.push_back("timeout"); });
  CHECK(order == std::vector<std::string>{"added", "rejected"});
}

TEST_CASE("a full journal backlog answers overloaded, writes nothing and needs no re-read", "[hardening]") {
  // Fails on the code before the fix: the client got persist_failed and the aggregate
  // re-read the journal.
  one_partition st;
  node n{memory_config()};
  auto opts = st.options(10'000);
  opts.batching.max_in_flight = 1;
  opts.batching.max_pending_events = 1;
  REQUIRE(n.host<account>(opts));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  for (auto id : {"a", "b", "c"})
    REQUIRE(n.ask<account>(id, open{"o", 0}));
  st.gated->hold_if = [](auto& batch) { return has(batch, "a"); };
  auto a = n.ask_async<account>("a", deposit{1, "a1"}); // in flight, held
  REQUIRE(eventually([&] { return st.gated->held() == 1; }));
  auto b = n.ask_async<account>("b", deposit{2, "b1"}); // waits in the backlog (1 event)
  REQUIRE(eventually([&] { return n.stats("account")->backlog == 1; }));
  auto c = n.ask<account>("c", deposit{3, "c1"}); // beyond the backlog bound
  REQUIRE_FALSE(c);
  CHECK(c.error() == actor_errc::overloaded);
  CHECK(n.stats("account")->overloads == 1);
  st.gated->hold_if = nullptr;
  st.gated->release();
  REQUIRE(a.get());
  REQUIRE(b.get());
  CHECK(st.gated->reads == 0);                          // no catch-up
  CHECK(seqs_of(*st.mem, "c") == std::vector<std::uint64_t>{1}); // only its open
  CHECK(n.ask<account>("c", deposit{3, "c2"}).value() == 3);
}

TEST_CASE("an event record that names the state type stops recovery with a typed error", "[hardening]") {
  // Fails on the code before the fix: the record decoded as a state, apply ignored it, and
  // its seq was consumed silently.
  auto j = std::shared_ptr<journal>(make_memory_journal("hard.account.events", 1));
  auto s = std::shared_ptr<snapshot_store>(make_memory_snapshot_store(1));
  auto ops = make_ops<account>();
  auto state = ops->encode_state(ops->initial_state());
  REQUIRE(state);
  event_envelope e;
  e.id = aggregate_id::make("a").value();
  e.seq = seq_nr{1};
  e.type = state->type;
  e.schema_version = state->version;
  e.source = "/test";
  e.payload = state->bytes;
  REQUIRE(j->append_sync({e}));
  node n{memory_config()};
  host_options o;
  o.partitions = 1;
  o.journal = j;
  o.snapshots = s;
  REQUIRE(n.host<account>(o));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  CHECK(n.stats("account")->partitions_failed == 1);
  auto r = n.ask<account>("a", get_balance{});
  REQUIRE_FALSE(r);
  CHECK(r.error() == actor_errc::recovery_failed);
  CHECK_THAT(r.error().message, Catch::Contains("names the state type") && Catch::Contains("@0"));
}

namespace {

/// A snapshot store whose checkpoint record does not decode.
class corrupt_checkpoint_store final : public snapshot_store {
 public:
  explicit corrupt_checkpoint_store(std::shared_ptr<snapshot_store> inner) : inner_(std::move(inner)) {}
  void save(snapshot s, save_callback cb) override { inner_->save(std::move(s), std::move(cb)); }
  expected<std::optional<snapshot>> load(const aggregate_id& id) override { return inner_->load(id); }
  expected<void> scan(partition_id p, const std::function<void(snapshot)>& f,
                      const std::function<void(const record&, const cafes::error&)>& bad) override {
    return inner_->scan(p, f, bad);
  }
  expected<void> save_mark(partition_id p, partition_mark m) override { return inner_->save_mark(p, m); }
  expected<std::optional<partition_mark>> load_mark(partition_id) override {
    return cafes::error{errc::malformed_record, "injected: the checkpoint does not decode"};
  }
  std::int32_t partitions() const noexcept override { return inner_->partitions(); }

 private:
  std::shared_ptr<snapshot_store> inner_;
};

} // namespace

TEST_CASE("a corrupt checkpoint falls back to a full replay, logged and counted", "[hardening]") {
  // Fails on the code before the fix: the partition stopped for good.
  one_partition st;
  {
    node n{memory_config()};
    REQUIRE(n.host<account>(st.options(20)));
    REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
    REQUIRE(n.ask<account>("a", open{"ann", 0}));
    deposits(n, "a", 50);
  }
  node n{memory_config()};
  auto o = st.options(20);
  o.snapshots = std::make_shared<corrupt_checkpoint_store>(st.s);
  REQUIRE(n.host<account>(o));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  CHECK(n.stats("account")->partitions_failed == 0);
  CHECK(n.stats("account")->corrupt_snapshots >= 1);
  CHECK(n.ask<account>("a", get_balance{}).value() == 50);
}

TEST_CASE("a command timeout not longer than the delivery timeout is refused at start", "[hardening]") {
  // Fails on the code before the fix: the defaults themselves were 10 s against 30 s, so a
  // client saw timeout while its events could still land.
  node_config c;
  c.log_level = "off";
  CHECK(c.command_timeout > c.delivery_timeout); // the defaults are consistent
  c.command_timeout = std::chrono::seconds{5};
  c.delivery_timeout = std::chrono::seconds{10};
  auto n = node::start(c);
  REQUIRE_FALSE(n);
  CHECK(n.error() == errc::invalid_argument);
  CHECK_THAT(n.error().message, Catch::Contains("delivery timeout"));
}

TEST_CASE("a refusal that overtakes a pipelined aggregate's persists in flight never reuses their seqs",
          "[hardening]") {
  // Fails without the escalation in on_persisted: the refusal of the third command failed the
  // first two as well, the aggregate forgot their events though they landed, and its next
  // command wrote seq 1 again.
  auto mem = std::shared_ptr<journal>(make_memory_journal("hard.counter.events", 1));
  auto gated = std::make_shared<gated_journal>(mem);
  node n{memory_config()};
  host_options o;
  o.partitions = 1;
  o.journal = gated;
  o.snapshots = make_memory_snapshot_store(1);
  o.batching.max_in_flight = 1;
  o.batching.max_pending_events = 1;
  REQUIRE(n.host<counter>(o));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  gated->hold_if = [](auto&) { return true; };
  auto first = n.ask_async<counter>("k", add{1});  // in flight, held
  REQUIRE(eventually([&] { return gated->held() == 1; }));
  auto second = n.ask_async<counter>("k", add{2}); // waits in the backlog
  REQUIRE(eventually([&] { return n.stats("counter")->backlog == 1; }));
  auto third = n.ask<counter>("k", add{3});        // beyond the bound: refused
  REQUIRE_FALSE(third);
  gated->hold_if = nullptr;
  gated->release();
  first.wait();
  second.wait();
  // Whatever the first two were answered, the state is the journal's fold, and the seqs
  // stay 1, 2, 3, ... with no repeat.
  auto after = n.ask<counter>("k", add{10});
  REQUIRE(after);
  const auto seqs = seqs_of(*mem, "k");
  for (std::size_t i = 0; i < seqs.size(); ++i)
    CHECK(seqs[i] == i + 1);
  const auto amounts = added_of(*mem, "k");
  CHECK(*after == std::accumulate(amounts.begin(), amounts.end(), std::int64_t{0}));
}

TEST_CASE("a command whose new state could not be snapshotted is rejected with state_too_large", "[hardening]") {
  // Fails on the code before the fix: the command was written, and the state never
  // snapshotted again, holding its partition's checkpoint (and recovery) back for good.
  node n{memory_config()};
  REQUIRE(n.host<blob>({.partitions = 1}));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  const std::size_t part = 400 * 1024; // each event fits the 1 MiB limit
  REQUIRE(n.ask<blob>("b", append_bytes{part}).value() == part);
  REQUIRE(n.ask<blob>("b", append_bytes{part}).value() == 2 * part);
  auto third = n.ask<blob>("b", append_bytes{part}); // 1.2 MiB of state
  REQUIRE_FALSE(third);
  CHECK(third.error() == errc::state_too_large);
  CHECK(n.stats("blob")->events_persisted == 2);               // nothing of it was written
  CHECK(n.ask<blob>("b", append_bytes{1}).value() == 2 * part + 1); // and the aggregate goes on
}

namespace {

/// A pipelined counter "k" on one partition whose journal appends the test completes one by
/// one, and a client that reads the replies in the order they arrive.
struct manual_counter {
  std::shared_ptr<journal> mem = make_memory_journal("hard.counter.events", 1);
  std::shared_ptr<test::manual_journal> j = std::make_shared<test::manual_journal>(mem);
  node n{memory_config()};
  caf::scoped_actor client{n.system()};
  caf::actor router;

  manual_counter() {
    host_options o;
    o.partitions = 1;
    o.journal = j;
    o.snapshots = make_memory_snapshot_store(1);
    REQUIRE(n.host<counter>(o));
    REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
    router = n.router<counter>().value();
  }

  template <class C>
  void send(C c) {
    client->send(router, make_command<counter>("k", std::move(c)));
  }

  /// Returns the next reply: its value, or its error's code; "none" if none came within `bound`.
  std::string next(std::chrono::milliseconds bound = scaled(std::chrono::seconds{10})) {
    std::string out = "none";
    client->receive(
      [&](command_reply& r) {
        out = r.err ? r.err->code.message() : std::to_string(std::any_cast<std::int64_t>(r.value));
      },
      caf::after(bound) >> [] {});
    return out;
  }

  /// Returns the next reply if it is there already, without waiting.
  std::string now() { return next(std::chrono::milliseconds{0}); }

  /// Returns the aggregate's durable value. Its answer comes after every message the
  /// aggregate received before, so the replies those led to are in the client's mailbox.
  std::int64_t durable() {
    auto v = std::make_shared<std::atomic<std::int64_t>>(-1);
    auto ids = n.query<counter>([v](const counter::state& s) {
      v->store(s.value);
      return true;
    });
    REQUIRE(ids);
    REQUIRE(ids->size() == 1);
    return v->load();
  }
};

} // namespace

TEST_CASE("a pipelined aggregate replies only once the append holding its events completed, in command order",
          "[hardening][pipelining]") {
  // Fails when replies leave on decide: the first is there before its append completed.
  manual_counter t;
  t.send(add{1});   // 1
  t.send(add{2});   // 3, decided on the first command's events in flight
  t.send(check{0}); // rejected on the speculative 3; writes nothing
  t.send(add{4});   // 7
  // The first append is in the journal; the other two wait behind it in the journal actor
  // (one batch per aggregate in flight), so the aggregate has decided all four commands.
  REQUIRE(eventually([&] { return t.j->calls() == 1 && t.n.stats("counter")->backlog == 2; }));
  CHECK(t.now() == "none"); // a reply delivered on decide would be here by now
  t.j->succeed(0);
  CHECK(t.next() == "1");
  REQUIRE(eventually([&] { return t.j->calls() == 2; })); // the other two, in one append
  CHECK(t.j->batch(1).size() == 2);
  CHECK(t.durable() == 1);
  CHECK(t.now() == "none"); // nothing behind the open append left
  t.j->succeed(1);
  std::vector<std::string> rest;
  for (int i = 0; i < 3; ++i)
    rest.push_back(t.next());
  CHECK(rest == std::vector<std::string>{"3", "invalid_argument", "7"});
  CHECK(t.durable() == 7);
  CHECK(t.now() == "none");
  CHECK(seqs_of(*t.mem, "k") == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(added_of(*t.mem, "k") == std::vector<std::int64_t>{1, 2, 4});
}

TEST_CASE("a pipelined aggregate's failed append fails the command decided on it, and its state is what landed",
          "[hardening][pipelining]") {
  // Fails without the catch-up after an unknown outcome (the landed command is missing from
  // the state and its seq is written twice), and when the journal actor still sends the
  // command that built on the failed one (its event is in the journal).
  const std::string fate = GENERATE(as<std::string>{}, "landed", "lost", "refused");
  INFO("the failed append " << fate);
  manual_counter t;
  t.send(add{1});
  REQUIRE(eventually([&] { return t.j->calls() == 1; }));
  t.j->succeed(0);
  REQUIRE(t.next() == "1");
  t.send(add{2}); // #2: alone in the next append
  t.send(add{4}); // #3: decided on #2's events; waits in the journal actor behind them
  REQUIRE(eventually([&] { return t.j->calls() == 2 && t.n.stats("counter")->backlog == 1; }));
  CHECK(t.now() == "none");
  if (fate == "landed")
    t.j->fail_after_write(1); // unknown outcome, and #2's event is in the journal
  else if (fate == "lost")
    t.j->fail(1); // unknown outcome, and nothing of #2 is in the journal
  else
    t.j->refuse(1, cafes::error{errc::event_too_large, "injected refusal"});
  const std::string why = fate == "refused" ? "event_too_large" : "persist_failed";
  CHECK(t.next() == why); // #2
  CHECK(t.next() == why); // #3, which built on it
  // A later command is decided on the state after the catch-up: with #2 if it landed.
  t.send(add{8});
  REQUIRE(eventually([&] { return t.j->calls() == 3; }));
  t.j->succeed(2);
  const std::int64_t want = fate == "landed" ? 1 + 2 + 8 : 1 + 8;
  CHECK(t.next() == std::to_string(want));
  CHECK(t.durable() == want);
  CHECK(t.now() == "none");
  // The journal: #1, #2 if it landed, then #4, seqs contiguous; #3 was never handed to it.
  CHECK(t.j->events_of("k") == 3);
  if (fate == "landed") {
    CHECK(seqs_of(*t.mem, "k") == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(added_of(*t.mem, "k") == std::vector<std::int64_t>{1, 2, 8});
  } else {
    CHECK(seqs_of(*t.mem, "k") == std::vector<std::uint64_t>{1, 2});
    CHECK(added_of(*t.mem, "k") == std::vector<std::int64_t>{1, 8});
  }
  CHECK(t.n.stats("counter")->sequence_errors == 0);
}
