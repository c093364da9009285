// The real broker is killed and restarted under load: commands fail with errors while it is
// down, the node serves again afterwards, nothing acknowledged is lost or written twice, and
// librdkafka's complaints reach stderr only through cafes's logger "cafes.kafka".
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/runtime/node.hpp"
#include "journal_contract.hpp"
#include "saga.hpp"
#include "stderr_capture.hpp"

using namespace cafes;
using namespace bank;

namespace {

int broker(const std::string& args) {
  const char* dir = std::getenv("CAFES_BROKER_DIR");
  if (!dir)
    throw std::runtime_error("CAFES_BROKER_DIR is not set (scripts/test-all.sh sets it)");
  auto cmd = std::string{"bash '"} + CAFES_SOURCE_DIR + "/scripts/broker.sh' " + args + " --dir '" + dir +
             "' --node 1 >&2";
  return std::system(cmd.c_str());
}

} // namespace

TEST_CASE("broker: killed and restarted during load, no acknowledged event is lost or duplicated",
          "[fault][broker-restart][broker]") {
  // Everything the process writes to stderr, librdkafka's own prints included (still passed on).
  cafes::test::stderr_capture err;
  node_config cfg;
  cfg.bootstrap = cafes::test::bootstrap();
  cfg.ns = cafes::test::unique_ns("brokerkill");
  cfg.log_level = "error";
  cfg.delivery_timeout = cafes::test::scaled(std::chrono::milliseconds{4'000});
  cfg.request_timeout = cafes::test::scaled(std::chrono::milliseconds{4'000});
  cfg.command_timeout = cafes::test::scaled(std::chrono::milliseconds{15'000});
  node n{cfg};
  REQUIRE(host_bank(n, 4, 10));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::milliseconds{30'000})));
  constexpr int accounts = 8;
  constexpr std::int64_t initial = 1000;
  for (int a = 0; a < accounts; ++a) {
    auto id = "acc-" + std::to_string(a);
    REQUIRE(n.ask<account>(id, bank::open{"o", 0}, id + ":open"));
    REQUIRE(n.ask<account>(id, deposit{initial, id + ":init"}, id + ":init"));
  }

  std::mutex mtx;
  std::condition_variable cv;
  std::map<std::string, std::int64_t> acked;
  std::uint64_t acked_count = 0, errors = 0, lost_hope = 0;
  std::vector<cafes::error> rejections; // collected by the clients, checked on the main thread
  // The load runs until the broker is back (and at least 600 deposits), so it cannot finish
  // before the kill. The broker is frozen (SIGSTOP) first: a request sent after the freeze
  // cannot be answered by it, so once one is waiting, the kill provably hits a request in
  // flight. The test counts those answered after the kill began.
  using clock = std::chrono::steady_clock;
  std::optional<clock::time_point> frozen, kill_began;
  bool restarted = false;
  int issued = 0, waiting_after_freeze = 0, spanned = 0;
  const auto deadline = clock::now() + cafes::test::scaled(std::chrono::milliseconds{120'000});
  auto deposit_loop = [&](int c) {
    for (int d = c;; d += 4) {
      {
        std::lock_guard guard{mtx};
        if ((d >= 600 && restarted) || clock::now() >= deadline)
          return;
        ++issued;
      }
      auto id = "acc-" + std::to_string(d % accounts);
      auto ref = "d" + std::to_string(d);
      bool ok = false;
      while (!ok && clock::now() < deadline) {
        bool after_freeze = false;
        {
          std::lock_guard guard{mtx};
          if (frozen && !kill_began) {
            after_freeze = true;
            ++waiting_after_freeze;
            cv.notify_all();
          }
        }
        auto r = n.ask<account>(id, deposit{7, ref}, ref);
        std::lock_guard guard{mtx};
        if (after_freeze) {
          --waiting_after_freeze;
          if (kill_began)
            ++spanned;
        }
        if (r) {
          ok = true;
          acked[id] += 7;
          ++acked_count;
        } else {
          ++errors;
          if (r.error() == cafes::condition::rejected) { // only infrastructure errors are expected
            rejections.push_back(r.error());
            break;
          }
        }
        cv.notify_all();
      }
      if (!ok) {
        std::lock_guard guard{mtx};
        ++lost_hope;
      }
    }
  };
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c)
    clients.emplace_back(deposit_loop, c);
  std::thread transfers{[&] {
    for (int t = 0; t < 40 && std::chrono::steady_clock::now() < deadline; ++t) {
      auto tid = "t" + std::to_string(t);
      auto from = "acc-" + std::to_string(t % accounts), to = "acc-" + std::to_string((t + 3) % accounts);
      while (!run_transfer(n, tid, from, to, 5) && std::chrono::steady_clock::now() < deadline) {
      }
    }
  }};

  {
    std::unique_lock lock{mtx};
    REQUIRE(cv.wait_until(lock, deadline, [&] { return acked_count >= 100; }));
  }
  REQUIRE(broker("pause") == 0);
  {
    std::unique_lock lock{mtx};
    frozen = clock::now();
    REQUIRE(cv.wait_until(lock, deadline, [&] { return waiting_after_freeze > 0; }));
    kill_began = clock::now();
  }
  REQUIRE(broker("kill") == 0);
  {
    std::unique_lock lock{mtx};
    CHECK(cv.wait_until(lock, deadline, [&] { return errors >= 1; })); // commands fail, with errors
  }
  REQUIRE(broker("restart") == 0);
  {
    std::lock_guard guard{mtx};
    restarted = true;
  }
  for (auto& c : clients)
    c.join();
  transfers.join();
  for (auto& e : rejections)
    FAIL_CHECK("a deposit was rejected: " << e.to_string());
  REQUIRE(lost_hope == 0);
  CHECK(errors > 0);
  CHECK(spanned > 0); // the kill hit requests in flight
  CHECK(issued >= 600);

  // Settle what the outage left pending, then check every balance and the journal.
  std::optional<expected<std::size_t>> resumed;
  while (std::chrono::steady_clock::now() < deadline && !(resumed = resume_transfers(n))->has_value()) {
  }
  REQUIRE(resumed);
  REQUIRE(resumed->has_value());
  std::int64_t total = 0, want_total = 0;
  for (int a = 0; a < accounts; ++a) {
    auto id = "acc-" + std::to_string(a);
    auto b = n.ask<account>(id, get_balance{});
    REQUIRE(b);
    total += *b;
    want_total += initial + acked[id];
  }
  CHECK(total == want_total); // the bank invariant: transfers move money, never make or lose it
  auto pending = n.query<transfer>([](const transfer::state& s) { return s.pending(); });
  REQUIRE(pending);
  CHECK(pending->empty());

  kafka_config kc;
  kc.bootstrap = cfg.bootstrap;
  auto j = make_kafka_journal(kc, topic_names::of(cfg.ns, "account").events, 4);
  REQUIRE(j);
  std::map<std::string, int> refs;
  for (std::int32_t p = 0; p < 4; ++p)
    for (auto& e : cafes::test::read_all(**j, partition_id{p}, offset{0}, 1000))
      if (e.type == "account.deposited" && e.command_id.rfind("d", 0) == 0)
        ++refs[e.command_id];
  CHECK(refs.size() == static_cast<std::size_t>(issued));
  for (auto& [ref, count] : refs) {
    INFO(ref);
    REQUIRE(count == 1); // written once, whatever the retries
  }

  // No raw librdkafka line ("%3|…|FAIL|…") reached stderr: its lines went through the logger
  // "cafes.kafka" (at the node's level, error here), headed by the client's name.
  j->reset();
  n.stop();
  err.stop();
  const auto raw = err.raw_librdkafka_lines();
  for (auto& line : raw)
    FAIL_CHECK("a raw librdkafka line reached stderr: " << line);
  const auto routed = err.lines_matching(std::regex{R"(\[cafes\.kafka\] \[error\] cafes-node-1)"});
  CHECK_FALSE(routed.empty()); // the outage was reported, through cafes.kafka
}
