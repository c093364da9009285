// Recovery on the in-memory journal: bounded replay, snapshots, corruption, restart.
#include <map>
#include <thread>

#include <caf/all.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "account.hpp"
#include "cafes/runtime/node.hpp"
#include "journal_contract.hpp"
#include "journal_wrappers.hpp"
#include "saga.hpp"

using namespace cafes;
using namespace bank;
using cafes::test::wrapped_journal;

namespace {

constexpr std::int32_t parts = 4;

struct storage {
  std::shared_ptr<wrapped_journal> j =
    std::make_shared<wrapped_journal>(make_memory_journal("rt.account.events", parts));
  std::shared_ptr<snapshot_store> s = make_memory_snapshot_store(parts);
};

node_config memory_config() {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "rt";
  c.log_level = "warn";
  c.threads = 2;
  c.command_timeout = cafes::test::scaled(c.command_timeout);
  return c;
}

host_options options(storage& st, std::uint64_t max_replay, std::uint64_t snapshot_every) {
  host_options o;
  o.partitions = parts;
  o.journal = st.j;
  o.snapshots = st.s;
  o.max_replay = max_replay;
  o.snapshot_every = snapshot_every;
  o.batching.max_batch_events = 50;
  return o;
}

/// Opens `accounts` accounts and makes `deposits` deposits; returns the balances.
std::map<std::string, std::int64_t> load(node& n, int accounts, int deposits) {
  std::map<std::string, std::int64_t> want;
  for (int a = 0; a < accounts; ++a) {
    auto id = "acc-" + std::to_string(a);
    REQUIRE(n.ask<account>(id, open{"o", 0}));
    want[id] = 0;
  }
  std::vector<std::future<expected<std::int64_t>>> window;
  for (int d = 0; d < deposits; ++d) {
    auto id = "acc-" + std::to_string(d % accounts);
    want[id] += 1 + d % 7;
    window.push_back(n.ask_async<account>(id, deposit{1 + d % 7, "d" + std::to_string(d)}));
    if (window.size() == 64) {
      for (auto& f : window)
        REQUIRE(f.get());
      window.clear();
    }
  }
  for (auto& f : window)
    REQUIRE(f.get());
  return want;
}

/// Waits until `pred` holds, checking it every millisecond, for at most `limit`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  return true;
}

void check_balances(node& n, const std::map<std::string, std::int64_t>& want) {
  for (auto& [id, b] : want) {
    auto got = n.ask<account>(id, get_balance{});
    INFO(id);
    REQUIRE(got);
    CHECK(*got == b);
  }
}

} // namespace

TEST_CASE("recovery does not replay past the checkpoint: events read stay within max-replay plus one batch",
          "[recovery]") {
  storage st;
  const std::uint64_t max_replay = 200;
  std::map<std::string, std::int64_t> want;
  std::uint64_t written = 0;
  {
    node n{memory_config()};
    REQUIRE(n.host<account>(options(st, max_replay, 1'000'000))); // snapshots only to keep the bound
    REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
    want = load(n, 40, 4000);
    written = n.stats("account")->events_persisted;
    CHECK(n.stats("account")->snapshots_written > 0);
  }
  REQUIRE(written == 4040);
  st.j->reset_counts();
  node n{memory_config()};
  REQUIRE(n.host<account>(options(st, max_replay, 1'000'000)));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  for (std::int32_t p = 0; p < parts; ++p) {
    INFO("partition " << p << " read " << st.j->events_read(p) << " events");
    CHECK(st.j->events_read(p) <= max_replay + 50); // the bound: max-replay plus one batch
  }
  CHECK(st.j->events_read_total() < written / 4); // far from a full replay
  CHECK(n.stats("account")->events_replayed == st.j->events_read_total());
  CHECK(n.stats("account")->snapshots_read > 0);
  check_balances(n, want);
  // And the aggregates go on from where they were, with no sequence error.
  REQUIRE(n.ask<account>("acc-1", deposit{5, "after"}).value() == want["acc-1"] + 5);
  CHECK(n.stats("account")->sequence_errors == 0);
}

