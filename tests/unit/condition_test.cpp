// cafes::condition: what an error means to a command's sender, across the error categories.
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/runtime/node.hpp"
#include "transfer.hpp"

using namespace cafes;

namespace {

// An application's error enum whose category nobody registered: cafes knows nothing of it,
// as of a rejection routed from a node that runs code this one does not.
enum class shop_errc { sold_out = 1 };

class shop_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shop"; }
  std::string message(int) const override { return "sold_out"; }
};

const std::error_category& shop_category() {
  static const shop_category_impl cat;
  return cat;
}

const std::vector<condition> all_conditions = {condition::rejected, condition::retryable, condition::unknown_outcome,
                                               condition::overloaded, condition::timeout};

// Returns the conditions `e` meets.
std::set<condition> met(const error& e) {
  std::set<condition> out;
  for (auto c : all_conditions)
    if (e == c)
      out.insert(c);
  return out;
}

using cs = std::set<condition>;

} // namespace

TEST_CASE("an error of the application's own category is a rejection and nothing else", "[condition]") {
  const error sold_out{std::error_code{1, shop_category()}, "no more"};
  CHECK(met(sold_out) == cs{condition::rejected});
  const error refused{bank::bank_errc::insufficient_funds};
  CHECK(met(refused) == cs{condition::rejected});
  CHECK(met(error{std::make_error_code(std::errc::invalid_argument)}) == cs{condition::rejected});
  // Code 0 is no error, in any category.
  CHECK(met(error{std::error_code{0, shop_category()}}).empty());
  CHECK(met(error{}).empty());
  CHECK(met(error{actor_errc::ok}).empty());
}

TEST_CASE("every error code of cafes meets the conditions its documentation promises", "[condition]") {
  const std::vector<std::pair<error, cs>> actors = {
    {actor_errc::unknown_aggregate_type, {}},
    {actor_errc::invalid_command, {}},
    {actor_errc::overloaded, {condition::overloaded, condition::retryable}},
    {actor_errc::persist_failed, {condition::unknown_outcome}},
    {actor_errc::recovery_failed, {}},
    {actor_errc::timeout, {condition::timeout, condition::unknown_outcome}},
    {actor_errc::shutting_down, {condition::unknown_outcome}},
    {actor_errc::not_owner, {condition::unknown_outcome}},
    {actor_errc::handler_failed, {}},
    {actor_errc::not_encodable, {}},
    {actor_errc::unreachable, {condition::unknown_outcome}},
    {actor_errc::frame_too_large, {condition::unknown_outcome}},
    {actor_errc::rejected, {condition::rejected}},
    {actor_errc::no_history, {}},
    {actor_errc::out_of_history, {}},
  };
  const std::vector<std::pair<error, cs>> persistence = {
    {errc::invalid_argument, {}},
    {errc::invalid_aggregate_id, {condition::rejected}},
    {errc::reserved_aggregate_id, {condition::rejected}},
    {errc::event_too_large, {}},
    {errc::state_too_large, {}},
    {errc::help_requested, {}},
    {errc::malformed_record, {}},
    {errc::missing_header, {}},
    {errc::bad_header, {}},
    {errc::unsupported_version, {}},
    {errc::unknown_type, {}},
    {errc::type_mismatch, {}},
    {errc::duplicate_type, {}},
    {errc::sequence_gap, {}},
    {errc::sequence_repeat, {}},
    {errc::timeout, {condition::timeout}}, // a write refused before it reached the log
    {errc::broker_unavailable, {}},
    {errc::fenced, {}},
    {errc::transaction_aborted, {}},
    {errc::topic_mismatch, {}},
    {errc::topic_missing, {}},
    {errc::kafka_error, {}},
    {errc::fatal, {}},
    {errc::closed, {}},
    {errc::overloaded, {condition::overloaded, condition::retryable}},
    {errc::not_owned, {}},
    {errc::unauthorized, {}},
    {errc::tls_failed, {}},
  };
  for (auto* table : {&actors, &persistence})
    for (auto& [e, want] : *table) {
      INFO(e.to_string());
      CHECK(met(e) == want);
    }
  // A code added to either enum must be placed here too.
  auto listed = [](const std::vector<std::pair<error, cs>>& table, const std::error_category& cat) {
    std::size_t named = 0;
    for (int v = 1; v < 256; ++v)
      if (cat.message(v).rfind("unknown(", 0) != 0)
        ++named;
    return named == table.size();
  };
  CHECK(listed(actors, actors_category()));
  CHECK(listed(persistence, persistence_category()));
}

