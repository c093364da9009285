// The ownership seam on the real broker: a node that takes a partition over fences its old
// owner, which answers not_owner and never writes to it again.
#include <map>
#include <set>

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include "account.hpp"
#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/persistence/topics.hpp"
#include "cafes/runtime/node.hpp"
#include "journal_contract.hpp"
#include "kafka_fixture.hpp"

using namespace cafes;

TEST_CASE("broker: taking a partition over fences the old owner, which answers not_owner and writes nothing more",
          "[ownership][transactional][broker]") {
  constexpr std::int32_t parts = 2;
  node_config cfg;
  cfg.bootstrap = cafes::test::bootstrap();
  cfg.ns = cafes::test::unique_ns("own");
  cfg.mode = journal_mode::transactional;
  cfg.log_level = "error";
  cfg.command_timeout = cafes::test::scaled(std::chrono::milliseconds{30'000});
  host_options o;
  o.partitions = parts;
  o.snapshot_every = 0;
  const auto ready = cafes::test::scaled(std::chrono::milliseconds{60'000});

  cfg.node_name = "node-a";
  node a{cfg};
  REQUIRE(a.host<bank::account>(o));
  REQUIRE(a.wait_ready(ready));
  std::map<std::string, std::int64_t> served;
  for (int i = 0; i < 6; ++i) {
    auto id = "acc-" + std::to_string(i);
    REQUIRE(a.ask<bank::account>(id, bank::open{"o", 0}));
    served[id] = a.ask<bank::account>(id, bank::deposit{10 + i, "d"}).value();
  }
  const auto p = partition_for("acc-0", parts).value();
  std::string elsewhere; // an account of the partition that stays with node-a
  for (auto& [id, b] : served)
    if (partition_for(id, parts).value() != p)
      elsewhere = id;
  REQUIRE(!elsewhere.empty());

  // node-b takes partition p over without node-a giving it up (node-a is the zombie).
  cfg.node_name = "node-b";
  node b{cfg};
  auto ob = o;
  ob.assign_all = false;
  REQUIRE(b.host<bank::account>(ob));
  REQUIRE(b.assign("account", p));
  REQUIRE(b.wait_ready(ready));
  CHECK(b.owned("account").value() == std::vector<owned_partition>{{p, 2, true}}); // node-a had epoch 1

  auto zombie = a.ask<bank::account>("acc-0", bank::deposit{1000, "zombie"});
  REQUIRE(!zombie);
  INFO(zombie.error().to_string());
  CHECK(zombie.error() == actor_errc::not_owner);
  auto again = a.ask<bank::account>("acc-0", bank::deposit{1000, "zombie-again"});
  REQUIRE(!again);
  CHECK(again.error() == actor_errc::not_owner);
  CHECK(a.ask<bank::account>(elsewhere, bank::deposit{1, "still-mine"}).value() == served[elsewhere] + 1);

  for (auto& [id, bal] : served)
    if (partition_for(id, parts).value() == p)
      CHECK(b.ask<bank::account>(id, bank::get_balance{}).value() == bal); // every acknowledged deposit
  REQUIRE(b.ask<bank::account>("acc-0", bank::deposit{5, "new-owner"}).value() == served["acc-0"] + 5);

  // The census of partition p, read_committed: node-a's events (epoch 1), then node-b's
  // (epoch 2); nothing of the fenced deposits; every aggregate's seqs contiguous.
  auto j = make_kafka_journal(cafes::test::broker_config(journal_mode::transactional),
                              topic_names::of(cfg.ns, "account").events, parts,
                              std::vector<partition_id>{}); // a reader: it opens no writer
  REQUIRE(j);
  std::map<std::string, std::uint64_t> last_seq;
  bool b_wrote = false;
  for (auto& e : cafes::test::read_all(**j, partition_id{p}, offset{0}, 500)) {
    CHECK(e.seq.value() == last_seq[e.id.str()] + 1);
    last_seq[e.id.str()] = e.seq.value();
    if (e.writer_node == "node-a") {
      CHECK(e.writer_epoch == 1);
      CHECK_FALSE(b_wrote); // node-a never writes after node-b took over
    } else {
      CHECK(e.writer_node == "node-b");
      CHECK(e.writer_epoch == 2);
      b_wrote = true;
    }
    if (e.type == bank::deposited::type_name) {
      auto h = msgpack::unpack(e.payload.data(), e.payload.size());
      auto d = h.get().as<bank::deposited>();
      CHECK(d.reference.rfind("zombie", 0) != 0);
    }
  }
  CHECK(b_wrote);
}
