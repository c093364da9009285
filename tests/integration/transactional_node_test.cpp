// The bank demo on a node in transactional mode against the real broker.
#include <catch2/catch.hpp>

#include "demo.hpp"
#include "test_env.hpp"

TEST_CASE("broker: the bank demo holds its invariant on a transactional node", "[node][transactional][broker]") {
  cafes::node_config cfg;
  cfg.bootstrap = cafes::test::bootstrap();
  cfg.ns = cafes::test::unique_ns("txbank");
  cfg.mode = cafes::journal_mode::transactional;
  cfg.log_level = "warn";
  cfg.command_timeout = cafes::test::scaled(std::chrono::milliseconds{30'000});
  cafes::node n{cfg};
  bank::demo_options o;
  o.accounts = 20;
  o.commands = 300;
  o.workers = 8;
  o.partitions = 3;
  o.snapshot_every = 10;
  CHECK(bank::run_demo(n, o) == 0); // 0: balances add up and no transfer is pending
  auto s = n.stats("account");
  CHECK(s->events_persisted > 300);
  CHECK(s->snapshots_written > 0);
}
