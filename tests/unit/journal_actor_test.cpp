// The journal actor's adaptive group commit, run message by message on CAF's test coordinator.
#include <catch2/catch.hpp>
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "cafes/actors/host.hpp"
#include "journal_contract.hpp"
#include "manual_journal.hpp"

using namespace cafes;

namespace {

struct test_config : caf::actor_system_config {
  test_config() { set("scheduler.policy", caf::atom("testing")); }
};

struct fixture {
  test_config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  std::shared_ptr<test::manual_journal> j = std::make_shared<test::manual_journal>();
  std::shared_ptr<host_stats> stats = std::make_shared<host_stats>();
  std::shared_ptr<std::vector<std::pair<std::string, persist_res>>> replies =
    std::make_shared<std::vector<std::pair<std::string, persist_res>>>();
  caf::actor journal_actor;
  caf::actor client;

  static batching_config one_in_flight() {
    batching_config b;
    b.max_in_flight = 1;
    return b;
  }

  explicit fixture(batching_config b = one_in_flight()) {
    journal_actor = spawn_journal_actor(sys, j, b, stats);
    auto out = replies;
    client = sys.spawn([out](caf::event_based_actor* self) -> caf::behavior {
      return {
        [=](const std::string& id, int events, caf::actor dest) {
          persist_req req;
          for (int s = 1; s <= events; ++s)
            req.events.push_back(cafes::test::make_event(id, static_cast<std::uint64_t>(s)));
          self->request(dest, caf::infinite, std::move(req)).then([=](persist_res& r) { out->emplace_back(id, r); });
        },
        [=](const std::string& id, caf::actor dest) { self->send(dest, unpoison_msg{id}); },
      };
    });
    sched.run();
  }
  ~fixture() {
    caf::anon_send_exit(journal_actor, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
    sched.run();
  }

  void persist(const std::string& id, int events = 1) { caf::anon_send(client, id, events, journal_actor); }
};

} // namespace

TEST_CASE("the journal actor sends at once when idle and collects while a batch is in flight", "[journal-actor]") {
  fixture f;
  f.persist("a");
  f.persist("b");
  f.persist("c", 2);
  f.sched.run();
  REQUIRE(f.j->calls() == 1); // a went out alone; b and c wait
  CHECK(f.j->batch(0).size() == 1);
  CHECK(f.replies->empty()); // nothing is answered before it is durable

  f.j->succeed(0);
  f.sched.run();
  REQUIRE(f.replies->size() == 1);
  CHECK(f.replies->at(0).first == "a");
  REQUIRE(f.j->calls() == 2); // b and c together: group commit
  CHECK(f.j->batch(1).size() == 3);

  f.j->succeed(1);
  f.sched.run();
  REQUIRE(f.replies->size() == 3);
  CHECK(f.replies->at(1).first == "b");
  CHECK(f.replies->at(1).second.positions.size() == 1);
  CHECK(f.replies->at(2).second.positions.size() == 2);
  CHECK(f.replies->at(2).second.positions[1].off == offset{3});
  CHECK(f.stats->batches == 2);
  CHECK(f.stats->batch_max == 3);
}

TEST_CASE("the journal actor bounds a batch by events", "[journal-actor]") {
  auto b = fixture::one_in_flight();
  b.max_batch_events = 2;
  fixture f{b};
  for (auto id : {"a", "b", "c", "d", "e"})
    f.persist(id);
  f.sched.run();
  f.j->succeed(0);
  f.sched.run();
  REQUIRE(f.j->calls() == 2);
  CHECK(f.j->batch(1).size() == 2);
  f.j->succeed(1);
  f.sched.run();
  REQUIRE(f.j->calls() == 3);
  CHECK(f.j->batch(2).size() == 2);
  f.j->succeed(2);
  f.sched.run();
  CHECK(f.replies->size() == 5);
}

TEST_CASE("the journal actor bounds a batch by bytes but always sends one request", "[journal-actor]") {
  auto b = fixture::one_in_flight();
  b.max_batch_bytes = 10; // smaller than any request
  fixture f{b};
  f.persist("a", 3);
  f.persist("b", 3);
  f.sched.run();
  f.j->succeed(0);
  f.sched.run();
  REQUIRE(f.j->calls() == 2);
  CHECK(f.j->batch(0).size() == 3);
  CHECK(f.j->batch(1).size() == 3);
}

TEST_CASE("a failed batch fails its requests and later ones of the same aggregates until they recover",
          "[journal-actor][fault]") {
  fixture f;
  f.persist("a");
  f.sched.run();
  f.persist("a"); // pipelined behind the failing one
  f.persist("b");
  f.sched.run();
  f.j->fail(0);
  f.sched.run();
  REQUIRE(f.replies->size() == 2);
  for (auto& [id, r] : *f.replies) {
    CHECK(id == "a");
    REQUIRE(r.err);
    CHECK(r.err->code == actor_errc::persist_failed);
  }
  REQUIRE(f.j->calls() == 2); // b went on alone
  CHECK(f.j->batch(1).front().id.str() == "b");
  CHECK(f.j->events_of("a") == 1); // only the failed one: the refused request never reached the journal
  f.persist("a"); // still refused: a has not recovered
  f.sched.run();
  REQUIRE(f.replies->size() == 3);
  CHECK(f.replies->back().second.err);
  f.j->succeed(1);
  f.sched.run();
  CHECK(f.j->calls() == 2); // nothing of a was held back to be sent later either
  CHECK(f.j->events_of("a") == 1);
  caf::anon_send(f.client, std::string{"a"}, f.journal_actor); // a recovered
  f.sched.run();
  f.persist("a", 2);
  f.sched.run();
  REQUIRE(f.j->calls() == 3);
  CHECK(f.j->batch(2).size() == 2);
  CHECK(f.j->events_of("a") == 3); // the failed one, then the two after the recovery
}

TEST_CASE("a backlog beyond its bound answers overloaded at once", "[journal-actor][bad-input]") {
  batching_config b;
  b.max_in_flight = 2;
  b.max_pending_events = 3;
  fixture f{b};
  f.persist("a");    // in flight
  f.persist("a", 3); // pending 3: waits for a's batch (an aggregate never has two in flight)
  f.persist("c", 2); // would make 5 > 3: refused, although a free batch could take it at once
  f.sched.run();
  REQUIRE(f.replies->size() == 1);
  CHECK(f.replies->at(0).first == "c");
  REQUIRE(f.replies->at(0).second.err);
  CHECK(f.replies->at(0).second.err->code == actor_errc::overloaded);
  CHECK(f.j->calls() == 1); // the free batch stays free
  f.j->succeed(0);
  f.sched.run();
  REQUIRE(f.j->calls() == 2);
  f.j->succeed(1);
  f.sched.run();
  CHECK(f.replies->size() == 3); // a's two requests were written and answered
  CHECK(f.j->events_of("a") == 4);
  CHECK(f.j->events_of("c") == 0); // the refused request never reached the journal
}

TEST_CASE("with several batches in flight, an aggregate never has two", "[journal-actor]") {
  batching_config b;
  b.max_in_flight = 2;
  fixture f{b};
  f.persist("a");
  f.sched.run();
  f.persist("b");
  f.sched.run();
  REQUIRE(f.j->calls() == 2); // two batches in flight at once
  f.persist("a");                  // a has a batch in flight: waits
  f.persist("c");                  // two in flight: waits
  f.sched.run();
  REQUIRE(f.j->calls() == 2);
  f.j->succeed(1); // b's batch completes first
  f.sched.run();
  REQUIRE(f.j->calls() == 3);
  REQUIRE(f.j->batch(2).size() == 1);
  CHECK(f.j->batch(2).front().id.str() == "c"); // a still waits for its first batch
  f.j->succeed(0);
  f.sched.run();
  REQUIRE(f.j->calls() == 4);
  CHECK(f.j->batch(3).front().id.str() == "a");
  f.j->succeed(2);
  f.j->succeed(3);
  f.sched.run();
  CHECK(f.replies->size() == 4);
}
