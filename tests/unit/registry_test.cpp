// The type registry: names, versions, upcasting and its errors.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cafes/persistence/registry.hpp"

using namespace cafes;

namespace {

struct deposited_v2 {
  std::int64_t amount = 0;
  std::string currency;
  MSGPACK_DEFINE_MAP(amount, currency);
};

struct deposited_v1 { // how version 1 looked on the wire
  std::int64_t cents = 0;
  MSGPACK_DEFINE_MAP(cents);
};

struct unregistered {
  int x = 0;
  MSGPACK_DEFINE_MAP(x);
};

struct opened {
  std::string owner;
  MSGPACK_DEFINE_MAP(owner);
};

std::string pack_v1(std::int64_t cents) {
  msgpack::sbuffer b;
  msgpack::pack(b, deposited_v1{cents});
  return {b.data(), b.size()};
}

type_registry make_registry() {
  type_registry r;
  REQUIRE(r.add<deposited_v2>("deposited", 2));
  REQUIRE(r.add<opened>("opened"));
  REQUIRE(r.add_upcaster("deposited", 1, [](nlohmann::json& j) -> expected<void> {
    j["amount"] = j.at("cents");
    j.erase("cents");
    j["currency"] = "EUR";
    return {};
  }));
  return r;
}

} // namespace

TEST_CASE("a registered type encodes under its name and version and decodes back", "[registry]") {
  auto r = make_registry();
  auto enc = r.encode(deposited_v2{250, "USD"});
  REQUIRE(enc);
  CHECK(enc->type == "deposited");
  CHECK(enc->version == 2);
  auto dec = r.decode<deposited_v2>(enc->type, enc->version, enc->bytes);
  REQUIRE(dec);
  CHECK(dec->amount == 250);
  CHECK(dec->currency == "USD");
  auto any = r.decode_any("opened", 1, r.encode(opened{"ann"})->bytes);
  REQUIRE(any);
  CHECK(std::any_cast<opened>(*any).owner == "ann");
}

TEST_CASE("an older version is upcast to the current one", "[registry]") {
  auto r = make_registry();
  auto dec = r.decode<deposited_v2>("deposited", 1, pack_v1(99));
  REQUIRE(dec);
  CHECK(dec->amount == 99);
  CHECK(dec->currency == "EUR");
}

TEST_CASE("unknown types and versions are typed errors", "[registry][bad-input]") {
  auto r = make_registry();
  CHECK(r.decode_any("withdrawn", 1, pack_v1(1)).error() == errc::unknown_type);
  CHECK(r.decode_any("deposited", 3, pack_v1(1)).error() == errc::unsupported_version);
  CHECK(r.decode_any("deposited", 0, pack_v1(1)).error() == errc::unsupported_version);
  CHECK(r.encode(unregistered{}).error() == errc::unknown_type);
  CHECK(r.decode<opened>("deposited", 2, r.encode(deposited_v2{1, "x"})->bytes).error() == errc::type_mismatch);
}

TEST_CASE("a missing upcaster in the chain is an error, not a guess", "[registry][bad-input]") {
  type_registry r;
  REQUIRE(r.add<deposited_v2>("deposited", 3));
  REQUIRE(r.add_upcaster("deposited", 2, [](nlohmann::json&) -> expected<void> { return {}; }));
  auto d = r.decode_any("deposited", 1, pack_v1(1));
  REQUIRE_FALSE(d);
  CHECK(d.error() == errc::unsupported_version);
}

TEST_CASE("a failing upcaster's error reaches the caller", "[registry][bad-input]") {
  type_registry r;
  REQUIRE(r.add<deposited_v2>("deposited", 2));
  REQUIRE(r.add_upcaster("deposited", 1, [](nlohmann::json&) -> expected<void> {
    return error{errc::malformed_record, "cents missing"};
  }));
  CHECK(r.decode_any("deposited", 1, pack_v1(1)).error() == errc::malformed_record);
}

TEST_CASE("registration errors", "[registry][bad-input]") {
  type_registry r;
  REQUIRE(r.add<opened>("opened"));
  CHECK(r.add<opened>("opened-again").error() == errc::duplicate_type);
  CHECK(r.add<deposited_v2>("opened").error() == errc::duplicate_type);
  CHECK(r.add<deposited_v1>("").error() == errc::invalid_argument);
  CHECK(r.add<deposited_v1>("v", 0).error() == errc::invalid_argument);
  CHECK(r.add_upcaster("nope", 1, {}).error() == errc::unknown_type);
  CHECK(r.add_upcaster("opened", 1, {}).error() == errc::invalid_argument); // current is 1
}

TEST_CASE("wrong field types and garbage bytes are typed errors", "[registry][bad-input]") {
  auto r = make_registry();
  nlohmann::json wrong = {{"amount", "lots"}, {"currency", 5}};
  auto bytes = nlohmann::json::to_msgpack(wrong);
  auto d = r.decode_any("deposited", 2, std::string{bytes.begin(), bytes.end()});
  REQUIRE_FALSE(d);
  CHECK(d.error() == errc::type_mismatch);
  CHECK(r.decode_any("deposited", 2, "\xc1").error() == errc::malformed_record);
  CHECK(r.decode_any("deposited", 1, "\x81").error() == errc::malformed_record);
}
