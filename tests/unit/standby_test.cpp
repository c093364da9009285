// Hot standby: a node keeps a partition it does not own warm, and takes it over replaying
// only what it has not read; on memory storage shared by two nodes of one process.
#include <map>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/runtime/node.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace bank;

namespace {

constexpr std::int32_t parts = 2;

node_config config(const std::string& name) {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "standby";
  c.node_name = name;
  c.log_level = "warn";
  c.threads = 2;
  c.command_timeout = cafes::test::scaled(c.command_timeout);
  return c;
}

struct shared_storage {
  std::shared_ptr<journal> j = make_memory_journal("standby.account.events", parts);
  std::shared_ptr<snapshot_store> s = make_memory_snapshot_store(parts);

  host_options options(bool assign_all) const {
    host_options o;
    o.partitions = parts;
    o.journal = j;
    o.snapshots = s;
    o.snapshot_every = 0; // no snapshots but the release's: every read starts at offset 0
    o.assign_all = assign_all;
    return o;
  }
};

/// Opens `n` accounts of partition p and deposits into each; returns the balances.
std::map<std::string, std::int64_t> load(node& a, std::int32_t p, int n, int deposits, const std::string& ref) {
  std::map<std::string, std::int64_t> want;
  for (int i = 0; want.size() < static_cast<std::size_t>(n); ++i) {
    auto id = "acc-" + std::to_string(i);
    if (partition_for(id, parts).value() != p)
      continue;
    auto opened = a.ask<account>(id, open{"o", 0});
    REQUIRE((opened || opened.error() == bank_errc::already_open));
    auto b = a.ask<account>(id, get_balance{}).value();
    for (int d = 1; d <= deposits; ++d)
      b = a.ask<account>(id, deposit{d, ref + std::to_string(d)}).value();
    want[id] = b;
  }
  return want;
}

std::uint64_t journal_events(journal& j, std::int32_t p) {
  std::uint64_t n = 0;
  offset from{0};
  for (;;) {
    auto c = j.read(partition_id{p}, from, 1000);
    REQUIRE(c);
    n += c->events.size();
    if (c->end)
      return n;
    from = c->next;
  }
}

/// Node a owns partition p and writes `first` deposits into each of `accounts` accounts of it;
/// then node b keeps p warm (a standby) while a writes `second` more deposits into each.
struct owner_and_standby {
  shared_storage st;
  node a{config("node-a")};
  node b{config("node-b")};
  std::map<std::string, std::int64_t> want; // the balances a served

  owner_and_standby(std::int32_t p, int accounts, int first, int second) {
    REQUIRE(a.host<account>(st.options(true)));
    REQUIRE(a.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
    want = load(a, p, accounts, first, "first-");
    REQUIRE(b.host<account>(st.options(false)));
    REQUIRE(b.standby("account", p));
    for (auto& [id, balance] : load(a, p, accounts, second, "second-"))
      want[id] = balance;
  }
};

} // namespace

TEST_CASE("a standby keeps a partition warm and takes it over reading each event once", "[standby][ownership]") {
  const std::int32_t p = 0;
  owner_and_standby c{p, 20, 6, 3};
  auto& [st, a, b, want] = c;
  CHECK(b.standbys("account").value() == std::vector<std::int32_t>{p});
  auto sb = b.stats("account");
  CHECK(sb->standbys == 1);
  // It reads the events after the checkpoint, then tails what comes, each once.
  const auto total = journal_events(*st.j, p);
  REQUIRE(total > 0);
  REQUIRE(cafes::test::eventually([&] { return sb->standby_events.load() == total; },
                                  cafes::test::scaled(std::chrono::seconds{10})));

  REQUIRE(a.revoke("account", p));
  REQUIRE(b.assign("account", p));
  REQUIRE(b.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  CHECK(sb->promotions == 1);
  CHECK(sb->standbys == 0);
  CHECK(sb->snapshots_read == 0); // the standby read them before
  CHECK(sb->events_replayed == 0); // and every event: the takeover replays none
  CHECK(b.standbys("account").value().empty());
  CHECK(b.owned("account").value() == std::vector<owned_partition>{{p, 2, true}});
  for (auto& [id, balance] : want) {
    INFO(id);
    CHECK(b.ask<account>(id, get_balance{}).value() == balance);
  }
  // It serves and writes under its epoch; a cold node would have read the same state.
  auto id = want.begin()->first;
  CHECK(b.ask<account>(id, deposit{1, "after-takeover"}).value() == want[id] + 1);
}

TEST_CASE("a standby promoted before it read the latest events replays just those", "[standby][ownership]") {
  const std::int32_t p = 1;
  owner_and_standby c{p, 10, 3, 2};
  auto& [st, a, b, want] = c;
  REQUIRE(a.revoke("account", p)); // at once: the standby may not have read the last events
  REQUIRE(b.assign("account", p));
  REQUIRE(b.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  auto sb = b.stats("account");
  CHECK(sb->promotions == 1);
  // What the standby had not read, the takeover replayed: no event twice, and (the balances
  // below) none missed. Not "exactly the journal's events": on a loaded machine the standby
  // may have read no event before the revoke, whose snapshots then cover them (failed 3 in 90
  // runs with three copies at once).
  CHECK(sb->standby_events + sb->events_replayed <= journal_events(*st.j, p));
  for (auto& [id, balance] : want) {
    INFO(id);
    CHECK(b.ask<account>(id, get_balance{}).value() == balance);
  }
}

TEST_CASE("standby: bad partitions, owned partitions and stopping", "[standby][ownership][bad-input]") {
  shared_storage st;
  node a{config("node-a")};
  REQUIRE(a.host<account>(st.options(true)));
  REQUIRE(a.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  auto bad = a.standby("account", parts);
  REQUIRE(!bad);
  CHECK(bad.error() == errc::invalid_argument);
  CHECK(a.standby("nothing", 0).error() == actor_errc::unknown_aggregate_type);
  REQUIRE(a.standby("account", 0)); // owned here: nothing to keep warm
  CHECK(a.standbys("account").value().empty());

  node b{config("node-b")};
  REQUIRE(b.host<account>(st.options(false)));
  REQUIRE(b.standby("account", 0));
  REQUIRE(b.standby("account", 0)); // twice: one standby
  CHECK(b.stats("account")->standbys == 1);
  REQUIRE(b.standby("account", 0, false));
  CHECK(b.standbys("account").value().empty());
  CHECK(b.stats("account")->standbys == 0);

  // Placing standbys by itself needs routing: the directory says who owns what.
  node c{config("node-c")};
  auto o = st.options(false);
  o.standby_replicas = 1;
  auto refused = c.host<account>(o);
  REQUIRE(!refused);
  CHECK(refused.error() == errc::invalid_argument);
  CHECK(refused.error().message.find("routing") != std::string::npos);
}
