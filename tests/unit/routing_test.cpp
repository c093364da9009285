// Routing between nodes: two nodes of one process on a shared embedded cluster, each owning
// some partitions by hand; any node accepts any command.
#include <chrono>
#include <future>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "account.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/persistence/table_topic.hpp"
#include "cafes/runtime/node.hpp"
#include "cafes/runtime/route_frame.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace bank;
using namespace std::chrono_literals;

namespace {

constexpr std::int32_t parts = 4;

/// An aggregate whose commands have no type_name: it works on one node, but its commands
/// cannot go to another.
struct plain {
  static constexpr std::string_view name = "plain";
  struct state {
    std::int64_t n = 0;
    MSGPACK_DEFINE_MAP(n);
  };
  struct bump {};
  struct bumped {
    static constexpr std::string_view type_name = "plain.bumped";
    bool ok = true;
    MSGPACK_DEFINE_MAP(ok);
  };
  using commands = std::variant<bump>;
  using events = std::variant<bumped>;
  static cafes::decision<std::int64_t> handle(const state& s, const bump&) {
    return cafes::emit(bumped{}).reply(s.n + 1);
  }
  static void apply(state& s, const bumped&) { ++s.n; }
};

/// Two nodes on one embedded cluster and one namespace: `a` owns partitions 0 and 1 of
/// account, `b` owns 2; nobody owns 3.
struct two_nodes {
  std::shared_ptr<embedded_cluster> mc = embedded_cluster::start(1).value();
  std::string ns = cafes::test::unique_ns("route");
  std::unique_ptr<node> a, b;

  node_config config(const std::string& name) const {
    node_config c;
    c.ns = ns;
    c.node_name = name;
    c.routing = true;
    c.embedded = mc;
    c.log_level = "warn";
    c.threads = 2;
    c.delivery_timeout = cafes::test::scaled(2s);
    c.command_timeout = cafes::test::scaled(4s);
    return c;
  }

  explicit two_nodes(std::size_t b_frame_limit = default_max_event_bytes) {
    a = node::start(config("node-a")).value();
    auto cb = config("node-b");
    cb.max_frame_bytes = b_frame_limit;
    b = node::start(cb).value();
    host_options o;
    o.partitions = parts;
    o.assign_all = false;
    REQUIRE(a->host<account>(o));
    REQUIRE(b->host<account>(o));
    REQUIRE(a->assign("account", 0));
    REQUIRE(a->assign("account", 1));
    REQUIRE(b->assign("account", 2));
    REQUIRE(a->wait_ready(cafes::test::scaled(10s)));
    REQUIRE(b->wait_ready(cafes::test::scaled(10s)));
  }
};

/// Returns an account id of partition p.
std::string id_in(std::int32_t p, const std::string& prefix = "acc-") {
  for (int i = 0;; ++i) {
    auto id = prefix + std::to_string(i);
    if (partition_for(id, parts).value() == p)
      return id;
  }
}

/// Returns a loopback port nothing listens on (bound, then closed).
std::uint16_t dead_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// Sends `msg` straight to the gateway at `port` from node `from`, returns its answer.
template <class T>
expected<route_reply> ask_gateway(node& from, std::uint16_t port, T msg) {
  auto gw = from.system().middleman().remote_actor("127.0.0.1", port);
  if (!gw)
    return cafes::error{actor_errc::unreachable, from.system().render(gw.error())};
  std::optional<expected<route_reply>> out;
  caf::scoped_actor self{from.system()};
  self->request(*gw, cafes::test::scaled(10s), std::move(msg))
    .receive([&](route_reply& r) { out = std::move(r); },
             [&](caf::error& e) { out = cafes::error{actor_errc::invalid_command, from.system().render(e)}; });
  return std::move(*out);
}

route_frame frame_of(std::string type, std::string id, std::string command, std::string bytes) {
  route_frame f;
  f.type = std::move(type);
  f.id = std::move(id);
  f.command = std::move(command);
  f.bytes = std::move(bytes);
  f.deadline_ms = cafes::test::scaled(4s).count();
  f.from = "test";
  return f;
}

std::string packed(const auto& v) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, v);
  return {buf.data(), buf.size()};
}

} // namespace

