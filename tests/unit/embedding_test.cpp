// The embedding API: replies from the new state (reply_with), typed decisions, plain
// rejections, per-call deadlines, the callback and coroutine forms of ask, and a graceful
// shutdown that drains what is in flight.
#include <chrono>
#include <atomic>
#include <coroutine>
#include <future>
#include <optional>
#include <thread>

#include <catch2/catch.hpp>

#include "cafes/actors/testing.hpp"
#include "cafes/runtime/node.hpp"
#include "gated_journal.hpp"
#include "test_env.hpp"

using namespace cafes;
using cafes::test::eventually;
using cafes::test::scaled;

namespace shop {

CAFES_ERROR_ENUM(cart_error, "cart", unknown_item, cart_closed);

struct cart {
  static constexpr std::string_view name = "cart";
  struct state {
    std::map<std::string, std::int64_t> items;
    std::int64_t total = 0;
    MSGPACK_DEFINE_MAP(items, total);
  };
  struct item_added {
    static constexpr std::string_view type_name = "cart.item_added";
    std::string sku;
    std::int64_t qty = 0;
    MSGPACK_DEFINE_MAP(sku, qty);
  };
  struct item_removed {
    static constexpr std::string_view type_name = "cart.item_removed";
    std::string sku;
    MSGPACK_DEFINE_MAP(sku);
  };
  struct add {
    std::string sku;
    std::int64_t qty = 1;
  };
  struct remove {
    std::string sku;
  };
  struct total {};
  /// A mistake the compiler cannot see: reply_with's function reads another type than state.
  struct wrong_reply {};
  using commands = std::variant<add, remove, total, wrong_reply>;
  using events = std::variant<item_added, item_removed>;
  template <class R = cafes::done>
  using decision = cafes::decision<R, events>;

  static decision<std::int64_t> handle(const state&, const add& c) {
    if (c.qty <= 0)
      return cafes::reject("a quantity is at least 1");
    return cafes::emit(item_added{c.sku, c.qty}).reply_with([](const state& next) { return next.total; });
  }
  static decision<> handle(const state& s, const remove& c) {
    if (!s.items.count(c.sku))
      return cafes::reject(cart_error::unknown_item, c.sku);
    return cafes::emit(item_removed{c.sku});
  }
  static decision<std::int64_t> handle(const state& s, const total&) { return cafes::reply(s.total); }
  static decision<std::int64_t> handle(const state&, const wrong_reply&) {
    return cafes::emit(item_added{"x", 1}).reply_with([](const std::int64_t& n) { return n; });
  }
  static void apply(state& s, const item_added& e) {
    s.items[e.sku] += e.qty;
    s.total += e.qty;
  }
  static void apply(state& s, const item_removed& e) {
    s.total -= s.items[e.sku];
    s.items.erase(e.sku);
  }
};

} // namespace shop

using shop::cart;

