// Supervision of the aggregates' own code: a handle or apply that throws fails its command,
// restarts its aggregate from the journal, or stops only that aggregate; it never kills an
// actor, never loses an event and never stalls a partition.
#include <atomic>
#include <chrono>
#include <limits>
#include <stdexcept>

#include <catch2/catch.hpp>

#include "cafes/runtime/node.hpp"
#include "gated_journal.hpp"
#include "journal_wrappers.hpp"
#include "test_env.hpp"

using namespace cafes;
using cafes::test::eventually;
using cafes::test::scaled;

namespace {

constexpr auto never = std::numeric_limits<std::uint64_t>::max();

/// What the test makes the fragile aggregate's handlers do.
struct faults {
  static inline std::atomic<std::uint64_t> applies{0};        ///< calls of apply(added) so far
  static inline std::atomic<std::uint64_t> throw_from{never};  ///< apply(added) throws on calls from this one
  static inline std::atomic<std::uint64_t> throw_until{never}; ///< up to this one (excluded)
  static inline std::atomic<bool> poison_fixed{false};        ///< apply(poisoned) throws until set

  static void reset() {
    applies = 0;
    throw_from = never;
    throw_until = never;
    poison_fixed = false;
  }
  /// Makes apply(added) throw on its calls `first` to `last` - 1 from now (1: the next call).
  static void arm(std::uint64_t first, std::uint64_t last = never) {
    throw_from = applies + first;
    throw_until = last == never ? never : applies + last;
  }
};

struct added {
  static constexpr std::string_view type_name = "fragile.added";
  std::int64_t n = 0;
  MSGPACK_DEFINE_MAP(n);
};
struct poisoned {
  static constexpr std::string_view type_name = "fragile.poisoned";
  std::int64_t n = 0;
  MSGPACK_DEFINE_MAP(n);
};
struct add {
  std::int64_t n = 0;
};
struct get {};
struct explode {
  bool std_exception = true;
};
struct poison {
  std::int64_t n = 0;
};

/// A counter whose handlers throw when the test says so; pipelined or not.
template <bool Pipelined>
struct fragile_type {
  static constexpr std::string_view name = Pipelined ? "pipelined" : "fragile";
  static constexpr bool pipelining = Pipelined;
  struct state {
    std::int64_t value = 0;
    MSGPACK_DEFINE_MAP(value);
  };
  using commands = std::variant<add, get, explode, poison>;
  using events = std::variant<added, poisoned>;
  static decision<std::int64_t> handle(const state& s, const add& c) { return emit(added{c.n}).reply(s.value + c.n); }
  static decision<std::int64_t> handle(const state& s, const get&) { return reply(s.value); }
  static decision<std::int64_t> handle(const state&, const explode& c) {
    if (c.std_exception)
      throw std::runtime_error("the handler gave up");
    throw 42;
  }
  static decision<std::int64_t> handle(const state& s, const poison& c) {
    return emit(poisoned{c.n}).reply(s.value + c.n);
  }
  static void apply(state& s, const added& e) {
    const auto call = ++faults::applies;
    if (call >= faults::throw_from && call < faults::throw_until)
      throw std::runtime_error("apply flaked on call " + std::to_string(call));
    s.value += e.n;
  }
  static void apply(state& s, const poisoned& e) {
    if (!faults::poison_fixed)
      throw std::runtime_error("apply rejects a poisoned event");
    s.value += e.n;
  }
};

using fragile = fragile_type<false>;
using pipelined = fragile_type<true>;

const auto command_timeout = scaled(std::chrono::seconds{10});

node_config memory_config() {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "sup";
  c.log_level = "off";
  c.threads = 2;
  c.command_timeout = command_timeout;
  return c;
}

/// Storage that outlives node restarts: one partition, so every aggregate shares it.
struct storage {
  std::shared_ptr<journal> mem = make_memory_journal("sup.fragile.events", 1);
  std::shared_ptr<test::wrapped_journal> j = std::make_shared<test::wrapped_journal>(mem);
  std::shared_ptr<snapshot_store> s = make_memory_snapshot_store(1);

