// Bank nodes in cluster mode on the real broker: the namespace's consumer group shares the
// partitions among them, one owner each, and a node that joins takes only what moves.
#include <algorithm>
#include <csignal>

#include <catch2/catch.hpp>

#include "bank_cluster.hpp"

using namespace cafes::test;

namespace {

constexpr auto poll_every = std::chrono::milliseconds{50};

} // namespace

TEST_CASE("cluster: three nodes share every partition with one owner each", "[cluster][broker]") {
  bank_cluster c{"share", 6, std::chrono::seconds{6}, 3};
  const std::vector<int> all{0, 1, 2};
  REQUIRE(eventually_every([&] { return c.settled(all); }, std::chrono::seconds{60}, poll_every));
  for (int i : all) {
    auto owned = c.nodes[static_cast<std::size_t>(i)]->owned();
    INFO(c.nodes[static_cast<std::size_t>(i)]->name());
    CHECK(owned["account"].size() + owned["transfer"].size() == 4); // 12 partitions, 3 nodes
  }
  auto ids = open_accounts(c, all, 12);
  for (auto& id : ids) {
    const int to = c.owner_of("account", id, all);
    auto& n = *c.nodes[static_cast<std::size_t>(to)];
    REQUIRE(n.post("/accounts/deposit", {{"id", id}, {"amount", "7"}, {"ref", "r-" + id}}).first == 200);
    auto [status, body] = n.post("/accounts/deposit", {{"id", id}, {"amount", "7"}, {"ref", "r-" + id}});
    REQUIRE(status == 200); // a repeated ref is acknowledged and applied once
    CHECK(body["balance"].get<std::int64_t>() == 7);
  }
}

TEST_CASE("cluster: a node that joins under load takes only the partitions that move", "[cluster][broker]") {
  bank_cluster c{"scale", 6, std::chrono::seconds{6}, 2};
  REQUIRE(eventually_every([&] { return c.settled({0, 1}); }, std::chrono::seconds{60}, poll_every));
  auto before = c.owners("account", {0, 1});
  auto before_t = c.owners("transfer", {0, 1});
  auto ids = open_accounts(c, {0, 1}, 12);
  deposit_load load{c, ids, 3};
  load.set_live({0, 1});
  REQUIRE(eventually_every([&] { return load.acked_count() >= 100; }, std::chrono::seconds{60}, poll_every));

  c.start(2);
  load.set_live({0, 1, 2});
  REQUIRE(eventually_every([&] { return c.settled({0, 1, 2}); }, std::chrono::seconds{60}, poll_every));
  const auto at_join = load.acked_count();
  REQUIRE(eventually_every([&] { return load.acked_count() >= at_join + 100; }, std::chrono::seconds{60}, poll_every));
  load.stop();
  CHECK(load.rejected() == 0);

  // Cooperative-sticky: a partition that stayed with its owner was never given up (its epoch
  // is the same), and the new node took some over.
  std::size_t moved = 0, stayed = 0;
  for (auto [type, was] : {std::pair{"account", before}, std::pair{"transfer", before_t}}) {
    auto now = c.owners(type, {0, 1, 2});
    for (auto& [p, owner] : now) {
      REQUIRE(owner.size() == 1);
      auto& old = was[p].front();
      if (owner.front().first == old.first) {
        CHECK(owner.front().second == old.second);
        ++stayed;
      } else {
        CHECK(owner.front().first == 2);
        CHECK(owner.front().second > old.second);
        ++moved;
      }
    }
  }
  CHECK(moved == 4);
  CHECK(stayed == 8);
  check_census(c, load);
}