TEST_CASE("snapshots every N events let a restart read few events", "[recovery][snapshot]") {
  storage st;
  // max_replay 400: the checkpoint moves in steps of 50, and the snapshots that keep the bound
  // (beyond 200 uncovered events) never start, so only the snapshots every 10 events advance it.
  const std::uint64_t max_replay = 400, every = 10, step = max_replay / 8, batch = 50;
  constexpr int accounts = 8;
  std::map<std::string, std::int64_t> want;
  {
    node n{memory_config()};
    auto o = options(st, max_replay, every);
    o.idle_timeout = std::chrono::milliseconds{1'000'000};
    REQUIRE(n.host<account>(o));
    REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
    want = load(n, accounts, 2000);
    CHECK(n.stats("account")->passivations == 0);
  }
  st.j->reset_counts();
  node n{memory_config()};
  REQUIRE(n.host<account>(options(st, max_replay, every)));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  std::map<std::int32_t, std::uint64_t> per_partition; // accounts per partition
  for (auto& [id, b] : want)
    ++per_partition[partition_for(id, parts).value()];
  std::uint64_t written = 0;
  for (std::int32_t p = 0; p < parts; ++p) {
    written += static_cast<std::uint64_t>(st.j->end_offset(partition_id{p}).value().value());
    // An aggregate leaves fewer than `every` events uncovered, interleaved with the others of
    // its partition; the stored checkpoint lags one step and one batch behind at most.
    const auto bound = every * per_partition[p] + step + batch;
    INFO("partition " << p << " read " << st.j->events_read(p) << " events, bound " << bound);
    CHECK(st.j->events_read(p) <= bound);
  }
  CHECK(written == 2008);
  CHECK(n.stats("account")->snapshots_read == accounts);
  check_balances(n, want);
  CHECK(n.stats("account")->aggregates_recovered == accounts);
}

TEST_CASE("snapshots on passivation let a restart read no events", "[recovery][snapshot][passivation]") {
  storage st;
  constexpr int accounts = 8;
  auto o = options(st, 1'000'000, 1'000'000); // no snapshots but those on passivation
  o.idle_timeout = std::chrono::milliseconds{50};
  std::map<std::string, std::int64_t> want;
  {
    node n{memory_config()};
    REQUIRE(n.host<account>(o));
    REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
    want = load(n, accounts, 400);
    // Every aggregate passivated with a snapshot, and every partition's checkpoint reached its
    // end: nothing is left to replay.
    auto settled = [&] {
      for (std::int32_t p = 0; p < parts; ++p) {
        auto c = st.s->load_checkpoint(partition_id{p});
        if (!c || !*c || **c != st.j->end_offset(partition_id{p}).value())
          return false;
      }
      return n.stats("account")->resident == 0;
    };
    REQUIRE(eventually(settled, cafes::test::scaled(std::chrono::seconds{10})));
    CHECK(n.stats("account")->passivations >= accounts); // more if one idled during the load
    CHECK(n.stats("account")->snapshots_written >= accounts);
  }
  st.j->reset_counts();
  node n{memory_config()};
  o.idle_timeout = std::chrono::milliseconds{1'000'000};
  REQUIRE(n.host<account>(o));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  CHECK(st.j->events_read_total() == 0);
  CHECK(n.stats("account")->snapshots_read == accounts);
  check_balances(n, want);
}

TEST_CASE("a corrupt snapshot falls back to the events, logged and counted", "[recovery][snapshot][fault]") {
  storage st;
  std::map<std::string, std::int64_t> want;
  {
    node n{memory_config()};
    REQUIRE(n.host<account>(options(st, 1'000'000, 5)));
    REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
    want = load(n, 4, 100);
  }
  // Overwrite acc-0's snapshot with a state whose fields have the wrong types.
  auto bad = nlohmann::json::to_msgpack(nlohmann::json{{"balance", "lots"}, {"open", "yes"}});
  REQUIRE(st.s->save_sync(snapshot{aggregate_id::make("acc-0").value(), seq_nr{26}, offset{3}, "account.state", 1,
                                   std::string{bad.begin(), bad.end()}}));
  st.j->reset_counts();
  node n{memory_config()};
  REQUIRE(n.host<account>(options(st, 1'000'000, 5)));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  CHECK(n.stats("account")->corrupt_snapshots == 1);
  const auto p = partition_for("acc-0", parts).value();
  CHECK(static_cast<std::int64_t>(st.j->events_read(p)) == st.j->end_offset(partition_id{p}).value().value()); // the whole partition
  check_balances(n, want); // nothing lost
}

TEST_CASE("a sequence gap stops its partition with an error naming topic, partition and offset",
          "[recovery][fault][bad-input]") {
  storage st;
  {
    node n{memory_config()};
    REQUIRE(n.host<account>(options(st, 1'000'000, 1'000'000)));
    REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
    load(n, 4, 20);
  }
  // A foreign writer appends seq 99 for acc-0, which is at seq 6.
  auto e = cafes::test::make_event("acc-0", 99);
  e.type = "account.deposited";
  e.schema_version = 1;
  auto gap = st.j->append_sync({e});
  REQUIRE(gap);
  node n{memory_config()};
  REQUIRE(n.host<account>(options(st, 1'000'000, 1'000'000)));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  CHECK(n.stats("account")->sequence_errors == 1);
  auto r = n.ask<account>("acc-0", get_balance{});
  REQUIRE_FALSE(r);
  CHECK(r.error() == actor_errc::recovery_failed);
  CHECK(r.error().message.find("rt.account.events/" + std::to_string(gap->front().partition.value()) + "@" +
                               std::to_string(gap->front().off.value())) != std::string::npos);
  // Other partitions serve on.
  for (int a = 1; a < 4; ++a)
    if (partition_for("acc-" + std::to_string(a), parts) != partition_for("acc-0", parts))
      CHECK(n.ask<account>("acc-" + std::to_string(a), get_balance{}));
}

