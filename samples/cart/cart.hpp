// A shopping cart aggregate, written against the installed cafes package only.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

#include <cafes/actors/aggregate.hpp>
#include <msgpack.hpp>

namespace shop {

// The cart's own errors: "cart:unknown_item: socks" and so on.
CAFES_ERROR_ENUM(cart_error, "cart", unknown_item, checked_out, empty_cart);

struct cart {
  static constexpr std::string_view name = "cart";

  struct state {
    std::map<std::string, std::int64_t> items; // sku -> quantity
    bool checked_out = false;
    std::int64_t count() const {
      std::int64_t n = 0;
      for (const auto& [sku, qty] : items)
        n += qty;
      return n;
    }
    MSGPACK_DEFINE_MAP(items, checked_out);
  };

  // Events: what happened, named for the journal.
  struct item_added {
    static constexpr std::string_view type_name = "cart.item_added";
    std::string sku;
    std::int64_t qty = 0;
    MSGPACK_DEFINE_MAP(sku, qty);
  };
  struct item_removed {
    static constexpr std::string_view type_name = "cart.item_removed";
    std::string sku;
    MSGPACK_DEFINE_MAP(sku);
  };
  struct cart_checked_out {
    static constexpr std::string_view type_name = "cart.checked_out";
    std::int64_t items = 0;
    MSGPACK_DEFINE_MAP(items);
  };

  // Commands: what a shopper asks for.
  struct add_item {
    std::string sku;
    std::int64_t qty = 1;
  };
  struct remove_item {
    std::string sku;
  };
  struct checkout {};

  using commands = std::variant<add_item, remove_item, checkout>;
  using events = std::variant<item_added, item_removed, cart_checked_out>;
  // Every event a handler emits is checked against `events` at compile time.
  template <class R = cafes::done>
  using decision = cafes::decision<R, events>;

  // Each reply is the number of items in the cart after the command.
  static decision<std::int64_t> handle(const state& s, const add_item& c) {
    if (s.checked_out)
      return cafes::reject(cart_error::checked_out, "the cart is checked out");
    if (c.qty < 1 || c.qty > 99)
      return cafes::reject("a quantity is 1 to 99");
    if (c.sku.empty())
      throw std::invalid_argument("no sku"); // a bug: this command fails, the cart goes on
    return cafes::emit(item_added{c.sku, c.qty}).reply_with([](const state& next) { return next.count(); });
  }
  static decision<std::int64_t> handle(const state& s, const remove_item& c) {
    if (!s.items.count(c.sku))
      return cafes::reject(cart_error::unknown_item, c.sku);
    return cafes::emit(item_removed{c.sku}).reply_with([](const state& next) { return next.count(); });
  }
  static decision<std::int64_t> handle(const state& s, const checkout&) {
    if (s.checked_out || s.items.empty())
      return cafes::reject(cart_error::empty_cart, "nothing to check out");
    return cafes::emit(cart_checked_out{s.count()}).reply(s.count());
  }

  static void apply(state& s, const item_added& e) { s.items[e.sku] += e.qty; }
  static void apply(state& s, const item_removed& e) { s.items.erase(e.sku); }
  static void apply(state& s, const cart_checked_out&) { s.checked_out = true; }
};

} // namespace shop
