// The bank's HTTP interface on a memory node: typed errors for oversize or malformed requests,
// 503 overloaded beyond the worker pool, and transfers that never hold a worker long.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cafes/runtime/node.hpp"
#include "gated_journal.hpp"
#include "saga.hpp"
#include "server.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace bank;
using cafes::test::scaled;

namespace {

node_config memory_config() {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "hs";
  c.log_level = "warn";
  c.threads = 2;
  return c;
}

/// A memory node with the bank, served over HTTP on a free port until destroyed.
struct served {
  node n{memory_config()};
  std::unique_ptr<http_interface> http;
  int port = 0;
  std::thread serving;

  explicit served(http_limits limits, std::shared_ptr<journal> accounts = {}) {
    host_options o;
    o.partitions = 2;
    o.journal = std::move(accounts);
    if (o.journal)
      o.snapshots = make_memory_snapshot_store(2);
    REQUIRE(n.host<account>(o));
    o.journal = nullptr;
    o.snapshots = nullptr;
    REQUIRE(n.host<transfer>(o));
    REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
    http = std::make_unique<http_interface>(n, limits);
    auto p = http->bind(0);
    REQUIRE(p);
    port = *p;
    serving = std::thread{[this] { http->listen(); }};
  }
  ~served() {
    http->stop();
    serving.join();
  }

  httplib::Client client() const {
    httplib::Client c{"127.0.0.1", port};
    c.set_read_timeout(scaled(std::chrono::seconds{30}));
    return c;
  }
};

/// A connection that sent part of a request and then nothing: it holds a worker.
struct slow_client {
  int fd = -1;
  explicit slow_client(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    const std::string part = "GET /health HTTP/1.1\r\nHost: x\r\n";
    REQUIRE(::send(fd, part.data(), part.size(), 0) == static_cast<ssize_t>(part.size()));
  }
  ~slow_client() { ::close(fd); }
};

nlohmann::json body_of(const httplib::Result& r) { return nlohmann::json::parse(r->body, nullptr, false); }

} // namespace

TEST_CASE("http: oversize payloads, too many headers and unknown paths get typed JSON errors", "[http][bad-input]") {
  http_limits l;
  l.max_payload = 1024;
  l.max_headers = 16;
  served s{l};
  auto c = s.client();

  auto big = c.Post("/accounts/open?id=a&owner=o", std::string(l.max_payload + 1, 'x'), "text/plain");
  REQUIRE(big);
  CHECK(big->status == 413);
  CHECK(body_of(big)["code"] == "payload_too_large");

  httplib::Headers many;
  for (int i = 0; i < 20; ++i)
    many.emplace("X-H" + std::to_string(i), "v");
  auto headers = c.Get("/health", many);
  REQUIRE(headers);
  CHECK(headers->status == 431);
  CHECK(body_of(headers)["code"] == "too_many_headers");

  auto long_line = c.Get("/health", httplib::Headers{{"X-Long", std::string(9000, 'y')}});
  REQUIRE(long_line);
  CHECK(long_line->status == 400);
  CHECK(body_of(long_line)["code"] == "bad_request");

  auto nowhere = c.Get("/nowhere");
  REQUIRE(nowhere);
  CHECK(nowhere->status == 404);
  CHECK(body_of(nowhere)["code"] == "not_found");

  auto ok = c.Post("/accounts/open?id=a&owner=o");
  REQUIRE(ok);
  CHECK(ok->status == 200); // within the limits, served as usual
}

TEST_CASE("http: beyond its worker pool and queue the server answers 503 overloaded at once", "[http][overload]") {
  http_limits l;
  l.workers = 1;
  l.queue = 1;
  l.read_timeout = scaled(std::chrono::seconds{60}); // the slow clients hold their places
  served s{l};
  {
    slow_client busy{s.port};   // taken by the worker
    slow_client waiting{s.port}; // the one place in the queue
    auto c = s.client();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.Get("/health");
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(body_of(r)["code"] == "overloaded");
    CHECK(std::chrono::steady_clock::now() - t0 < scaled(std::chrono::seconds{5}));
  }
  // The slow clients left: the worker serves again.
  auto c = s.client();
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + scaled(std::chrono::seconds{10});
  while (status != 200 && std::chrono::steady_clock::now() < deadline) {
    auto r = c.Get("/health");
    status = r ? r->status : 0;
  }
  CHECK(status == 200);
}

TEST_CASE("http: a transfer that takes long is answered pending at once and finishes later", "[http][saga]") {
  auto gate = std::make_shared<cafes::test::gated_journal>(make_memory_journal("hs.account.events", 2), "t1:debit");
  http_limits l;
  l.transfer_wait = std::chrono::milliseconds{200};
  served s{l, gate};
  auto c = s.client();
  for (auto id : {"a", "b"})
    REQUIRE(c.Post(std::string{"/accounts/open?owner=o&id="} + id)->status == 200);
  REQUIRE(c.Post("/accounts/deposit?id=a&amount=100&ref=init")->status == 200);

  auto r = c.Post("/transfers?id=t1&from=a&to=b&amount=30");
  REQUIRE(r);
  CHECK(r->status == 202); // the debit waits for the journal; the worker does not
  CHECK(body_of(r)["status"] == "pending");
  REQUIRE(gate->holding());
  gate->release();
  std::string status;
  const auto deadline = std::chrono::steady_clock::now() + scaled(std::chrono::seconds{10});
  while (status != "completed" && std::chrono::steady_clock::now() < deadline) {
    auto g = c.Get("/transfers?id=t1");
    REQUIRE(g);
    status = body_of(g)["status"];
  }
  CHECK(status == "completed");
  auto again = c.Post("/transfers?id=t1&from=a&to=b&amount=30"); // the same request: its outcome
  REQUIRE(again);
  CHECK(again->status == 200);
  CHECK(body_of(again)["status"] == "completed");
  CHECK(body_of(c.Get("/accounts/balance?id=a"))["balance"] == 70);
  CHECK(body_of(c.Get("/accounts/balance?id=b"))["balance"] == 30);
}
