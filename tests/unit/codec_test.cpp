// The event envelope codec: round trips and the errors of bad records.
#include <catch2/catch.hpp>

#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "journal_contract.hpp"

using namespace cafes;
using cafes::test::make_event;

TEST_CASE("an envelope survives encode and decode unchanged", "[codec]") {
  auto e = make_event("acc-1", 42);
  auto r = encode_event(e, "ns.account.events");
  REQUIRE(r);
  CHECK(r->key == "acc-1");
  CHECK(*r->find_header("ce_specversion") == "1.0");
  CHECK(*r->find_header("ce_type") == "deposited");
  CHECK(*r->find_header("ce_subject") == "acc-1");
  CHECK(*r->find_header("ce_cafesseq") == "42");
  CHECK(*r->find_header("ce_cafesschema") == "2");
  CHECK(*r->find_header("content-type") == "application/msgpack");
  CHECK(*r->find_header("ce_causationid") == "cmd-acc-1-42");
  CHECK(*r->find_header("ce_time") == "2026-09-21T14:13:20.165Z");
  auto d = decode_event(*r);
  REQUIRE(d);
  CHECK(*d == e);
}

TEST_CASE("encode fills the event id, source and time when they are left empty", "[codec]") {
  auto e = make_event("acc-1", 3);
  e.event_id.clear();
  e.source.clear();
  e.time_ms = 0;
  auto r = encode_event(e, "ns.account.events");
  REQUIRE(r);
  CHECK(*r->find_header("ce_id") == "acc-1/3");
  CHECK(*r->find_header("ce_source") == "/cafes/ns.account.events");
  auto d = decode_event(*r);
  REQUIRE(d);
  CHECK(d->time_ms > 1'700'000'000'000);
}

TEST_CASE("RFC 3339 times parse with fractions and offsets", "[codec]") {
  CHECK(parse_rfc3339("1970-01-01T00:00:00Z").value() == 0);
  CHECK(parse_rfc3339("1970-01-01T00:00:01.5Z").value() == 1500);
  CHECK(parse_rfc3339("1970-01-01T01:00:00+01:00").value() == 0);
  CHECK(parse_rfc3339("2026-11-26T06:30:00.123456Z").value() == 1'795'674'600'123);
  CHECK(format_rfc3339(1'795'674'600'123) == "2026-11-26T06:30:00.123Z");
  for (auto bad : {"", "yesterday", "2026-13-01T00:00:00Z", "2026-11-26T06:30:00", "2026-11-26T06:30:00.Z",
                   "2026-11-26 06:30:00Z", "2026-11-26T06:30:00+1:00"}) {
    INFO(bad);
    auto r = parse_rfc3339(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::bad_header);
  }
}

TEST_CASE("bad envelopes are refused with a typed error before encoding", "[codec][bad-input]") {
  auto e = make_event("acc-1", 1);
  SECTION("sequence number 0") {
    e.seq = seq_nr{0};
    CHECK(encode_event(e, "t").error() == errc::invalid_argument);
  }
  SECTION("reserved id") {
    e.id = aggregate_id::unchecked("__cafes.checkpoint");
    CHECK(encode_event(e, "t").error() == errc::reserved_aggregate_id);
  }
  SECTION("empty type") {
    e.type.clear();
    CHECK(encode_event(e, "t").error() == errc::invalid_argument);
  }
  SECTION("payload that is not a msgpack map") {
    e.payload = "\x93\x01\x02\x03"; // an array
    CHECK(encode_event(e, "t").error() == errc::invalid_argument);
  }
  SECTION("oversized event") {
    msgpack::sbuffer buf;
    msgpack::pack(buf, cafes::test::sample_event{1, std::string(2000, 'x')});
    e.payload.assign(buf.data(), buf.size());
    auto r = encode_event(e, "t", codec_limits{1024});
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::event_too_large);
    CHECK(encode_event(e, "t", codec_limits{4096}));
  }
}

TEST_CASE("aggregate ids are checked", "[codec][bad-input]") {
  CHECK(aggregate_id::make("acc-1"));
  CHECK(aggregate_id::make("").error() == errc::invalid_aggregate_id);
  CHECK(aggregate_id::make(std::string(257, 'a')).error() == errc::invalid_aggregate_id);
  CHECK(aggregate_id::make(std::string("a\nb")).error() == errc::invalid_aggregate_id);
  CHECK(aggregate_id::make("__cafes.x").error() == errc::reserved_aggregate_id);
  CHECK(aggregate_id::make("_cafes").has_value());
}