TEST_CASE("a command sent to a node that does not own its partition is answered by the owner", "[routing]") {
  two_nodes c;
  const auto id = id_in(2); // owned by b
  CHECK(c.a->ask<account>(id, open{"ann", 0}).value() == 0);
  CHECK(c.a->ask<account>(id, deposit{50, "d1"}).value() == 50);
  CHECK(c.b->ask<account>(id, get_balance{}).value() == 50); // b applied them
  CHECK(c.a->routing_counters().forwarded == 2);
  CHECK(c.b->routing_counters().received == 2);
  CHECK(c.b->stats("account")->events_persisted.load() == 2);
  CHECK(c.a->stats("account")->events_persisted.load() == 0);
  // A rejection comes back with its own category and code.
  auto refused = c.a->ask<account>(id, withdraw{1000, "w1"});
  REQUIRE(!refused);
  CHECK(refused.error() == bank_errc::insufficient_funds);
  CHECK(refused.error() == cafes::condition::rejected);
  // A reply of type done, and the command id, travel too.
  CHECK(c.a->ask<account>(id, settle_legs{"t-none"}, "cmd-1"));
  // Actors reach the owner through the router as well (the bank's saga does).
  caf::scoped_actor self{c.a->system()};
  std::optional<expected<std::int64_t>> r;
  self->request(c.a->router<account>().value(), cafes::test::scaled(5s), make_command<account>(id, deposit{5, "d2"}))
    .receive([&](command_reply& x) { r = reply_of<account, deposit>(std::move(x)); },
             [&](caf::error& e) { r = cafes::error{actor_errc::timeout, c.a->system().render(e)}; });
  CHECK(r->value() == 55);
  // The way back: b forwards to a.
  const auto mine = id_in(0);
  CHECK(c.b->ask<account>(mine, open{"bob", 0}).value() == 0);
  CHECK(c.a->ask<account>(mine, get_balance{}).value() == 0);
}

TEST_CASE("a command on a stale route is retried until the new owner takes it", "[routing]") {
  two_nodes c;
  const auto id = id_in(2);
  REQUIRE(c.a->ask<account>(id, open{"ann", 0}).value() == 0); // a has routed to b
  REQUIRE(c.b->revoke("account", 2));
  // Nobody owns partition 2 now: the command waits in a's forwarder, which retries (the
  // route to b is stale, or the directory names no owner); a takes the partition over only
  // once it has.
  const auto retries = c.a->routing_counters().retries;
  auto pending = c.a->ask_async<account>(id, deposit{7, "d1"});
  REQUIRE(cafes::test::eventually([&] { return c.a->routing_counters().retries > retries; }));
  REQUIRE(c.a->assign("account", 2));
  CHECK(pending.get().value() == 7);
  CHECK(c.a->stats("account")->events_persisted.load() == 1);
  // b's view of partition 2 may still name b itself: it retries too, and reaches a.
  CHECK(c.b->ask<account>(id, get_balance{}).value() == 7);
}

TEST_CASE("an unowned partition or a dead gateway gives a typed error within the command's deadline", "[routing]") {
  two_nodes c;
  const auto id = id_in(3); // nobody owns partition 3
  const auto deadline = c.a->config().command_timeout;
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.a->ask<account>(id, open{"x", 0});
  REQUIRE(!r);
  CHECK(r.error() == actor_errc::not_owner);
  CHECK(std::chrono::steady_clock::now() - t0 < deadline);

  // A node "ghost" claims partition 3 in the directory, but nothing listens at its port.
  kafka_config kc;
  kc.embedded = c.mc;
  auto table = table_topic::open(kc, c.ns + ".directory",
                                 [](const std::string&, const std::optional<std::string>&) {})
                 .value();
  nlohmann::json ghost{{"version", 1}, {"node", "ghost"}, {"host", "127.0.0.1"}, {"port", dead_port()},
                       {"types", {{"account", {{{"partition", 3}, {"epoch", 1}}}}}}};
  REQUIRE(table->put("ghost", ghost.dump()));
  t0 = std::chrono::steady_clock::now();
  r = c.a->ask<account>(id, open{"x", 0});
  REQUIRE(!r);
  CHECK(r.error() == actor_errc::unreachable);
  CHECK(std::chrono::steady_clock::now() - t0 < deadline);
  CHECK(c.a->ask<account>(id_in(2), open{"y", 0}).value() == 0); // the others are served
}

