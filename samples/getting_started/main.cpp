// getting_started: a counter aggregate on an embedded cafes node. Exits non-zero on a surprise.
#include <cstdio>

#include <cafes/actors/testing.hpp>
#include <cafes/runtime/node.hpp>

CAFES_ERROR_ENUM(counter_errc, "counter", over_limit); // counter:over_limit

struct counter {
  static constexpr std::string_view name = "counter";
  struct state { std::int64_t value = 0; MSGPACK_DEFINE_MAP(value); };
  struct add { static constexpr std::string_view type_name = "counter.add"; std::int64_t n = 0; MSGPACK_DEFINE_MAP(n); };
  struct get { static constexpr std::string_view type_name = "counter.get"; }; // routable: named, msgpack
  struct added {
    static constexpr std::string_view type_name = "counter.added";
    std::int64_t n = 0;
    MSGPACK_DEFINE_MAP(n);
  };
  using commands = std::variant<add, get>;
  using events = std::variant<added>;
  template <class R = cafes::done>
  using decision = cafes::decision<R, events>; // emitting an event not in `events` fails the build
  static decision<std::int64_t> handle(const state& s, const add& c) {
    if (c.n <= 0)
      return cafes::reject("add a positive number"); // cafes:rejected
    if (s.value + c.n > 100)
      return cafes::reject(counter_errc::over_limit, "a counter stops at 100");
    return cafes::emit(added{c.n}).reply_with([](const state& next) { return next.value; }); // the new value
  }
  static decision<std::int64_t> handle(const state& s, const get&) { return cafes::reply(s.value); }
  static void apply(state& s, const added& e) { s.value += e.n; }
};

int main(int argc, char** argv) {
  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    failures += ok ? 0 : 1;
  };
  auto t = cafes::testing::given<counter>(counter::added{99}).when(counter::add{2}); // pure logic, no node
  check(t.rejected_with(counter_errc::over_limit), "given 99, add 2 is rejected");
  auto cfg = cafes::node_config::from_args(argc, argv, "counter");
  if (!cfg)
    return cafes::exit_code(cfg.error()); // --help: the options, 0; a bad option: its message, 2
  cafes::node node{*cfg};
  check(node.host<counter>({.partitions = 4, .snapshot_every = 10}) && node.wait_ready(std::chrono::seconds{10}),
        "host the counter (a snapshot every 10 events), recover");
  auto a = node.ask<counter>("c-1", counter::add{40}); // the reply comes once the event is durable
  check(a && *a == 40, "add 40: " + (a ? std::to_string(*a) : a.error().to_string()));
  auto r = node.ask<counter>("c-1", counter::add{70}, {.timeout = std::chrono::seconds{5}}); // a deadline of its own
  check(!r && r.error() == counter_errc::over_limit, "add 70: " + (r ? "accepted" : r.error().to_string()));
  auto z = node.ask<counter>("c-1", counter::add{0});
  check(!z && z.error() == cafes::condition::rejected, "add 0: " + (z ? "accepted" : z.error().to_string()));
  auto g = node.ask<counter>("c-1", counter::get{});
  check(g && *g == 40, "get after the rejections: " + (g ? std::to_string(*g) : g.error().to_string()));
  check(node.shutdown(std::chrono::seconds{5}).has_value(), "shut down: nothing left in flight");
  return failures == 0 ? 0 : 1;
}
