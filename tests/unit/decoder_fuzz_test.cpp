// Randomized decoder test: hostile records never crash and always give a typed error or a value.
#include <random>

#include <catch2/catch.hpp>

#include "cafes/persistence/registry.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "journal_contract.hpp"

using namespace cafes;

namespace {

bool typed(const error& e) {
  return e.code.category() == persistence_category() && e.code.value() != 0 && !e.message.empty();
}

} // namespace

TEST_CASE("100k mutated and random records decode to a value or a typed error", "[codec][fuzz][bad-input]") {
  std::mt19937_64 rng{0xcafe5};
  type_registry reg;
  REQUIRE(reg.add<cafes::test::sample_event>("deposited", 2));
  const auto seed_rec = encode_event(cafes::test::make_event("acc-1", 7), "t").value();
  const auto seed_snap = encode_snapshot(snapshot{aggregate_id::make("acc-1").value(), seq_nr{1}, offset{0},
                                                  "account", 1, *seed_rec.value},
                                         "s")
                           .value();
  std::uniform_int_distribution<int> byte{0, 255};
  std::size_t values = 0, errors = 0;
  for (int i = 0; i < 100'000; ++i) {
    auto r = (i % 2) ? seed_rec : seed_snap;
    std::string v = *r.value;
    switch (i % 5) {
      case 0: // flip bytes
        for (int k = 0; k < 1 + i % 4; ++k)
          v[rng() % v.size()] = static_cast<char>(byte(rng));
        break;
      case 1: // truncate
        v.resize(rng() % v.size());
        break;
      case 2: { // pure noise
        v.resize(rng() % 64);
        for (auto& c : v)
          c = static_cast<char>(byte(rng));
        break;
      }
      case 3: // insert bytes
        v.insert(rng() % v.size(), 1 + rng() % 8, static_cast<char>(byte(rng)));
        break;
      default: // corrupt a header instead
        r.headers[rng() % r.headers.size()].value.assign(rng() % 6, static_cast<char>(byte(rng)));
        break;
    }
    r.value = v;
    auto check = [&](const auto& res) {
      if (res)
        ++values;
      else {
        ++errors;
        REQUIRE(typed(res.error()));
      }
    };
    check(decode_event(r));
    check(decode_snapshot(r));
    check(reg.decode_any("deposited", 1 + static_cast<std::uint32_t>(i % 2), v));
  }
  CHECK(errors > 100'000);
  CHECK(values > 0);
}
