// The journal contract and the snapshot store on the in-memory implementations.
#include <catch2/catch.hpp>

#include "cafes/persistence/snapshot_store.hpp"
#include "journal_contract.hpp"
#include "snapshot_contract.hpp"

using namespace cafes;

TEST_CASE("memory journal: contract", "[journal][memory]") {
  auto j = make_memory_journal("ns.account.events", 4);
  cafes::test::check_journal_contract(*j, true);
}

TEST_CASE("memory snapshot store: contract", "[snapshot][memory]") {
  auto s = make_memory_snapshot_store(4);
  cafes::test::check_snapshot_contract(*s);
}
