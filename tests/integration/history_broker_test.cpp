// Historical state and the audit trail read from the real broker's journal and snapshot topics.
#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/runtime/node.hpp"
#include "kafka_fixture.hpp"

namespace {

std::string packed(const bank::account::state& s) {
  msgpack::sbuffer b;
  msgpack::pack(b, s);
  return {b.data(), b.size()};
}

} // namespace

TEST_CASE("broker: state_at and history read a transactional journal, across a snapshot, on a node that owns nothing",
          "[history][broker]") {
  using namespace bank;
  cafes::node_config cfg;
  cfg.bootstrap = cafes::test::bootstrap();
  cfg.ns = cafes::test::unique_ns("history");
  cfg.mode = cafes::journal_mode::transactional;
  cfg.log_level = "warn";
  cfg.command_timeout = cafes::test::scaled(std::chrono::milliseconds{30'000});
  cafes::host_options opts;
  opts.partitions = 2;
  opts.snapshot_every = 4;

  std::vector<account::events> written{opened{"ann", 0}};
  cafes::node n{cfg};
  REQUIRE(n.host<account>(opts));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{30})));
  REQUIRE(n.ask<account>("acc-1", open{"ann", 0}, "open-1"));
  for (int i = 1; i <= 9; ++i) { // 10 events: snapshots after 4 and 8
    REQUIRE(n.ask<account>("acc-1", deposit{i, "r" + std::to_string(i)}, "c-" + std::to_string(i)));
    written.emplace_back(deposited{i, "r" + std::to_string(i)});
  }
  REQUIRE(n.ask<account>("acc-2", open{"bob", 0})); // another aggregate, maybe in the same partition
  auto fold = [&](std::size_t upto) {
    account::state s;
    for (std::size_t i = 0; i < upto; ++i)
      std::visit([&](const auto& e) { account::apply(s, e); }, written[i]);
    return s;
  };
  REQUIRE(cafes::test::eventually([&] { return n.stats("account")->snapshots_written >= 2; },
                                  std::chrono::seconds{30}));

  // A second node of the namespace that owns no partition reads the same past.
  auto reader_cfg = cfg;
  reader_cfg.node_name = "reader";
  auto reader_opts = opts;
  reader_opts.assign_all = false;
  cafes::node reader{reader_cfg};
  REQUIRE(reader.host<account>(reader_opts));
  for (auto* x : {&n, &reader})
    for (std::uint64_t seq : {1, 3, 4, 5, 8, 10}) {
      INFO("seq " << seq);
      auto s = x->state_at<account>("acc-1", seq);
      REQUIRE(s);
      CHECK(packed(*s) == packed(fold(seq)));
    }
  auto h = reader.history<account>("acc-1");
  REQUIRE(h);
  REQUIRE(h->size() == written.size());
  for (std::size_t i = 0; i < h->size(); ++i) {
    CHECK((*h)[i].seq.value() == i + 1);
    CHECK((*h)[i].command_id == (i == 0 ? std::string{"open-1"} : "c-" + std::to_string(i)));
    CHECK((*h)[i].writer_node == "node-1");
    CHECK((*h)[i].epoch >= 1);
  }
  CHECK(h->back().get<deposited>()->reference == "r9");
  auto at = reader.state_at_time<account>("acc-1", (*h)[5].time());
  REQUIRE(at);
  std::size_t upto = 0; // the events at or before that time (several may share a millisecond)
  while (upto < h->size() && (*h)[upto].time_ms <= (*h)[5].time_ms)
    ++upto;
  CHECK(packed(*at) == packed(fold(upto)));
  CHECK(reader.state_at<account>("acc-1", 11).error() == cafes::actor_errc::out_of_history);
  CHECK(reader.history<account>("acc-404").error() == cafes::actor_errc::no_history);
  CHECK(n.ask<account>("acc-1", get_balance{}).value() == fold(10).balance); // the live aggregate is untouched
}
