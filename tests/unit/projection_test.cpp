// Projections on the embedded cluster: into a store, the state topic, dead letters and their
// re-drive, lag, reset, and bad input. (Exactly-once and missing topics: projection_broker_test.)
#include <catch2/catch.hpp>

#include "projection_model.hpp"

using namespace cafes;
using namespace cafes::test;


TEST_CASE("a projection into a store applies every event once, across restarts, and dead-letters a poison event",
          "[projection][embedded]") {
  auto cfg = embedded_config();
  auto t = provision(cfg, "proj-store");
  auto ns = ns_of(t);
  auto j = make_kafka_journal(cfg, t.names.events, t.partitions).value();
  REQUIRE(j->append_sync(bank_events(8, 5)));
  // A poison event: a type nobody registered.
  auto poison = env("acc-poison", 1, bank::opened{"x", 0});
  poison.type = "account.unheard_of";
  REQUIRE(j->append_sync({poison}));

  auto store = std::make_shared<memory_store>();
  {
    auto p = projection::into_store(cfg, options(ns, "balances"), store);
    REQUIRE(p);
    auto ok = (*p)->wait_caught_up(scaled(caught_up));
    INFO((ok ? "" : ok.error().to_string()));
    REQUIRE(ok);
    auto st = (*p)->stats();
    CHECK(st.handled == 48);
    CHECK(st.dead_letters == 1);
    std::int64_t lag = 0, pos = 0;
    for (auto& l : (*p)->lag()) {
      lag += l.lag();
      pos += l.position.value();
    }
    CHECK(lag == 0);
    CHECK(pos == 49);
  }
  CHECK(store->once() == std::pair<bool, std::size_t>{true, 48});
  CHECK(store->balances["acc-3"] == 15);

  // The dead letter names the error and where the event came from.
  auto letters = read_topic(cfg, t.names.dlq, t.partitions);
  REQUIRE(letters.size() == 1);
  auto d = decode_dead_letter(letters[0]).value();
  CHECK(d.error == "cafes:unknown_type");
  CHECK(d.original.topic == t.names.events);
  CHECK(d.original.key == "acc-poison");
  CHECK(d.attempts == 0);
  CHECK(d.projection == ns + ".balances");

  // Restarted: it goes on where the store says, and repeats nothing.
  REQUIRE(j->append_sync(bank_events(8, 2, 7, "b")));
  {
    auto p = projection::into_store(cfg, options(ns, "balances"), store).value();
    REQUIRE(p->wait_caught_up(scaled(caught_up)));
    CHECK(p->stats().handled == 16);
  }
  CHECK(store->once() == std::pair<bool, std::size_t>{true, 64});
  CHECK(store->balances["acc-3"] == 15 + 1 + 2);
}

TEST_CASE("two instances of a projection into one store share its partitions and hand them over, applying each "
          "event once",
          "[projection][embedded]") {
  auto cfg = embedded_config();
  auto t = provision(cfg, "proj-pair");
  auto ns = ns_of(t);
  auto j = make_kafka_journal(cfg, t.names.events, t.partitions).value();
  auto store = std::make_shared<memory_store>();
  auto start = [&](std::string instance) {
    auto o = options(ns, "shared");
    o.instance = std::move(instance);
    return projection::into_store(cfg, o, store).value();
  };
  REQUIRE(j->append_sync(bank_events(6, 4)));
  auto a = start("a");
  REQUIRE(a->wait_caught_up(scaled(caught_up)));
  auto b = start("b");
  REQUIRE(eventually([&] { return !b->lag().empty(); }, caught_up)); // b holds some partitions
  CHECK(a->lag().size() + b->lag().size() == static_cast<std::size_t>(t.partitions));
  REQUIRE(j->append_sync(bank_events(6, 3, 6, "2")));
  REQUIRE(a->wait_caught_up(scaled(caught_up)));
  REQUIRE(b->wait_caught_up(scaled(caught_up)));
  a.reset(); // hands its partitions over to b
  REQUIRE(j->append_sync(bank_events(6, 2, 9, "3")));
  REQUIRE(eventually([&] { return b->lag().size() == static_cast<std::size_t>(t.partitions); }, caught_up));
  REQUIRE(b->wait_caught_up(scaled(caught_up)));
  CHECK(store->once() == std::pair<bool, std::size_t>{true, 6 * 5 + 6 * 3 + 6 * 2});
  CHECK(store->balances["acc-0"] == (1 + 2 + 3 + 4) + (1 + 2 + 3) + (1 + 2));
}