  host_options options(std::uint64_t max_replay, std::uint64_t snapshot_every) const {
    host_options o;
    o.partitions = 1;
    o.journal = j;
    o.snapshots = s;
    o.max_replay = max_replay;
    o.snapshot_every = snapshot_every;
    return o;
  }

  std::int64_t end() { return mem->end_offset(partition_id{0}).value().value(); }

  /// The stored checkpoint (-1: none).
  std::int64_t stored_checkpoint() {
    auto c = s->load_checkpoint(partition_id{0});
    REQUIRE(c);
    return c->value_or(offset{-1}).value();
  }

  /// The seqs of an aggregate's events, in journal order.
  std::vector<std::uint64_t> seqs_of(const std::string& id) {
    std::vector<std::uint64_t> out;
    auto c = mem->read(partition_id{0}, offset{0}, 100'000);
    REQUIRE(c);
    for (auto& e : c->events)
      if (e.id.str() == id)
        out.push_back(e.seq.value());
    return out;
  }
};

/// A journaled event of the fragile aggregate, as a node would write it.
event_envelope envelope(const std::string& id, std::uint64_t seq, std::any event) {
  auto enc = make_ops<fragile>()->encode_event(event);
  REQUIRE(enc);
  event_envelope e;
  e.id = aggregate_id::make(id).value();
  e.seq = seq_nr{seq};
  e.type = enc->type;
  e.schema_version = enc->version;
  e.source = "/cafes/sup.fragile.events";
  e.payload = enc->bytes;
  return e;
}

template <class A = fragile>
void start(node& n, const host_options& o) {
  REQUIRE(n.host<A>(o));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
}

} // namespace

TEST_CASE("a handle that throws fails its command at once with handler_failed, writes nothing, and its aggregate "
          "goes on",
          "[supervision]") {
  // Fails on the code before the fix: the exception killed the aggregate actor, the caller
  // got timeout after the command timeout, and later commands shutting_down.
  faults::reset();
  storage st;
  node n{memory_config()};
  start(n, st.options(10'000, 100));
  REQUIRE(n.ask<fragile>("f", add{5}).value() == 5);
  const auto end = st.end();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = n.ask<fragile>("f", explode{});
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r);
  CHECK(r.error() == actor_errc::handler_failed);
  CHECK_THAT(r.error().message, Catch::Contains("aggregate 'f' of type 'fragile'") &&
                                  Catch::Contains("handle threw: the handler gave up"));
  CHECK(took < command_timeout / 2); // at once, not when the command timed out
  auto u = n.ask<fragile>("f", explode{false});
  REQUIRE_FALSE(u);
  CHECK(u.error() == actor_errc::handler_failed);
  CHECK_THAT(u.error().message, Catch::Contains("handle threw: unknown exception"));
  CHECK(st.end() == end); // nothing written
  CHECK(n.ask<fragile>("f", get{}).value() == 5);
  CHECK(n.ask<fragile>("f", add{1}).value() == 6);
  CHECK(st.seqs_of("f") == std::vector<std::uint64_t>{1, 2});
  CHECK(n.stats("fragile")->handler_failures == 2);
  CHECK(n.stats("fragile")->aggregate_restarts == 0);
}

TEST_CASE("an event that apply rejects at decide time fails its command with handler_failed and is never written",
          "[supervision]") {
  // Fails on the code before the fix: the exception at decide time killed the aggregate actor.
  faults::reset();
  storage st;
  node n{memory_config()};
  start(n, st.options(10'000, 100));
  REQUIRE(n.ask<fragile>("f", add{5}).value() == 5);
  const auto end = st.end();
  auto r = n.ask<fragile>("f", poison{3});
  REQUIRE_FALSE(r);
  CHECK(r.error() == actor_errc::handler_failed);
  CHECK_THAT(r.error().message, Catch::Contains("aggregate 'f' of type 'fragile'") &&
                                  Catch::Contains("apply threw: apply rejects a poisoned event"));
  CHECK(st.end() == end); // the event apply cannot take never reaches the journal
  CHECK(n.ask<fragile>("f", add{1}).value() == 6);
  CHECK(st.seqs_of("f") == std::vector<std::uint64_t>{1, 2});
  CHECK(n.stats("fragile")->handler_failures == 1);
}

TEST_CASE("an apply that throws on the durable state restarts its aggregate from its snapshot and the journal",
          "[supervision]") {
  // Fails on the code before the fix: the exception killed the aggregate actor after its
  // events were durable; the command timed out and later ones got shutting_down.
  faults::reset();
  storage st;
  node n{memory_config()};
  start(n, st.options(10'000, 2)); // a snapshot every 2 events
  for (int i = 1; i <= 3; ++i)
    REQUIRE(n.ask<fragile>("f", add{i}));
  REQUIRE(eventually([&] { return n.stats("fragile")->snapshots_written >= 1; })); // of seq 2, at offset 1
  st.j->reset_counts();
  faults::arm(2, 3); // the next apply is on a copy at decide time; the second on the durable state
  auto r = n.ask<fragile>("f", add{4});
  REQUIRE(r); // its event is durable
  CHECK(*r == 10);
  CHECK(n.ask<fragile>("f", get{}).value() == 10); // waited for the restart, which read seqs 3 and 4 back
  CHECK(st.j->events_read(0) == 2);                // from the snapshot on
  CHECK(n.ask<fragile>("f", add{5}).value() == 15);
  CHECK(st.seqs_of("f") == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
  CHECK(n.stats("fragile")->aggregate_restarts == 1);
  CHECK(n.stats("fragile")->handler_failures == 0);
}

TEST_CASE("a pipelined aggregate restarts once its persists in flight are durable, and answers them all",
          "[supervision]") {
  // Fails if the restart is not started once the persists in flight are durable: the
  // commands after them wait for good. (It must not start before: the journal actor sends
  // the second command's event only after the first, possibly past the restart's barrier.)
  faults::reset();
  auto gated = std::make_shared<test::gated_journal>(make_memory_journal("sup.pipelined.events", 1), "c1");
  node n{memory_config()};
  start<pipelined>(n, {.partitions = 1, .journal = gated, .snapshots = make_memory_snapshot_store(1)});
  auto first = n.ask_async<pipelined>("p", add{1}, "c1"); // held in the journal
  REQUIRE(eventually([&] { return gated->holding(); }));
  auto second = n.ask_async<pipelined>("p", add{2}, "c2"); // decided on the speculative state
  REQUIRE(eventually([&] { return faults::applies == 2; }));
  faults::arm(1, 2); // the first command's event on the durable state
  gated->release();
  auto r1 = first.get();
  auto r2 = second.get();
  REQUIRE(r1);
  REQUIRE(r2);
  CHECK(*r1 == 1);
  CHECK(*r2 == 3);
  CHECK(n.ask<pipelined>("p", get{}).value() == 3);
  CHECK(n.ask<pipelined>("p", add{4}).value() == 7);
  CHECK(n.stats("pipelined")->aggregate_restarts == 1);
  CHECK(faults::applies == 2 + 1 + 2 + 2); // decided twice, the throw, both again in the restart, then add 4
}

TEST_CASE("on the embedded Kafka cluster, an apply that throws on the durable state restarts its aggregate",
          "[supervision][embedded]") {
  // The restart's Kafka path: the snapshot store's load(id) and the idempotent producer's
  // barrier record. Fails on the code before the fix as the memory variant does.
  faults::reset();
  auto cfg = memory_config();
  cfg.storage = storage_kind::kafka; // no bootstrap servers: the embedded mock cluster
  cfg.ns = test::unique_ns("sup");
  cfg.delivery_timeout = command_timeout / 2; // below the command timeout, as the node demands
  node n{cfg};
  start(n, {.partitions = 2, .snapshot_every = 2});
  for (int i = 1; i <= 3; ++i)
    REQUIRE(n.ask<fragile>("f", add{i}));
  REQUIRE(eventually([&] { return n.stats("fragile")->snapshots_written >= 1; })); // of seq 2
  const auto before = faults::applies.load();
  faults::arm(2, 3);
  auto r = n.ask<fragile>("f", add{4});
  REQUIRE(r);
  CHECK(*r == 10);
  CHECK(n.ask<fragile>("f", get{}).value() == 10);
  CHECK(n.ask<fragile>("f", add{5}).value() == 15);
  // 4 at decide time and on the durable state, 3 and 4 again from the snapshot on, 5 twice.
  CHECK(faults::applies - before == 6);
  CHECK(n.stats("fragile")->aggregate_restarts == 1);
  CHECK(n.stats("fragile")->corrupt_snapshots == 0);
}

TEST_CASE("an apply that throws while an aggregate catches up after an unknown outcome restarts it", "[supervision]") {
  // Fails on the code before the fix: the exception killed the aggregate actor during its
  // catch-up, and its commands timed out.
  faults::reset();
  storage st;
  node n{memory_config()};
  start(n, st.options(10'000, 100));
  REQUIRE(n.ask<fragile>("f", add{1}).value() == 1);
  std::atomic<bool> once{true};
  st.j->fault = [&](std::uint64_t) {
    return once.exchange(false) ? test::append_fault::fail_after_write : test::append_fault::none;
  };
  faults::arm(2, 3); // at decide time, then on the live state, as the catch-up applies the landed event
  auto r = n.ask<fragile>("f", add{2});
  REQUIRE_FALSE(r);
  CHECK(r.error() == actor_errc::persist_failed);
  CHECK(n.ask<fragile>("f", get{}).value() == 3); // the landed event is kept
  CHECK(n.ask<fragile>("f", add{3}).value() == 6);
  CHECK(st.seqs_of("f") == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(n.stats("fragile")->aggregate_restarts == 1);
}

TEST_CASE("an aggregate whose apply throws again while it restarts is stopped, keeps its events, and never stalls "
          "its partition",
          "[supervision]") {
  // Fails on the code before the fix: the exception killed the aggregate actor. Fails when
  // the replay bound counts stopped aggregates: g's commands stall once max_replay events
  // lie past f's first event. Fails when the stored checkpoint passes f's first event: the
  // second node loses f's events.
  faults::reset();
  storage st;
  const std::uint64_t max_replay = 20;
  {
    node n{memory_config()};
    start(n, st.options(max_replay, 1'000'000)); // only the bound asks for snapshots
    REQUIRE(n.ask<fragile>("f", add{1}).value() == 1); // at offset 0
    REQUIRE(n.ask<fragile>("g", add{1}).value() == 1);
    faults::arm(2); // on the durable state, and on every event while f is rebuilt
    auto r = n.ask<fragile>("f", add{2});
    REQUIRE(r); // its event is durable
    CHECK(*r == 3);
    auto stopped = n.ask<fragile>("f", get{});
    REQUIRE_FALSE(stopped);
    CHECK(stopped.error() == actor_errc::handler_failed);
    CHECK_THAT(stopped.error().message, Catch::Contains("aggregate 'f' of type 'fragile' is stopped") &&
                                          Catch::Contains("at sup.fragile.events/0@0") &&
                                          Catch::Contains("apply flaked"));
    CHECK(n.stats("fragile")->aggregate_restarts == 1);
    REQUIRE(eventually([&] { return n.stats("fragile")->aggregates_stopped == 1; }));
    faults::reset(); // only f is stopped: g's events are applied again
    for (std::uint64_t i = 0; i < 3 * max_replay; ++i)
      REQUIRE(n.ask<fragile>("g", add{1}));
    CHECK(n.ask<fragile>("g", get{}).value() == 1 + 3 * static_cast<std::int64_t>(max_replay));
    CHECK(n.ask<fragile>("f", add{1}).error() == actor_errc::handler_failed); // still stopped, writes nothing
    CHECK(n.stats("fragile")->snapshots_written >= 1); // g's, asked for by the bound
    CHECK(st.stored_checkpoint() <= 0);                // held at f's first event
  }
  node n{memory_config()};
  start(n, st.options(max_replay, 1'000'000));
  CHECK(n.ask<fragile>("f", get{}).value() == 3); // every event of f is back
  CHECK(n.ask<fragile>("f", add{4}).value() == 7);
  CHECK(st.seqs_of("f") == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(n.ask<fragile>("g", get{}).value() == 1 + 3 * static_cast<std::int64_t>(max_replay));
  CHECK(n.stats("fragile")->aggregates_stopped == 0);
}

TEST_CASE("an apply that throws during recovery stops only its aggregate, naming topic, partition and offset, "
          "until it is fixed",
          "[supervision]") {
  // Fails on the code before the fix: the exception killed the partition actor, and every
  // aggregate of the partition stopped answering. Fails when the replay bound counts stopped
  // aggregates (y's commands stall), or when the stored checkpoint passes x's first event (x
  // loses its events once fixed).
  faults::reset();
  storage st;
  const std::uint64_t max_replay = 20;
  auto written = st.mem->append_sync({envelope("y", 1, added{10}), envelope("x", 1, added{1}),
                                      envelope("x", 2, poisoned{5}), envelope("y", 2, added{10}),
                                      envelope("x", 3, added{100}), envelope("z", 1, added{7})});
  REQUIRE(written);
  REQUIRE(written->at(2).off == offset{2});
  {
    node n{memory_config()};
    start(n, st.options(max_replay, 1'000'000));
    CHECK(n.stats("fragile")->partitions_failed == 0);
    CHECK(n.stats("fragile")->aggregates_stopped == 1);
    auto r = n.ask<fragile>("x", get{});
    REQUIRE_FALSE(r);
    CHECK(r.error() == actor_errc::handler_failed);
    CHECK_THAT(r.error().message, Catch::Contains("aggregate 'x' of type 'fragile' is stopped") &&
                                    Catch::Contains("at sup.fragile.events/0@2") &&
                                    Catch::Contains("apply rejects a poisoned event"));
    CHECK(n.ask<fragile>("z", get{}).value() == 7);
    // The others serve on, far beyond max_replay events past x's first one.
    for (std::uint64_t i = 0; i < 3 * max_replay; ++i)
      REQUIRE(n.ask<fragile>("y", add{1}));
    CHECK(n.ask<fragile>("y", get{}).value() == 20 + 3 * static_cast<std::int64_t>(max_replay));
    CHECK(n.ask<fragile>("x", add{1}).error() == actor_errc::handler_failed);
    CHECK(st.seqs_of("x") == std::vector<std::uint64_t>{1, 2, 3}); // nothing more written for x
    CHECK(st.stored_checkpoint() <= 1); // held at x's first event
  }
  faults::poison_fixed = true; // the fixed code
  node n{memory_config()};
  start(n, st.options(max_replay, 1'000'000));
  CHECK(n.stats("fragile")->aggregates_stopped == 0);
  CHECK(n.ask<fragile>("x", get{}).value() == 106); // every event of x
  CHECK(n.ask<fragile>("x", add{1}).value() == 107);
  CHECK(st.seqs_of("x") == std::vector<std::uint64_t>{1, 2, 3, 4});
  CHECK(n.ask<fragile>("y", get{}).value() == 20 + 3 * static_cast<std::int64_t>(max_replay));
  CHECK(n.stats("fragile")->sequence_errors == 0);
}
