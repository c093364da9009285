// Bank nodes in cluster mode on the real broker, under load, while one is killed or paused:
// its partitions move to the others, and nothing acknowledged is lost or written twice.
#include <chrono>

#include <catch2/catch.hpp>

#include "bank_cluster.hpp"

using namespace cafes::test;

namespace {

constexpr auto poll_every = std::chrono::milliseconds{50};

constexpr std::int32_t partitions = 6;
constexpr auto session = std::chrono::seconds{5};

/// Every acknowledged deposit is in the committed journal exactly once, nothing is there
/// twice, each partition's epochs never go back, and every balance equals the journal's fold.
void check_outcome(const bank_cluster& c, const deposit_load& load, const std::vector<int>& live) {
  auto census = check_census(c, load);
  const auto acked = load.acked();
  for (auto& [id, by_ref] : census.deposits) {
    const int to = c.owner_of("account", id, live);
    REQUIRE(to >= 0);
    auto [status, body] =
      c.nodes[static_cast<std::size_t>(to)]->post("/accounts/deposit", {{"id", id}, {"amount", "1"}, {"ref", "final"}});
    REQUIRE(status == 200);
    INFO(id);
    CHECK(body["balance"].get<std::int64_t>() == static_cast<std::int64_t>(by_ref.size()) + 1); // the fold, plus this one
    CHECK(static_cast<std::int64_t>(by_ref.size()) >= (acked.count(id) ? acked.at(id) : 0));
  }
}

} // namespace

/// A counter of the nodes' /stats (promotions, retakes, ...), summed over the nodes in `among`.
std::uint64_t stat_sum(const bank_cluster& c, const std::vector<int>& among, const char* counter) {
  std::uint64_t n = 0;
  for (int i : among)
    if (auto j = c.nodes[static_cast<std::size_t>(i)]->stats(); j.is_object())
      for (auto type : {"account", "transfer"})
        n += j[type][counter].get<std::uint64_t>();
  return n;
}

/// Takeovers that started from a hot standby, summed over the nodes in `among`.
std::uint64_t promotions(const bank_cluster& c, const std::vector<int>& among) {
  return stat_sum(c, among, "promotions");
}

TEST_CASE("cluster: a node killed with SIGKILL under load loses its partitions to the others, which take "
          "them over from their hot standbys, and every acknowledged deposit is in the journal once",
          "[cluster][broker][fault][standby]") {
  // Two standbys of each partition on three nodes: whichever node takes a partition of the
  // dead one over has kept it warm.
  bank_cluster c{"kill", partitions, session, 3, 2};
  REQUIRE(eventually_every([&] { return c.settled({0, 1, 2}); }, std::chrono::seconds{60}, poll_every));
  // Each node keeps warm every partition it does not own (placed from the directory).
  REQUIRE(eventually_every(
    [&] {
      for (int i : {0, 1, 2}) {
        auto j = c.nodes[static_cast<std::size_t>(i)]->stats();
        if (!j.is_object())
          return false;
        for (auto type : {"account", "transfer"})
          if (j[type]["standby"].size() + j[type]["owned"].size() != static_cast<std::size_t>(partitions))
            return false;
      }
      return true;
    },
    std::chrono::seconds{60}, poll_every));
  const auto promoted_before = promotions(c, {0, 2});
  auto ids = open_accounts(c, {0, 1, 2}, 12);
  deposit_load load{c, ids, 3};
  load.set_live({0, 1, 2});
  REQUIRE(eventually_every([&] { return load.acked_count() >= 150; }, std::chrono::seconds{60}, poll_every));

  const auto victims = c.nodes[1]->owned();
  REQUIRE(!victims.empty());
  c.nodes[1]->proc().kill(SIGKILL);
  load.set_live({0, 2});
  const auto killed_at = std::chrono::steady_clock::now();
  // The group moves the dead node's partitions after the session timeout; then they recover.
  REQUIRE(eventually_every([&] { return c.settled({0, 2}); }, session + std::chrono::seconds{60}, poll_every));
  const auto moved_in = std::chrono::steady_clock::now() - killed_at;
  WARN("partitions moved and recovered "
       << std::chrono::duration_cast<std::chrono::milliseconds>(moved_in).count() << " ms after the kill");
  for (auto& [type, parts] : victims) {
    auto now = c.owners(type, {0, 2});
    for (auto& [p, epoch] : parts) {
      INFO(type << " partition " << p);
      REQUIRE(now[p].size() == 1);
      CHECK(now[p].front().second > epoch); // the new owner claimed a later epoch
    }
  }
  std::size_t moved = 0;
  for (auto& [type, parts] : victims)
    moved += parts.size();
  CHECK(promotions(c, {0, 2}) - promoted_before == moved); // every takeover started warm
  const auto at_kill = load.acked_count();
  REQUIRE(eventually_every([&] { return load.acked_count() >= at_kill + 150; }, std::chrono::seconds{60}, poll_every));
  load.stop();
  CHECK(load.rejected() == 0);
  c.nodes[1].reset();
  check_outcome(c, load, {0, 2});
}