TEST_CASE("bad commands get typed errors and write no events", "[node][bad-input]") {
  storage st;
  node n{memory_config()};
  REQUIRE(n.host<account>(options(st, 1000, 100)));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  REQUIRE(n.ask<account>("acc-1", open{"ann", 0}));
  auto ends = [&] {
    std::int64_t total = 0;
    for (std::int32_t p = 0; p < parts; ++p)
      total += st.j->end_offset(partition_id{p}).value().value();
    return total;
  };
  const auto before = ends();
  CHECK(n.ask<transfer>("t-1", get_transfer{}).error() == actor_errc::unknown_aggregate_type);
  CHECK(n.ask<account>("", deposit{1, ""}).error() == errc::invalid_aggregate_id);
  CHECK(n.ask<account>("a\nb", deposit{1, ""}).error() == errc::invalid_aggregate_id);
  CHECK(n.ask<account>(std::string(300, 'x'), deposit{1, ""}).error() == errc::invalid_aggregate_id);
  CHECK(n.ask<account>("__cafes.checkpoint", deposit{1, ""}).error() == errc::reserved_aggregate_id);
  CHECK(n.ask<account>("acc-1", deposit{-5, ""}).error() == bank_errc::invalid_amount);
  CHECK(n.ask<account>("acc-1", withdraw{0, ""}).error() == bank_errc::invalid_amount);
  CHECK(n.ask<account>("acc-2", deposit{5, ""}).error() == bank_errc::account_not_open);
  CHECK(n.ask<account>("acc-1", withdraw{5, ""}).error() == bank_errc::insufficient_funds);
  // A command of another aggregate type, sent straight to the router (make_command refuses it
  // at compile time, so the message is built by hand).
  caf::scoped_actor self{n.system()};
  std::optional<command_reply> reply;
  self->request(n.router<account>().value(), cafes::test::scaled(std::chrono::seconds{10}),
                command_msg{"acc-1", {}, std::any{42}})
    .receive([&](command_reply& r) { reply = std::move(r); }, [&](caf::error&) {});
  REQUIRE(reply);
  REQUIRE(reply->err);
  CHECK(reply->err->code == actor_errc::invalid_command);
  CHECK(ends() == before);
  CHECK(n.ask<account>("acc-1", get_balance{}).value() == 0); // the actor stayed alive
}

TEST_CASE("host refuses a second hosting and an empty partition count", "[node][bad-input]") {
  node n{memory_config()};
  REQUIRE(n.host<account>());
  CHECK(n.host<account>().error() == errc::invalid_argument);
  host_options o;
  o.partitions = 0;
  CHECK(n.host<transfer>(o).error() == errc::invalid_argument);
}

TEST_CASE("node options parse from the command line and reject bad values", "[node][config][bad-input]") {
  std::vector<std::string> args{"prog", "--namespace", "bank1", "--mode", "transactional", "--storage", "memory"};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  auto c = node_config::from_args(static_cast<int>(argv.size()), argv.data());
  REQUIRE(c);
  CHECK(c->ns == "bank1");
  CHECK(c->mode == journal_mode::transactional);
  CHECK(c->storage == storage_kind::memory);
  for (auto bad : {std::vector<std::string>{"prog", "--mode", "fast"}, {"prog", "--namespace", "a.b"},
                   {"prog", "--no-such-option"}, {"prog", "--config", "/nonexistent/cafes.ini"}}) {
    std::vector<char*> v;
    for (auto& a : bad)
      v.push_back(a.data());
    auto r = node_config::from_args(static_cast<int>(v.size()), v.data());
    INFO(bad[1]);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_argument);
    CHECK(r.error().message.find("--help") != std::string::npos);
  }
}

TEST_CASE("--help returns the options under the program's name and never exits", "[node][config]") {
  std::vector<std::string> args{"prog", "--help"};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  auto r = node_config::from_args(static_cast<int>(argv.size()), argv.data(), "shop-node");
  REQUIRE_FALSE(r); // we are still here: the library did not exit
  CHECK(r.error() == errc::help_requested);
  CHECK(r.error().message.find("shop-node") != std::string::npos);
  CHECK(r.error().message.find("--bootstrap") != std::string::npos);
  CHECK(r.error().message.find("--session-timeout-ms") != std::string::npos);
  CHECK(exit_code(error{errc::invalid_argument, "x"}) == 2);
}