TEST_CASE("bad and oversized frames sent straight to a gateway get typed errors; the node serves on",
          "[routing]") {
  two_nodes c{4096};
  const auto port = c.b->gateway_port();
  REQUIRE(port != 0);
  const auto id = id_in(2);
  auto err_of = [](const expected<route_reply>& r) {
    REQUIRE(r);
    REQUIRE(!r->category.empty());
    return std::error_code{r->code, *find_error_category(r->category)};
  };
  CHECK(err_of(ask_gateway(*c.a, port, frame_of("nope", id, "account.open", packed(open{"x", 0})))) ==
        actor_errc::unknown_aggregate_type);
  CHECK(err_of(ask_gateway(*c.a, port, frame_of("account", id, "account.nope", packed(open{"x", 0})))) ==
        actor_errc::invalid_command);
  CHECK(err_of(ask_gateway(*c.a, port, frame_of("account", id, "account.open", "\xc1garbage"))) ==
        errc::malformed_record);
  CHECK(err_of(ask_gateway(*c.a, port, frame_of("account", id, "account.open", packed(std::string{"x"})))) ==
        errc::type_mismatch);
  auto old = frame_of("account", id, "account.open", packed(open{"x", 0}));
  old.version = 99;
  CHECK(err_of(ask_gateway(*c.a, port, old)) == errc::unsupported_version);
  CHECK(err_of(ask_gateway(*c.a, port, frame_of("account", id, "account.open", std::string(5000, 'x')))) ==
        actor_errc::frame_too_large);
  CHECK(!ask_gateway(*c.a, port, std::string{"not a frame"})); // unexpected_message, nothing else
  // A frame for a partition b does not own is refused, never forwarded again (no loops).
  CHECK(err_of(ask_gateway(*c.a, port, frame_of("account", id_in(0), "account.open", packed(open{"x", 0})))) ==
        actor_errc::not_owner);
  CHECK(!c.a->ask<account>(id_in(0), get_balance{})); // so a never opened that account
  CHECK(c.b->routing_counters().refused == 6);
  // A good frame is served, and so are the nodes' own commands.
  auto ok = ask_gateway(*c.a, port, frame_of("account", id, "account.open", packed(open{"x", 0})));
  REQUIRE(ok);
  CHECK(ok->category.empty());
  CHECK(msgpack::unpack(ok->bytes.data(), ok->bytes.size()).get().as<std::int64_t>() == 0);
  CHECK(c.b->ask<account>(id, deposit{3, "d"}).value() == 3);
  CHECK(c.a->ask<account>(id, deposit{4, "e"}).value() == 7);
  // A command too large for the frame limit is refused at the sender (b's limit is 4096).
  auto big = c.b->ask<account>(id_in(0), open{std::string(5000, 'o'), 0});
  REQUIRE(!big);
  CHECK(big.error() == actor_errc::frame_too_large);
}

TEST_CASE("a command type without type_name is served locally and refused with not_encodable for another node",
          "[routing]") {
  two_nodes c;
  host_options o;
  o.partitions = parts;
  o.assign_all = false;
  REQUIRE(c.a->host<plain>(o));
  REQUIRE(c.b->host<plain>(o));
  REQUIRE(c.a->assign("plain", 0));
  REQUIRE(c.b->assign("plain", 2));
  REQUIRE(c.a->wait_ready(cafes::test::scaled(10s)));
  REQUIRE(c.b->wait_ready(cafes::test::scaled(10s)));
  CHECK(c.a->ask<plain>(id_in(0), plain::bump{}).value() == 1);
  auto r = c.a->ask<plain>(id_in(2), plain::bump{});
  REQUIRE(!r);
  CHECK(r.error() == actor_errc::not_encodable);
  CHECK(r.error().message.find("plain::bump") != std::string::npos);
}

TEST_CASE("commands and replies encode by their type names; bad bytes are typed errors", "[routing]") {
  auto ops = make_ops<account>();
  auto e = ops->encode_command(std::any{deposit{12, "r"}}).value();
  CHECK(e.type == "account.deposit");
  auto back = ops->decode_command(e.type, e.bytes).value();
  CHECK(std::any_cast<deposit>(back).amount == 12);
  CHECK(std::any_cast<deposit>(back).ref == "r");
  auto empty = ops->encode_command(std::any{get_balance{}}).value(); // no fields, no codec needed
  CHECK(ops->decode_command(empty.type, empty.bytes));
  auto done_bytes = ops->encode_reply("account.settle_legs", std::any{cafes::done{}}).value();
  CHECK(ops->decode_reply("account.settle_legs", done_bytes));
  auto n = ops->encode_reply("account.deposit", std::any{std::int64_t{42}}).value();
  CHECK(std::any_cast<std::int64_t>(ops->decode_reply("account.deposit", n).value()) == 42);
  CHECK(ops->encode_reply("account.deposit", std::any{std::string{"x"}}).error() == errc::type_mismatch);
  CHECK(ops->decode_command("account.deposit", "\xc1").error() == errc::malformed_record);
  CHECK(ops->decode_command("account.deposit", std::string{"\xdd\xff\xff\xff\xff", 5}).error() ==
        errc::malformed_record); // an array that claims 4 billion elements
  CHECK(ops->decode_command("account.nope", e.bytes).error() == actor_errc::invalid_command);
  CHECK(make_ops<plain>()->encode_command(std::any{plain::bump{}}).error() == actor_errc::not_encodable);
}

TEST_CASE("routing needs Kafka storage", "[routing]") {
  node_config c;
  c.storage = storage_kind::memory;
  c.routing = true;
  c.log_level = "warn";
  auto n = node::start(c);
  REQUIRE(!n);
  CHECK(n.error() == errc::invalid_argument);
}