TEST_CASE("cluster: a node paused past the session timeout is fenced: after it resumes it acknowledges "
          "nothing its successors cannot see, and gives its partitions up",
          "[cluster][broker][fault]") {
  bank_cluster c{"zombie", partitions, session, 3};
  REQUIRE(eventually_every([&] { return c.settled({0, 1, 2}); }, std::chrono::seconds{60}, poll_every));
  auto ids = open_accounts(c, {0, 1, 2}, 12);
  // The load keeps sending to every node, the paused one too: its requests wait in its
  // socket buffers, and it serves them when it resumes, after it was fenced.
  deposit_load load{c, ids, 4};
  load.set_live({0, 1, 2});
  REQUIRE(eventually_every([&] { return load.acked_count() >= 150; }, std::chrono::seconds{60}, poll_every));

  const auto held = c.nodes[1]->owned();
  REQUIRE(!held.empty());
  c.nodes[1]->proc().signal(SIGSTOP);
  // Once the others own everything, the paused node is expelled and fenced.
  REQUIRE(eventually_every([&] { return c.settled({0, 2}); }, session + std::chrono::seconds{60}, poll_every));
  for (auto& [type, parts] : held) {
    auto now = c.owners(type, {0, 2});
    for (auto& [p, epoch] : parts) {
      INFO(type << " partition " << p);
      REQUIRE(now[p].size() == 1);
      CHECK(now[p].front().second > epoch);
    }
  }
  const auto at_pause = load.acked_count();
  REQUIRE(eventually_every([&] { return load.acked_count() >= at_pause + 100; }, std::chrono::seconds{60}, poll_every));

  c.nodes[1]->proc().signal(SIGCONT);
  // It learns it was expelled, gives up what it held, and rejoins: in the end every
  // partition has one owner among all three again, at a later epoch than the zombie's.
  REQUIRE(eventually_every([&] { return c.settled({0, 1, 2}); }, session + std::chrono::seconds{60}, poll_every));
  for (auto& [type, parts] : held) {
    auto now = c.owners(type, {0, 1, 2});
    for (auto& [p, epoch] : parts) {
      INFO(type << " partition " << p);
      CHECK(now[p].front().second > epoch);
    }
  }
  const auto at_resume = load.acked_count();
  REQUIRE(eventually_every([&] { return load.acked_count() >= at_resume + 100; }, std::chrono::seconds{60}, poll_every));
  // The zombie's lost writers were never taken over again: the group did not confirm it
  // held their partitions any more (it takes back only what the group assigns it anew).
  CHECK(stat_sum(c, {1}, "retakes") == 0);
  load.stop();
  CHECK(load.rejected() == 0);
  check_outcome(c, load, {0, 1, 2});
}