TEST_CASE("cluster: a rolling restart of every node under load loses nothing, and each deposit gets through "
          "within its retries",
          "[cluster][broker]") {
  bank_cluster c{"rolling", 6, std::chrono::seconds{6}, 3};
  std::vector<int> live{0, 1, 2};
  REQUIRE(eventually_every([&] { return c.settled(live); }, std::chrono::seconds{60}, poll_every));
  auto ids = open_accounts(c, live, 12);
  deposit_load load{c, ids, 3};
  load.set_live(live);
  REQUIRE(eventually_every([&] { return load.acked_count() >= 100; }, std::chrono::seconds{60}, poll_every));
  // Each node in turn stops gracefully (it releases its partitions) and starts again under
  // its name, in a fresh slot; as a static member it gets its partitions back.
  for (int i = 0; i < 3; ++i) {
    const int fresh = 3 + i;
    live.erase(std::find(live.begin(), live.end(), i));
    load.set_live(live);
    c.nodes[static_cast<std::size_t>(i)]->proc().kill(SIGTERM);
    c.start(fresh, "node-" + std::to_string(i));
    live.push_back(fresh);
    load.set_live(live);
    REQUIRE(eventually_every([&] { return c.settled(live); }, std::chrono::seconds{60}, poll_every));
    const auto now = load.acked_count();
    REQUIRE(eventually_every([&] { return load.acked_count() >= now + 50; }, std::chrono::seconds{60}, poll_every));
  }
  load.stop();
  CHECK(load.rejected() == 0);
  // A deposit waits at most for one node's restart (a few seconds), never for a session
  // timeout of a partition nobody serves.
  INFO("slowest deposit: " << load.slowest().count() << " ms");
  CHECK(load.slowest() < scaled(std::chrono::seconds{30}));
  check_census(c, load);
}

TEST_CASE("cluster: any node accepts any command, and transfers between nodes' accounts complete",
          "[cluster][broker][routing]") {
  bank_cluster c{"route", 6, std::chrono::seconds{6}, 3};
  const std::vector<int> all{0, 1, 2};
  REQUIRE(eventually_every([&] { return c.settled(all); }, std::chrono::seconds{60}, poll_every));
  // Every command goes to a node that does not own the account's partition.
  std::vector<std::string> ids;
  for (int a = 0; a < 9; ++a) {
    auto id = "acc-" + std::to_string(a);
    const int owner = c.owner_of("account", id, all);
    REQUIRE(owner >= 0);
    auto& other = *c.nodes[static_cast<std::size_t>((owner + 1) % 3)];
    auto [status, body] = other.post("/accounts/open", {{"id", id}, {"owner", "o"}});
    INFO(body.dump());
    REQUIRE(status == 200);
    auto [s2, b2] = other.post("/accounts/deposit", {{"id", id}, {"amount", "100"}, {"ref", "init-" + id}});
    INFO(b2.dump());
    REQUIRE(s2 == 200);
    CHECK(b2["balance"].get<std::int64_t>() == 100);
    ids.push_back(id);
  }
  // A rejection from the owner keeps its code on the way back (422, insufficient_funds).
  {
    const int owner = c.owner_of("account", ids[0], all);
    auto [status, body] = c.nodes[static_cast<std::size_t>((owner + 2) % 3)]->post(
      "/accounts/withdraw", {{"id", ids[0]}, {"amount", "1000"}, {"ref", "too-much"}});
    INFO(body.dump());
    CHECK(status == 422);
  }
  // Transfers between accounts of different nodes, each driven by a third node's saga, whose
  // transfer aggregate may be on yet another node: every step goes through the routers.
  int cross = 0;
  for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
    const int from = c.owner_of("account", ids[i], all), to = c.owner_of("account", ids[i + 1], all);
    if (from == to)
      continue;
    ++cross;
    const auto tid = "t-" + std::to_string(i);
    auto& driver = *c.nodes[static_cast<std::size_t>(3 - from - to)];
    auto [status, body] =
      driver.post("/transfers", {{"id", tid}, {"from", ids[i]}, {"to", ids[i + 1]}, {"amount", "10"}});
    INFO(body.dump());
    REQUIRE(status == 200);
    CHECK(body["status"] == "completed");
  }
  REQUIRE(cross > 0);
}