TEST_CASE("a zombie instance's batch is refused by the store once another instance moved its partitions on",
          "[projection][embedded]") {
  auto cfg = embedded_config();
  auto t = provision(cfg, "proj-zombie", 2);
  auto ns = ns_of(t);
  auto j = make_kafka_journal(cfg, t.names.events, t.partitions).value();
  REQUIRE(j->append_sync(bank_events(4, 3)));
  auto store = std::make_shared<memory_store>();
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<bool> first{true};
  std::atomic<bool> stuck{false};
  store->fail = [&](const projected_event&) -> expected<void> {
    if (first.exchange(false)) { // the zombie's first event: it hangs past its poll interval
      stuck = true;
      released.wait();
    }
    return {};
  };
  auto start = [&](std::string instance) {
    auto o = options(ns, "zombie");
    o.instance = std::move(instance);
    o.session_timeout = std::chrono::milliseconds{3'000};
    auto pc = cfg;
    pc.extra["max.poll.interval.ms"] = "3000"; // an instance stuck this long leaves the group
    return projection::into_store(pc, o, store).value();
  };
  auto a = start("a");
  REQUIRE(eventually([&] { return stuck.load(); }, caught_up));
  auto b = start("b"); // takes every partition once `a` left the group
  REQUIRE(eventually([&] { return b->lag().size() == static_cast<std::size_t>(t.partitions); }, caught_up));
  REQUIRE(b->wait_caught_up(scaled(caught_up)));
  CHECK(store->once() == std::pair<bool, std::size_t>{true, 16});
  release.set_value(); // the zombie's batch now commits against positions that moved on
  REQUIRE(eventually([&] { return a->stats().aborted + a->stats().batches > 0; }, caught_up));
  CHECK(store->once() == std::pair<bool, std::size_t>{true, 16});
  CHECK(a->stats().aborted > 0);
  CHECK(store->balances["acc-1"] == 6);
}

TEST_CASE("a failing handler is retried, then dead-lettered, and re-driven once fixed", "[projection][embedded]") {
  auto cfg = embedded_config();
  auto t = provision(cfg, "proj-retry");
  auto ns = ns_of(t);
  auto j = make_kafka_journal(cfg, t.names.events, t.partitions).value();
  REQUIRE(j->append_sync(bank_events(4, 3)));

  auto store = std::make_shared<memory_store>();
  std::atomic<int> flaky{0};
  std::atomic<bool> broken{true};
  store->fail = [&](const projected_event& e) -> expected<void> {
    auto* dep = e.get<bank::deposited>();
    if (dep && e.envelope.id.str() == "acc-1" && dep->amount == 2 && flaky.fetch_add(1) < 1)
      return error{errc::timeout, "flaky once"};
    if (dep && e.envelope.id.str() == "acc-2" && dep->amount == 3 && broken.load())
      return error{errc::invalid_argument, "cannot take acc-2's third deposit"};
    return {};
  };
  auto p = projection::into_store(cfg, options(ns, "model"), store).value();
  REQUIRE(p->wait_caught_up(scaled(caught_up)));
  auto st = p->stats();
  CHECK(st.dead_letters == 1);
  CHECK(st.retries == 1 + 2); // acc-1 once, acc-2 up to its third attempt
  CHECK(st.handled == 15);
  CHECK(store->balances["acc-1"] == 6);
  CHECK(store->balances["acc-2"] == 3); // 1 + 2, the third is a dead letter

  auto letters = read_topic(cfg, t.names.dlq, t.partitions);
  REQUIRE(letters.size() == 1);
  auto d = decode_dead_letter(letters[0]).value();
  CHECK(d.error == "cafes:invalid_argument");
  CHECK(d.message == "cannot take acc-2's third deposit");
  CHECK(d.attempts == 3);

  // Still broken: the letter fails again and is dead-lettered anew.
  auto again = p->redrive(scaled(caught_up));
  REQUIRE(again);
  CHECK(again->letters == 1);
  CHECK(again->failed_again == 1);
  CHECK(read_topic(cfg, t.names.dlq, t.partitions).size() == 2);

  // Fixed: the next re-drive takes the new letter only, once.
  broken = false;
  auto fixed = p->redrive(scaled(caught_up));
  REQUIRE(fixed);
  CHECK(fixed->letters == 1);
  CHECK(fixed->redriven == 1);
  CHECK(store->balances["acc-2"] == 6);
  auto nothing = p->redrive(scaled(caught_up));
  REQUIRE(nothing);
  CHECK(nothing->letters == 0);
  CHECK(store->balances["acc-2"] == 6);
  CHECK(store->once().first);

  // Reset rebuilds the model from the start of the journal.
  REQUIRE(p->reset(scaled(caught_up)));
  REQUIRE(p->wait_caught_up(scaled(caught_up)));
  CHECK(store->once() == std::pair<bool, std::size_t>{true, 16});
  CHECK(store->balances["acc-2"] == 6);
  // The letters written before the reset belong to the old model: none is re-driven.
  auto after_reset = p->redrive(scaled(caught_up));
  REQUIRE(after_reset);
  CHECK(after_reset->letters == 0);
  CHECK(store->balances["acc-2"] == 6);
}

TEST_CASE("the state topic holds each aggregate's fold of the journal, across a restart", "[projection][embedded]") {
  auto cfg = embedded_config();
  auto t = provision(cfg, "proj-state");
  auto ns = ns_of(t);
  REQUIRE(ensure_topics(cfg, {state_topic_spec(ns, "account", t.partitions, 1)}));
  auto j = make_kafka_journal(cfg, t.names.events, t.partitions).value();
  auto events = bank_events(10, 4);
  REQUIRE(j->append_sync(events));
  auto check_fold = [&](const std::vector<event_envelope>& all) {
    std::map<std::string, std::any> fold;
    for (auto& e : all) {
      auto& s = fold.try_emplace(e.id.str(), ops()->initial_state()).first->second;
      ops()->apply(s, ops()->decode_event(e).value());
    }
    auto table = kv_table::open(cfg, t.names.state, scaled(caught_up)).value();
    CHECK(table->size() == fold.size());
    for (auto& [id, s] : fold) {
      auto r = table->get(id);
      REQUIRE(r);
      auto st = decode_state_record<bank::account>(*r, *ops()).value();
      auto& want = std::any_cast<const bank::account::state&>(s);
      CHECK(st.balance == want.balance);
      CHECK(st.owner == want.owner);
      CHECK(r->partition == partition_for(id, t.partitions));
    }
  };
  {
    auto p = start_state_topic<bank::account>(cfg, ns).value();
    REQUIRE(p->wait_caught_up(scaled(caught_up)));
  }
  check_fold(events);
  auto more = bank_events(10, 2, 6, "m");
  REQUIRE(j->append_sync(more));
  {
    auto p = start_state_topic<bank::account>(cfg, ns).value();
    REQUIRE(p->wait_caught_up(scaled(caught_up)));
  }
  events.insert(events.end(), more.begin(), more.end());
  check_fold(events);
}

TEST_CASE("projections refuse bad input with typed errors", "[projection][bad-input]") {
  auto cfg = embedded_config();
  auto store = std::make_shared<memory_store>();
  projection_options none;
  CHECK(projection::into_store(cfg, none, store).error() == errc::invalid_argument);
  auto o = options("nowhere", "x");
  CHECK(projection::into_store(cfg, o, nullptr).error() == errc::invalid_argument);
  o.max_attempts = 0;
  CHECK(projection::into_store(cfg, o, store).error() == errc::invalid_argument);
  CHECK(dlq_topic_of("ns.account.events") == "ns.account.dlq");
}