TEST_CASE("records with missing or bad headers decode to typed errors", "[codec][bad-input]") {
  auto good = encode_event(make_event("acc-1", 5), "ns.account.events").value();
  good.partition = partition_id{3};
  good.off = offset{99};
  auto drop = [&](std::string_view k) {
    auto r = good;
    std::erase_if(r.headers, [&](const header& h) { return h.key == k; });
    return r;
  };
  auto with = [&](std::string_view k, std::string v) {
    auto r = good;
    for (auto& h : r.headers)
      if (h.key == k)
        h.value = std::move(v);
    return r;
  };
  for (auto k : {"ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "content-type",
                 "ce_cafesseq", "ce_cafesschema", "ce_cafesenvelope", "ce_cafesnode", "ce_cafesepoch"}) {
    INFO(k);
    auto r = decode_event(drop(k));
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::missing_header);
    CHECK(r.error().message.find("ns.account.events/3@99") != std::string::npos);
  }
  CHECK(decode_event(with("ce_cafesseq", "abc")).error() == errc::bad_header);
  CHECK(decode_event(with("ce_cafesseq", "-1")).error() == errc::bad_header);
  CHECK(decode_event(with("ce_cafesseq", "0")).error() == errc::bad_header);
  CHECK(decode_event(with("ce_cafesenvelope", "9")).error() == errc::unsupported_version);
  CHECK(decode_event(with("ce_specversion", "0.3")).error() == errc::bad_header);
  CHECK(decode_event(with("content-type", "application/json")).error() == errc::bad_header);
  CHECK(decode_event(with("ce_subject", "other")).error() == errc::bad_header);
  CHECK(decode_event(with("ce_time", "noon")).error() == errc::bad_header);
  auto tomb = good;
  tomb.value.reset();
  CHECK(decode_event(tomb).error() == errc::malformed_record);
  auto reserved = good;
  reserved.key = "__cafes.checkpoint";
  CHECK(decode_event(reserved).error() == errc::reserved_aggregate_id);
}

TEST_CASE("truncated or garbage msgpack values are malformed records", "[codec][bad-input]") {
  auto good = encode_event(make_event("acc-1", 5), "t").value();
  for (std::size_t n = 0; n < good.value->size(); ++n) {
    auto r = good;
    r.value = good.value->substr(0, n);
    auto d = decode_event(r);
    REQUIRE_FALSE(d);
    CHECK(d.error() == errc::malformed_record);
  }
  for (auto junk : {std::string{"\xc1"}, std::string{"\xdf\xff\xff\xff\xff"}, std::string{"\x81\xa1"},
                    std::string{"not msgpack at all"}, std::string{"\x80\x80"}}) {
    auto r = good;
    r.value = junk;
    auto d = decode_event(r);
    REQUIRE_FALSE(d);
    CHECK(d.error() == errc::malformed_record);
  }
}

TEST_CASE("snapshots round trip and bad snapshot records are typed errors", "[codec][snapshot]") {
  snapshot s{aggregate_id::make("acc-1").value(), seq_nr{9}, offset{1234}, "account", 3,
             cafes::test::make_event("acc-1", 1).payload};
  auto r = encode_snapshot(s, "ns.account.snapshots");
  REQUIRE(r);
  CHECK(r->key == "acc-1");
  auto d = decode_snapshot(*r);
  REQUIRE(d);
  CHECK(*d == s);
  auto other_key = *r;
  other_key.key = "acc-2";
  CHECK(decode_snapshot(other_key).error() == errc::malformed_record);
  auto garbage = *r;
  garbage.value = "\x92\x01";
  CHECK(decode_snapshot(garbage).error() == errc::malformed_record);
  auto bad = s;
  bad.seq = seq_nr{0};
  CHECK(encode_snapshot(bad, "t").error() == errc::invalid_argument);
  bad = s;
  bad.state = "\x01";
  CHECK(encode_snapshot(bad, "t").error() == errc::invalid_argument);
}

TEST_CASE("check_event computes exactly the size that encode_event writes", "[codec]") {
  for (std::uint64_t seq : {1ull, 9ull, 10ull, 12345678901ull}) {
    auto e = make_event("acc-" + std::to_string(seq), seq);
    for (bool with_defaults : {false, true}) {
      if (with_defaults) {
        e.event_id.clear();
        e.source.clear();
        e.command_id.clear();
        e.time_ms = 0;
      }
      auto r = encode_event(e, "ns.account.events");
      REQUIRE(r);
      std::size_t size = r->key.size() + r->value->size();
      for (auto& h : r->headers)
        size += h.key.size() + h.value.size();
      INFO("seq " << seq << " defaults " << with_defaults << " size " << size);
      CHECK(check_event(e, "ns.account.events", codec_limits{size}));
      CHECK(check_event(e, "ns.account.events", codec_limits{size - 1}).error() == errc::event_too_large);
    }
  }
}