TEST_CASE("conditions compare from either side, with errors and with plain error codes", "[condition]") {
  const error busy{actor_errc::overloaded, "full"};
  CHECK(busy == condition::retryable);
  CHECK(condition::retryable == busy);
  CHECK(busy != condition::rejected);
  CHECK(std::error_code{actor_errc::overloaded} == condition::overloaded);
  CHECK(std::error_code{1, shop_category()} == condition::rejected);
  CHECK(std::error_code{1, shop_category()} != condition::unknown_outcome);
  CHECK(std::string{condition_category().name()} == "cafes");
  CHECK(make_error_condition(condition::unknown_outcome).message() == "unknown_outcome");
}

TEST_CASE("a node's replies meet the conditions of their codes", "[condition]") {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "cond";
  c.log_level = "warn";
  c.threads = 2;
  node n{c};
  REQUIRE(n.host<bank::account>({.partitions = 2}));
  REQUIRE(n.wait_ready(std::chrono::seconds{10}));
  REQUIRE(n.ask<bank::account>("a", bank::open{"ann", 0}));
  auto refused = n.ask<bank::account>("a", bank::withdraw{10, "w1"});
  REQUIRE(!refused);
  CHECK(refused.error() == bank::bank_errc::insufficient_funds);
  CHECK(met(refused.error()) == cs{condition::rejected});
  auto bad_id = n.ask<bank::account>("", bank::get_balance{});
  REQUIRE(!bad_id);
  CHECK(met(bad_id.error()) == cs{condition::rejected});
  auto unhosted = n.ask<bank::transfer>("t", bank::get_transfer{});
  REQUIRE(!unhosted);
  CHECK(met(unhosted.error()).empty());
}

// Its own names: embedding_test.cpp declares a wishlist::wish_error of its own in this binary.
namespace wishlist {
CAFES_ERROR_ENUM(wish_error, "wishlist", empty_cart, unknown_item,
                 too_many); // codes on several lines read the same
} // namespace wishlist

TEST_CASE("an error enum declared in one line has its names, its category and the rejected condition",
          "[condition][errors]") {
  const error e{wishlist::wish_error::unknown_item, "no such item: socks"};
  CHECK(e.to_string() == "wishlist:unknown_item: no such item: socks");
  CHECK(e == wishlist::wish_error::unknown_item);
  CHECK(e != wishlist::wish_error::empty_cart);
  CHECK(e == condition::rejected);
  CHECK(make_error_code(wishlist::wish_error::empty_cart).value() == 1);
  CHECK(make_error_code(wishlist::wish_error::too_many).message() == "too_many");
  CHECK(make_error_code(wishlist::wish_error::ok).message() == "ok");
  CHECK(!make_error_code(wishlist::wish_error::ok)); // ok is no error
  CHECK(std::error_code{7, make_error_code(wishlist::wish_error::ok).category()}.message() == "unknown(7)");
  // reject() registers the category, so that a rejection routed back from another node is
  // known by its name.
  auto r = cafes::reject(wishlist::wish_error::empty_cart, "nothing to check out");
  CHECK(r.err == wishlist::wish_error::empty_cart);
  const auto* found = find_error_category("wishlist");
  REQUIRE(found != nullptr);
  CHECK(*found == make_error_code(wishlist::wish_error::ok).category());
}

TEST_CASE("reject with a message alone is a plain cafes rejection", "[condition][errors]") {
  auto r = cafes::reject("out of stock");
  CHECK(r.err == actor_errc::rejected);
  CHECK(r.err == condition::rejected);
  CHECK(r.err != condition::unknown_outcome);
  CHECK(r.err.to_string() == "cafes:rejected: out of stock");
}

TEST_CASE("every layer's errors read as cafes to a user", "[condition][errors]") {
  CHECK(error{errc::invalid_argument, "--partitions must be at least 1"}.to_string() ==
        "cafes:invalid_argument: --partitions must be at least 1");
  CHECK(error{actor_errc::timeout}.to_string() == "cafes:timeout");
  // The categories keep distinct names for the wire: a routed error finds its own category.
  CHECK(std::string{actors_category().name()} != persistence_category().name());
}
