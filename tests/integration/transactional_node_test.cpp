// The bank demo on a node in transactional mode against the real broker, checked against
// what a read_committed reader finds in the journal and what a restarted node recovers.
#include <map>
#include <set>

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include "account.hpp"
#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/persistence/topics.hpp"
#include "demo.hpp"
#include "journal_contract.hpp"
#include "kafka_fixture.hpp"
#include "saga.hpp"

namespace {

template <class T>
T decode(const cafes::event_envelope& e) {
  auto h = msgpack::unpack(e.payload.data(), e.payload.size());
  return h.get().as<T>();
}

/// The account journal replayed by the test: each account's balance, each transfer's legs
/// (leg -> amount) and the number of events. Checks that each operation appears once.
struct census {
  std::uint64_t events = 0;
  std::map<std::string, std::int64_t> balance;
  std::map<std::string, std::map<std::string, std::int64_t>> legs;
};

census read_back(cafes::journal& j, std::int32_t partitions) {
  census c;
  std::set<std::pair<std::string, std::string>> refs; // (account, ref)
  for (std::int32_t p = 0; p < partitions; ++p)
    for (auto& e : cafes::test::read_all(j, cafes::partition_id{p}, cafes::offset{0}, 500)) {
      ++c.events;
      const auto id = e.id.str();
      std::string ref;
      std::int64_t delta = 0;
      if (e.type == bank::opened::type_name) {
        c.balance[id] += 0;
        continue;
      } else if (e.type == bank::deposited::type_name) {
        auto d = decode<bank::deposited>(e);
        ref = d.reference;
        delta = d.amount;
      } else if (e.type == bank::withdrawn::type_name) {
        auto w = decode<bank::withdrawn>(e);
        ref = w.ref;
        delta = -w.amount;
      } else if (e.type == bank::leg_applied::type_name) {
        auto l = decode<bank::leg_applied>(e);
        ref = l.transfer + ":" + std::string{bank::to_string(l.leg)};
        delta = l.leg == bank::leg_kind::debit ? -l.amount : l.amount;
      } else if (e.type == bank::legs_settled::type_name || e.type == bank::leg_refused::type_name) {
        continue; // a leg refused, or a finished transfer's legs forgotten: no money moves
      } else {
        FAIL("unexpected event type " << e.type);
      }
      INFO(id << " " << ref);
      CHECK(refs.emplace(id, ref).second); // each operation once
      c.balance[id] += delta;
      if (auto colon = ref.find(':'); colon != std::string::npos && e.type == bank::leg_applied::type_name)
        c.legs[ref.substr(0, colon)][ref.substr(colon + 1)] += delta < 0 ? -delta : delta;
    }
  return c;
}

} // namespace

TEST_CASE("broker: the bank demo holds its invariant on a transactional node, in the journal and after a restart",
          "[node][transactional][broker]") {
  cafes::node_config cfg;
  cfg.bootstrap = cafes::test::bootstrap();
  cfg.ns = cafes::test::unique_ns("txbank");
  cfg.mode = cafes::journal_mode::transactional;
  cfg.log_level = "warn";
  cfg.command_timeout = cafes::test::scaled(std::chrono::milliseconds{30'000});
  bank::demo_options o;
  o.accounts = 20;
  o.commands = 300;
  o.workers = 8;
  o.partitions = 3;
  o.snapshot_every = 10;
  std::map<std::string, std::int64_t> served; // the balances the demo's node answered
  census seen;
  {
    cafes::node n{cfg};
    CHECK(bank::run_demo(n, o) == 0); // 0: balances add up and no transfer is pending
    auto s = n.stats("account");
    CHECK(s->events_persisted > 300);
    CHECK(s->snapshots_written > 0);
    for (int a = 0; a < o.accounts; ++a) {
      auto id = "acc-" + std::to_string(a);
      auto b = n.ask<bank::account>(id, bank::get_balance{});
      REQUIRE(b);
      served[id] = *b;
    }
    // The oracle: the account journal as a read_committed reader sees it, read while the node
    // still runs, so that every acknowledged event must be committed already (not only once
    // the node's later writes or its shutdown committed what came before). The reader has
    // transactional.ids of its own: it fences nothing of the node.
    const auto acknowledged = s->events_persisted.load();
    auto rc = cafes::test::broker_config(cafes::journal_mode::transactional);
    rc.transactional_id_prefix = cfg.ns + ".reader";
    auto j = cafes::make_kafka_journal(rc, cafes::topic_names::of(cfg.ns, "account").events, o.partitions);
    REQUIRE(j);
    seen = read_back(**j, o.partitions);
    CHECK(seen.events >= acknowledged);
  }
  auto& balance = seen.balance;
  auto& legs = seen.legs;
  CHECK(balance.size() == static_cast<std::size_t>(o.accounts)); // no ghost account got an event
  CHECK(balance == served);
  CHECK_FALSE(legs.empty());
  for (auto& [tid, l] : legs) { // a transfer moves money, never makes or loses it
    INFO("transfer " << tid);
    CHECK(l["debit"] == l["credit"] + l["refund"]);
    CHECK((l["credit"] == 0 || l["refund"] == 0));
  }

  // A restarted node recovers the same balances, with no transfer pending.
  cafes::node n{cfg};
  REQUIRE(bank::host_bank(n, o.partitions, o.snapshot_every));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{60})));
  for (auto& [id, b] : balance) {
    INFO(id);
    CHECK(n.ask<bank::account>(id, bank::get_balance{}).value() == b);
  }
  auto pending = n.query<bank::transfer>([](const bank::transfer::state& s) { return s.pending(); });
  REQUIRE(pending);
  CHECK(pending->empty());
  CHECK(n.stats("account")->sequence_errors == 0);
}