TEST_CASE("idle aggregates are passivated with a snapshot and come back with their state", "[passivation]") {
  storage st;
  node n{memory_config()};
  auto o = options(st, 1'000'000, 1'000'000);
  o.idle_timeout = std::chrono::milliseconds{50};
  REQUIRE(n.host<account>(o));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  auto want = load(n, 10, 50);
  auto stats = n.stats("account");
  // The partition counts a passivation before the resident count drops, and the snapshot
  // becomes durable later still: wait for all three, not for the first.
  REQUIRE(eventually([&] { return stats->resident == 0 && stats->passivations >= 10 && stats->snapshots_written >= 10; },
                     cafes::test::scaled(std::chrono::seconds{10})));
  for (int a = 0; a < 10; ++a) // a snapshot on passivation, of the state the aggregate had
    CHECK(st.s->load(aggregate_id::make("acc-" + std::to_string(a)).value()).value().value().seq == seq_nr{6});
  const auto activations = stats->activations.load();
  check_balances(n, want); // reactivated with their state
  CHECK(stats->activations == activations + 10);
}

TEST_CASE("the cap on resident aggregates passivates the least recently used", "[passivation]") {
  // One partition, so that the order of use is the order of the commands here.
  storage st;
  st.j = std::make_shared<wrapped_journal>(make_memory_journal("rt.account.events", 1));
  st.s = make_memory_snapshot_store(1);
  node n{memory_config()};
  auto o = options(st, 1'000'000, 1'000'000);
  o.partitions = 1;
  o.max_resident = 10;
  o.idle_timeout = std::chrono::milliseconds{1'000'000};
  REQUIRE(n.host<account>(o));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  auto stats = n.stats("account");
  for (int a = 0; a < 10; ++a) // acc-0 … acc-9: resident, at the cap
    REQUIRE(n.ask<account>("acc-" + std::to_string(a), open{"o", 0}));
  REQUIRE(n.ask<account>("acc-0", get_balance{})); // acc-0 becomes the most recently used
  CHECK(stats->passivations == 0);
  REQUIRE(n.ask<account>("acc-10", open{"o", 0})); // over the cap: acc-1 is the least recently used
  REQUIRE(eventually([&] { return stats->passivations >= 1 && stats->resident <= 10; },
                     cafes::test::scaled(std::chrono::seconds{10})));
  // An aggregate that is resident answers without an activation; a passivated one needs one.
  auto activated = [&](const std::string& id) {
    const auto before = stats->activations.load();
    REQUIRE(n.ask<account>(id, get_balance{}));
    return stats->activations.load() - before;
  };
  CHECK(activated("acc-0") == 0);  // used recently: stays although it came first
  CHECK(activated("acc-10") == 0); // the newest stays
  CHECK(activated("acc-1") == 1);  // the least recently used went
}

TEST_CASE("a transfer interrupted after any persisted step resumes without moving money twice", "[saga][recovery]") {
  storage st;
  node n{memory_config()};
  REQUIRE(n.host<account>(options(st, 1000, 100)));
  REQUIRE(n.host<transfer>());
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  for (auto id : {"a", "b"}) {
    REQUIRE(n.ask<account>(id, open{"o", 0}));
    REQUIRE(n.ask<account>(id, deposit{100, std::string{id} + ":init"}));
  }
  // t1 stopped right after "started" was persisted: nothing moved yet.
  REQUIRE(n.ask<transfer>("t1", start_transfer{"a", "b", 10}));
  // t2 stopped after the debit went through but before "debited" was persisted.
  REQUIRE(n.ask<transfer>("t2", start_transfer{"a", "b", 20}));
  REQUIRE(n.ask<account>("a", apply_leg{"t2", leg_kind::debit, 20}, "t2:debit"));
  // t3 stopped after "debited" was persisted, towards an account that is not open.
  REQUIRE(n.ask<transfer>("t3", start_transfer{"a", "ghost", 30}));
  REQUIRE(n.ask<account>("a", apply_leg{"t3", leg_kind::debit, 30}, "t3:debit"));
  REQUIRE(n.ask<transfer>("t3", record_debit{}));

  auto resumed = resume_transfers(n);
  REQUIRE(resumed);
  CHECK(*resumed == 3);
  CHECK(n.ask<transfer>("t1", get_transfer{}).value().status == transfer_status::completed);
  CHECK(n.ask<transfer>("t2", get_transfer{}).value().status == transfer_status::completed);
  CHECK(n.ask<transfer>("t3", get_transfer{}).value().status == transfer_status::compensated);
  CHECK(n.ask<account>("a", get_balance{}).value() == 100 - 10 - 20); // t2's debit happened once
  CHECK(n.ask<account>("b", get_balance{}).value() == 100 + 10 + 20);
  auto again = resume_transfers(n);
  REQUIRE(again);
  CHECK(*again == 0);
}
