// Size limits of snapshots: the record size is computed without encoding, and a state whose
// snapshot would not fit is refused with state_too_large.
#include <catch2/catch.hpp>

#include "sized.hpp"

using namespace cafes;
using namespace cafes::test;

TEST_CASE("snapshot_record_bytes is the size of the encoded snapshot record", "[unit][limits]") {
  // Around every bin header size of the state: bin8, bin16 and bin32.
  for (std::size_t note : {0u, 200u, 250u, 300u, 65'500u, 65'600u, 200'000u}) {
    snapshot s{aggregate_id::make("acc-1").value(), seq_nr{12345}, offset{987654}, "account", 3, payload_with_note(note)};
    auto r = encode_snapshot(s, "ns.account.snapshots");
    REQUIRE(r);
    INFO("note of " << note << " bytes");
    CHECK(snapshot_record_bytes(s) == record_bytes(*r));
  }
}

TEST_CASE("a snapshot of exactly the limit passes; one byte more is state_too_large", "[unit][limits]") {
  const codec_limits limits{200'000};
  auto fits = snapshot_of_size("acc-1", limits.max_event_bytes);
  REQUIRE(snapshot_record_bytes(fits) == limits.max_event_bytes);
  CHECK(check_snapshot(fits, limits));
  auto over = snapshot_of_size("acc-1", limits.max_event_bytes + 1);
  auto r = check_snapshot(over, limits);
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::state_too_large);

  // The stores refuse it as well, and keep the last snapshot that fitted.
  auto store = make_memory_snapshot_store(2, limits);
  CHECK(store->limits().max_event_bytes == limits.max_event_bytes);
  REQUIRE(store->save_sync(fits));
  auto saved = store->save_sync(over);
  REQUIRE_FALSE(saved);
  CHECK(saved.error() == errc::state_too_large);
  CHECK(store->load(fits.id).value()->state == fits.state);
}

TEST_CASE("the memory journal reports the limits it enforces", "[unit][limits]") {
  auto j = make_memory_journal("ns.account.events", 2, codec_limits{100'000});
  CHECK(j->limits().max_event_bytes == 100'000);
  CHECK(j->append_sync({event_of_size("acc-1", 1, 100'000, j->topic())}));
  auto r = j->append_sync({event_of_size("acc-1", 2, 100'001, j->topic())});
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::event_too_large);
}
