// Proof of the saga's interruption points on the real broker: each transfer is brought to one
// point by its commands sent by hand, the node restarts, resume_transfers() finishes them, and
// the journal shows every leg applied exactly once.
#include <map>
#include <memory>
#include <tuple>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/runtime/node.hpp"
#include "journal_contract.hpp"
#include "saga.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace bank;
using cafes::test::scaled;

namespace {

constexpr std::int32_t parts = 2;
constexpr std::int64_t initial = 1000, amount = 100;

std::unique_ptr<node> start_node(const node_config& cfg) {
  auto n = std::make_unique<node>(cfg);
  REQUIRE(host_bank(*n, parts, 10));
  REQUIRE(n->wait_ready(scaled(std::chrono::seconds{60})));
  return n;
}

/// Applies leg `l` of transfer `t` as the saga does (same command, same command id); the
/// account applies it, or refuses it when `applied` is false.
void leg(node& n, const std::string& account_id, const std::string& t, leg_kind l, bool applied = true) {
  auto r = n.ask<account>(account_id, apply_leg{t, l, amount}, t + ":" + std::string{to_string(l)});
  REQUIRE(r);
  REQUIRE(r->applied == applied);
}

/// Counts the events of each (aggregate, type, command id) of an aggregate type's journal.
std::map<std::tuple<std::string, std::string, std::string>, int> events_of(const node_config& cfg,
                                                                            const std::string& type) {
  kafka_config kc;
  kc.bootstrap = cfg.bootstrap;
  auto j = make_kafka_journal(kc, topic_names::of(cfg.ns, type).events, parts);
  REQUIRE(j);
  std::map<std::tuple<std::string, std::string, std::string>, int> out;
  for (std::int32_t p = 0; p < parts; ++p)
    for (auto& e : cafes::test::read_all(**j, partition_id{p}, offset{0}, 1000))
      ++out[{e.id.str(), e.type, e.command_id}];
  return out;
}

} // namespace

TEST_CASE("broker: a transfer interrupted at any point and resumed after a node restart applies each leg once",
          "[saga][restart][broker]") {
  node_config cfg;
  cfg.bootstrap = cafes::test::bootstrap();
  cfg.ns = cafes::test::unique_ns("saga");
  cfg.log_level = "warn";
  // Where each transfer stops, and where it must end.
  struct point {
    std::string name;
    transfer_status end;
  };
  const std::vector<point> points{
    {"started", transfer_status::completed},
    {"debit_applied", transfer_status::completed},
    {"debited", transfer_status::completed},
    {"credit_applied", transfer_status::completed},
    {"credit_failed", transfer_status::compensated},
    {"refund_applied", transfer_status::compensated},
    {"rejected", transfer_status::rejected},
    {"completed_unsettled", transfer_status::completed},
  };
  {
    auto n = start_node(cfg);
    for (auto& p : points) {
      const auto t = "t-" + p.name, from = "from-" + p.name, to = "to-" + p.name;
      REQUIRE(n->ask<account>(from, open{"o", 0}));
      if (p.name != "rejected")
        REQUIRE(n->ask<account>(from, deposit{initial, from + ":init"}));
      const bool credit_fails = p.end == transfer_status::compensated;
      if (!credit_fails)
        REQUIRE(n->ask<account>(to, open{"o", 0})); // else the receiver is never opened
      REQUIRE(n->ask<transfer>(t, start_transfer{from, to, amount}, t + ":start"));
      if (p.name == "started")
        continue;
      if (p.name == "rejected") {
        leg(*n, from, t, leg_kind::debit, false); // insufficient funds
        REQUIRE(n->ask<transfer>(t, record_rejection{"insufficient_funds"}));
        continue;
      }
      leg(*n, from, t, leg_kind::debit);
      if (p.name == "debit_applied")
        continue;
      REQUIRE(n->ask<transfer>(t, record_debit{}));
      if (p.name == "debited")
        continue;
      if (credit_fails) {
        leg(*n, to, t, leg_kind::credit, false); // account_not_open
        REQUIRE(n->ask<transfer>(t, record_credit_failure{"account_not_open"}));
        if (p.name == "refund_applied")
          leg(*n, from, t, leg_kind::refund);
        continue;
      }
      leg(*n, to, t, leg_kind::credit);
      if (p.name == "completed_unsettled")
        REQUIRE(n->ask<transfer>(t, record_credit{}));
    }
  } // the node stops: a restart

  auto n = start_node(cfg);
  auto resumed = resume_transfers(*n);
  REQUIRE(resumed);
  CHECK(*resumed == points.size());
  for (auto& p : points) {
    INFO(p.name);
    const auto t = "t-" + p.name, from = "from-" + p.name, to = "to-" + p.name;
    auto s = n->ask<transfer>(t, get_transfer{});
    REQUIRE(s);
    CHECK(s->status == p.end);
    CHECK(s->settled);
    const std::int64_t start = p.name == "rejected" ? 0 : initial;
    CHECK(n->ask<account>(from, get_balance{}).value() == start - (p.end == transfer_status::completed ? amount : 0));
    if (p.end == transfer_status::completed)
      CHECK(n->ask<account>(to, get_balance{}).value() == amount);
  }
  // Every account forgot the legs of the settled transfers.
  auto remembering = n->query<account>([](const account::state& s) { return !s.legs.empty(); });
  REQUIRE(remembering);
  CHECK(remembering->empty());
  auto again = resume_transfers(*n);
  REQUIRE(again);
  CHECK(*again == 0);
  n.reset();

  // The journal: each leg that had to happen, exactly once; no other.
  auto accounts = events_of(cfg, "account");
  auto transfers = events_of(cfg, "transfer");
  for (auto& p : points) {
    INFO(p.name);
    const auto t = "t-" + p.name, from = "from-" + p.name, to = "to-" + p.name;
    const bool debited = p.end != transfer_status::rejected;
    const bool credited = p.end == transfer_status::completed;
    const bool refunded = p.end == transfer_status::compensated;
    CHECK(accounts[{from, "account.leg_applied", t + ":debit"}] == (debited ? 1 : 0));
    CHECK(accounts[{to, "account.leg_applied", t + ":credit"}] == (credited ? 1 : 0));
    CHECK(accounts[{from, "account.leg_applied", t + ":refund"}] == (refunded ? 1 : 0));
    CHECK(accounts[{from, "account.leg_refused", t + ":debit"}] == (debited ? 0 : 1));
    CHECK(accounts[{to, "account.leg_refused", t + ":credit"}] == (refunded ? 1 : 0));
    // The sender decided a debit; the receiver of a debited transfer decided a credit.
    CHECK(accounts[{from, "account.legs_settled", t + ":settle"}] == 1);
    CHECK(accounts[{to, "account.legs_settled", t + ":settle"}] == (debited ? 1 : 0));
  }
  // No transfer recorded any step twice.
  for (auto& [key, count] : transfers) {
    INFO(std::get<0>(key) << " " << std::get<1>(key));
    CHECK(count == 1);
  }
  std::size_t leg_events = 0;
  for (auto& [key, count] : accounts)
    if (std::get<1>(key) == "account.leg_applied")
      leg_events += static_cast<std::size_t>(count);
  CHECK(leg_events == 7 + 5 + 2); // debits (all but rejected), credits (completed), refunds
}
