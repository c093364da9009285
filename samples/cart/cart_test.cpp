// The cart's logic, tested with no node: given past events, when a command, then the outcome.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <cafes/actors/testing.hpp>

#include "cart.hpp"

using shop::cart;

TEST_CASE("adding replies with the count after the event") {
  auto t = cafes::testing::given<cart>(cart::item_added{"tea", 2}).when(cart::add_item{"jam", 3});
  CHECK(t.emitted(cart::item_added{"jam", 3}));
  CHECK(t.reply == 5);
}

TEST_CASE("a checked-out cart takes nothing") {
  auto t = cafes::testing::given<cart>(cart::item_added{"tea", 1}, cart::cart_checked_out{1}).when(cart::add_item{"jam"});
  CHECK(t.rejected_with(shop::cart_error::checked_out));
  CHECK(t.events.empty());
}