namespace {

node_config memory_config() {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "emb";
  c.log_level = "off";
  c.threads = 2;
  // Far beyond any test: a per-call deadline that were ignored would hang the case until the
  // watchdog fails it.
  c.command_timeout = std::chrono::minutes{30};
  return c;
}

host_options one_partition(std::shared_ptr<journal> j = nullptr) {
  host_options o;
  o.partitions = 1;
  if (j) {
    o.journal = std::move(j);
    o.snapshots = make_memory_snapshot_store(1);
  }
  return o;
}

/// A coroutine that runs at once and hands its result to a promise.
struct detached {
  struct promise_type {
    detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
};

detached add_twice(node& n, std::promise<std::int64_t>& out) {
  // Named commands: GCC 12 destroys a temporary of a co_await expression twice.
  const cart::add tea{"tea", 2};
  auto a = co_await n.co_ask<cart>("c-co", tea);
  const cart::add jam{"jam", 3};
  const ask_options quick{.timeout = scaled(std::chrono::seconds{10}), .command_id = "jam-1"};
  auto b = co_await n.co_ask<cart>("c-co", jam, quick);
  out.set_value(a && b ? *a * 100 + *b : -1);
}

} // namespace

TEST_CASE("reply_with answers from the state after the events, in the testing helper and on a node",
          "[embedding][reply_with]") {
  auto t = testing::given<cart>(cart::item_added{"tea", 2}).when(cart::add{"jam", 3});
  CHECK(t.emitted(cart::item_added{"jam", 3}));
  CHECK(t.reply == 5);
  CHECK(t.state.total == 5);

  node n{memory_config()};
  REQUIRE(n.host<cart>(one_partition()));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  CHECK(n.ask<cart>("c-1", cart::add{"tea", 2}).value() == 2);
  CHECK(n.ask<cart>("c-1", cart::add{"jam", 3}).value() == 5);
  REQUIRE(n.ask<cart>("c-1", cart::remove{"tea"}));
  CHECK(n.ask<cart>("c-1", cart::total{}).value() == 3);
}

TEST_CASE("a reply_with whose function reads another type fails its command alike in the helper and on a node",
          "[embedding][reply_with][bad-input]") {
  auto t = testing::given<cart>().when(cart::wrong_reply{});
  REQUIRE(t.rejection);
  CHECK(*t.rejection == actor_errc::handler_failed);
  CHECK(t.rejection->message == "reply_with's function reads a long, not the state shop::cart::state");
  CHECK(t.events.empty()); // as on a node: nothing is written
  CHECK(t.state.total == 0);

  node n{memory_config()};
  REQUIRE(n.host<cart>(one_partition()));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  auto r = n.ask<cart>("c-1", cart::wrong_reply{});
  REQUIRE(!r);
  CHECK(r.error() == actor_errc::handler_failed);
  CHECK(n.ask<cart>("c-1", cart::total{}).value() == 0); // nothing was written
}

TEST_CASE("plain and enum rejections reach the caller with their category", "[embedding][errors]") {
  auto t = testing::given<cart>().when(cart::add{"tea", 0});
  CHECK(t.rejected_with(actor_errc::rejected));
  node n{memory_config()};
  REQUIRE(n.host<cart>(one_partition()));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  auto zero = n.ask<cart>("c-1", cart::add{"tea", 0});
  REQUIRE(!zero);
  CHECK(zero.error() == condition::rejected);
  CHECK(zero.error().to_string() == "cafes:rejected: a quantity is at least 1");
  auto unknown = n.ask<cart>("c-1", cart::remove{"socks"});
  REQUIRE(!unknown);
  CHECK(unknown.error() == shop::cart_error::unknown_item);
  CHECK(unknown.error().to_string() == "cart:unknown_item: socks");
}

TEST_CASE("a per-call deadline bounds one command; the node-wide timeout stays the default",
          "[embedding][deadline]") {
  auto gated = std::make_shared<test::gated_journal>(make_memory_journal("emb.cart.events", 1), "held");
  node n{memory_config()};
  REQUIRE(n.host<cart>(one_partition(gated)));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  auto r = n.ask<cart>("c-1", cart::add{"tea", 1}, {.timeout = scaled(std::chrono::milliseconds{200}),
                                                      .command_id = "held"});
  REQUIRE(!r);
  CHECK(r.error() == actor_errc::timeout);
  CHECK(r.error() == condition::unknown_outcome);
  // The timed-out command may still land: it does once its append is let go.
  REQUIRE(gated->holding());
  gated->release();
  CHECK(eventually([&] { return n.ask<cart>("c-1", cart::total{}).value_or(0) == 1; }));
  auto bad = n.ask<cart>("c-1", cart::total{}, {.timeout = std::chrono::milliseconds{-1}});
  REQUIRE(!bad);
  CHECK(bad.error() == errc::invalid_argument);
}

TEST_CASE("ask_then calls back once with the reply; co_ask resumes a coroutine with it", "[embedding][async]") {
  node n{memory_config()};
  REQUIRE(n.host<cart>(one_partition()));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  std::promise<expected<std::int64_t>> got;
  n.ask_then<cart>("c-cb", cart::add{"tea", 4}, [&](expected<std::int64_t> r) { got.set_value(std::move(r)); });
  auto f = got.get_future();
  REQUIRE(f.wait_for(scaled(std::chrono::seconds{10})) == std::future_status::ready);
  CHECK(f.get().value() == 4);

  std::promise<std::int64_t> both;
  add_twice(n, both);
  auto g = both.get_future();
  REQUIRE(g.wait_for(scaled(std::chrono::seconds{10})) == std::future_status::ready);
  CHECK(g.get() == 2 * 100 + 5);

  // An error reaches the callback too.
  std::promise<expected<std::int64_t>> refused;
  n.ask_then<cart>("c-cb", cart::add{"tea", -1}, [&](expected<std::int64_t> r) { refused.set_value(std::move(r)); });
  auto h = refused.get_future();
  REQUIRE(h.wait_for(scaled(std::chrono::seconds{10})) == std::future_status::ready);
  CHECK(h.get().error() == actor_errc::rejected);
}

TEST_CASE("shutdown refuses new commands, drains those in flight, then stops", "[embedding][shutdown]") {
  auto gated = std::make_shared<test::gated_journal>(make_memory_journal("emb.cart.events", 1), "held");
  node n{memory_config()};
  REQUIRE(n.host<cart>(one_partition(gated)));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  auto in_flight = n.ask_async<cart>("c-1", cart::add{"tea", 1}, {.command_id = "held"});
  REQUIRE(eventually([&] { return gated->holding(); }));
  // Draining: a new command is refused at once, while the one in flight waits for its write,
  // which the helper thread lets go only then.
  std::atomic<bool> refused_while_draining{false};
  std::thread t{[&] {
    refused_while_draining = eventually([&] {
      auto r = n.ask<cart>("c-2", cart::total{});
      return !r && r.error() == actor_errc::shutting_down;
    });
    gated->release();
  }};
  auto stopped = n.shutdown(scaled(std::chrono::seconds{60}));
  t.join();
  CHECK(refused_while_draining);
  CHECK(stopped.has_value());
  REQUIRE(in_flight.wait_for(std::chrono::milliseconds{0}) == std::future_status::ready);
  CHECK(in_flight.get().value() == 1); // answered with its durable outcome, not shutting_down
}

TEST_CASE("a shutdown whose drain bound passes stops anyway and fails what was in flight", "[embedding][shutdown]") {
  auto gated = std::make_shared<test::gated_journal>(make_memory_journal("emb.cart.events", 1), "held");
  node n{memory_config()};
  REQUIRE(n.host<cart>(one_partition(gated)));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  auto in_flight = n.ask_async<cart>("c-1", cart::add{"tea", 1}, {.command_id = "held"});
  REQUIRE(eventually([&] { return gated->holding(); }));
  auto r = n.shutdown(std::chrono::milliseconds{50});
  REQUIRE(!r);
  CHECK(r.error() == actor_errc::timeout);
  // The node stopped: the caller is answered (outcome unknown), never left waiting.
  REQUIRE(in_flight.wait_for(scaled(std::chrono::seconds{10})) == std::future_status::ready);
  auto got = in_flight.get();
  REQUIRE(!got);
  CHECK(got.error() == condition::unknown_outcome);
  auto after = n.ask<cart>("c-1", cart::total{});
  CHECK(after.error() == actor_errc::shutting_down);
}

TEST_CASE("a node hosted and asked on one thread stops on another", "[embedding][shutdown]") {
  // Fails before the fix: CAF pinned its logger in the thread that hosted and queried, and the
  // actor system's destructor on the other thread waited for it for good.
  std::optional<node> n{std::in_place, memory_config()};
  REQUIRE(n->host<cart>(one_partition()));
  REQUIRE(n->wait_ready(scaled(std::chrono::seconds{10})));
  CHECK(n->ask<cart>("c-1", cart::add{"tea", 2}).value() == 2);
  CHECK(n->query<cart>([](const cart::state& s) { return s.total > 0; }).value().size() == 1);
  CHECK(n->owned("cart").value().size() == 1);
  std::promise<void> stopped;
  std::thread t{[&] {
    n->shutdown(scaled(std::chrono::seconds{10})).value();
    n.reset();
    stopped.set_value();
  }};
  auto f = stopped.get_future();
  CHECK(f.wait_for(scaled(std::chrono::seconds{20})) == std::future_status::ready);
  t.join(); // if the stop hangs, the watchdog ends the run: better than a silent pass
}
