// The snapshot store contract: latest wins, scans, checkpoints and bad input.
#pragma once

#include <map>

#include <catch2/catch.hpp>

#include "cafes/persistence/partitioner.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "journal_contract.hpp"

namespace cafes::test {

inline snapshot make_snapshot(const std::string& id, std::uint64_t seq) {
  return snapshot{aggregate_id::make(id).value(), seq_nr{seq}, offset{static_cast<std::int64_t>(seq * 10)},
                  "account", 1, make_event(id, seq, static_cast<std::int64_t>(seq)).payload};
}

/// Runs the contract on an empty store with at least 2 partitions.
inline void check_snapshot_contract(snapshot_store& s) {
  SECTION("the latest snapshot of an aggregate wins") {
    auto none = s.load(aggregate_id::make("acc-1").value());
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
    for (std::uint64_t q : {3, 7, 5}) // the last one written wins, whatever its seq
      REQUIRE(s.save_sync(make_snapshot("acc-1", q)));
    REQUIRE(s.save_sync(make_snapshot("acc-2", 1)));
    auto got = s.load(aggregate_id::make("acc-1").value());
    REQUIRE(got);
    REQUIRE(got->has_value());
    CHECK(**got == make_snapshot("acc-1", 5));
  }

  SECTION("a scan yields the latest snapshot of every aggregate of the partition") {
    std::map<std::int32_t, std::map<std::string, std::uint64_t>> want;
    for (int a = 0; a < 12; ++a)
      for (std::uint64_t q = 1; q <= 3; ++q) {
        auto id = "acc-" + std::to_string(a);
        REQUIRE(s.save_sync(make_snapshot(id, q)));
        want[partition_for(id, s.partitions()).value()][id] = q;
      }
    REQUIRE(s.save_checkpoint(partition_id{0}, offset{17}));
    for (std::int32_t p = 0; p < s.partitions(); ++p) {
      std::map<std::string, std::uint64_t> got;
      auto ok = s.scan(partition_id{p}, [&](snapshot x) {
        CHECK(x == make_snapshot(x.id.str(), x.seq.value()));
        CHECK(got.emplace(x.id.str(), x.seq.value()).second);
      });
      REQUIRE(ok);
      CHECK(got == want[p]);
    }
  }

  SECTION("checkpoints are kept per partition and the last one wins") {
    auto none = s.load_checkpoint(partition_id{1});
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
    REQUIRE(s.save_checkpoint(partition_id{1}, offset{10}));
    REQUIRE(s.save_checkpoint(partition_id{1}, offset{25}));
    REQUIRE(s.save_checkpoint(partition_id{0}, offset{3}));
    CHECK(s.load_checkpoint(partition_id{1}).value() == offset{25});
    CHECK(s.load_checkpoint(partition_id{0}).value() == offset{3});
  }

  SECTION("bad snapshots and checkpoints are refused") {
    auto bad = make_snapshot("acc-1", 1);
    bad.id = aggregate_id::unchecked("__cafes.checkpoint");
    CHECK(s.save_sync(bad).error() == errc::reserved_aggregate_id);
    bad = make_snapshot("acc-1", 1);
    bad.seq = seq_nr{0};
    CHECK(s.save_sync(bad).error() == errc::invalid_argument);
    CHECK(s.save_checkpoint(partition_id{-1}, offset{1}).error() == errc::invalid_argument);
    CHECK(s.save_checkpoint(partition_id{0}, offset{-1}).error() == errc::invalid_argument);
    CHECK_FALSE(s.load(aggregate_id::make("acc-1").value()).value().has_value());
  }
}

} // namespace cafes::test
