// The schema gate (the bank's schemas against the committed ones) and the archived journal
// replayed through today's registry and upcasters (docs/schema-evolution.md).
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "account.hpp"
#include "archive.hpp"
#include "cafes/actors/schema.hpp"
#include "cafes/runtime/node.hpp"
#include "saga.hpp"
#include "test_env.hpp"
#include "transfer.hpp"

using namespace cafes;
using namespace bank;

namespace {

const std::string data_dir = CAFES_TEST_DATA;

std::string slurp(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  INFO(path);
  REQUIRE(in);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <class A>
void check_committed() {
  const auto path = data_dir + "/schemas/" + std::string{A::name} + ".json";
  auto r = check_schemas<A>(slurp(path));
  REQUIRE(r);
  if (!r->compatible())
    FAIL("the events or state of '" << A::name << "' changed incompatibly with tests/data/schemas/" << A::name
                                    << ".json:\n" << r->to_string()
                                    << "bump the type's version and add an upcaster from the committed version "
                                       "(docs/schema-evolution.md)");
  if (!r->same())
    FAIL("the schemas of '" << A::name << "' changed compatibly:\n" << r->to_string()
                            << "regenerate the committed ones: bank_schemas export --dir tests/data/schemas "
                               "(docs/schema-evolution.md)");
}

/// A tiny aggregate whose event changes between "builds" (two types under one name).
struct widget_v1 {
  static constexpr std::string_view type_name = "widget.made";
  std::string name;
  std::int64_t size = 0;
  MSGPACK_DEFINE_MAP(name, size);
};
struct widget_v1_changed { // the same version, a field renamed: incompatible
  static constexpr std::string_view type_name = "widget.made";
  std::string name;
  std::int64_t width = 0;
  MSGPACK_DEFINE_MAP(name, width);
};
struct widget_v2 { // version 2: compatible once an upcaster from 1 exists
  static constexpr std::string_view type_name = "widget.made";
  static constexpr std::uint32_t version = 2;
  std::string name;
  std::int64_t width = 0;
  MSGPACK_DEFINE_MAP(name, width);
};
struct part {
  std::string sku;
  double weight = 0.5; // msgpack writes a whole double as an integer: 0.0 would show as "integer"
  MSGPACK_DEFINE_MAP(sku, weight);
};
struct widget_state {
  bool made = false;
  part main;
  std::vector<std::string> tags;
  std::optional<std::string> note;
  MSGPACK_DEFINE_MAP(made, main, tags, note);
};

template <class E>
std::string widget_schemas() {
  return render_schemas("widget", {type_sample{std::string{E::type_name}, "event", version_of<E>(),
                                               detail::pack_value(E{})},
                                   type_sample{"widget.state", "state", 1, detail::pack_value(widget_state{})}});
}

} // namespace

TEST_CASE("the bank's schemas match the committed ones (tests/data/schemas)", "[schema]") {
  check_committed<account>();
  check_committed<transfer>();
}

TEST_CASE("a schema export lists each type's fields by msgpack kind, nested structs as objects", "[schema]") {
  auto j = nlohmann::json::parse(widget_schemas<widget_v1>());
  CHECK(j["format"] == 1);
  CHECK(j["aggregate"] == "widget");
  REQUIRE(j["types"].size() == 2);
  CHECK(j["types"][0]["name"] == "widget.made"); // sorted by name
  CHECK(j["types"][0]["kind"] == "event");
  CHECK(j["types"][0]["version"] == 1);
  CHECK(j["types"][0]["fields"] == nlohmann::json{{"name", "string"}, {"size", "integer"}});
  CHECK(j["types"][1]["fields"] ==
        nlohmann::json::parse(R"({"made":"boolean","main":{"sku":"string","weight":"float"},"tags":"array",
                                  "note":"nil"})"));
  // The format's exact spelling, which other tools read.
  auto account_json = nlohmann::json::parse(export_schemas<account>());
  CHECK(account_json["types"][4] == nlohmann::json::parse(R"({"name":"account.opened","kind":"event","version":1,
                                                               "fields":{"owner":"string","overdraft_limit":"integer"}})"));
}

TEST_CASE("the gate: fields changed without a bump, a bump without an upcaster, a type removed", "[schema]") {
  type_registry none; // no upcasters
  const auto v1 = widget_schemas<widget_v1>();
  auto same = compare_schemas(v1, v1, none);
  REQUIRE(same);
  CHECK(same->same());

  auto renamed = compare_schemas(v1, widget_schemas<widget_v1_changed>(), none);
  REQUIRE(renamed);
  REQUIRE(renamed->incompatible.size() == 1);
  CHECK_THAT(renamed->incompatible[0], Catch::Contains("widget.made: its fields changed without a version bump") &&
                                         Catch::Contains("give it version 2 and an upcaster from version 1"));

  auto bumped = compare_schemas(v1, widget_schemas<widget_v2>(), none);
  REQUIRE(bumped);
  REQUIRE(bumped->incompatible.size() == 1);
  CHECK_THAT(bumped->incompatible[0], Catch::Contains("version 2 has no upcaster from version 1"));

  type_registry with;
  REQUIRE(with.add<widget_v2>("widget.made", 2));
  REQUIRE(with.add_upcaster("widget.made", 1, [](nlohmann::json& j) -> expected<void> {
    j["width"] = j["size"];
    j.erase("size");
    return {};
  }));
  auto upcast = compare_schemas(v1, widget_schemas<widget_v2>(), with);
  REQUIRE(upcast);
  CHECK(upcast->compatible());
  CHECK_FALSE(upcast->same()); // compatible, but the committed file is out of date
  REQUIRE(upcast->changed.size() == 1);
  CHECK_THAT(upcast->changed[0], Catch::Contains("version 1 -> 2"));

  // Committed at version 2 already, but its upcaster removed since: still incompatible.
  auto lost = compare_schemas(widget_schemas<widget_v2>(), widget_schemas<widget_v2>(), none);
  REQUIRE(lost);
  REQUIRE(lost->incompatible.size() == 1);
  CHECK_THAT(lost->incompatible[0], Catch::Contains("version 2 has no upcaster from version 1"));
  CHECK(compare_schemas(widget_schemas<widget_v2>(), widget_schemas<widget_v2>(), with)->same());

  auto back = compare_schemas(widget_schemas<widget_v2>(), v1, with);
  REQUIRE(back);
  CHECK_THAT(back->to_string(), Catch::Contains("its version went back from 2 to 1"));

  const auto only_state = render_schemas("widget", {type_sample{"widget.state", "state", 1,
                                                                detail::pack_value(widget_state{})}});
  auto removed = compare_schemas(v1, only_state, none);
  REQUIRE(removed);
  CHECK_THAT(removed->to_string(), Catch::Contains("widget.made: the type is gone"));
  auto added = compare_schemas(only_state, v1, none);
  REQUIRE(added);
  CHECK(added->compatible());
  CHECK_THAT(added->to_string(), Catch::Contains("widget.made: a new event type"));

  CHECK(compare_schemas("not json", v1, none).error() == errc::malformed_record);
  CHECK(compare_schemas(export_schemas<account>(), v1, none).error() == errc::invalid_argument);
}

namespace {

/// The archive's events in memory journals of its own partitions, as they were in Kafka.
struct archived {
  std::shared_ptr<journal> accounts, transfers;
  nlohmann::json expected;
};

archived load_archive(const std::string& name) {
  archived a;
  a.expected = nlohmann::json::parse(slurp(data_dir + "/archive/" + name + ".expected.json"));
  const auto parts = a.expected.at("partitions").get<std::int32_t>();
  a.accounts = make_memory_journal("bank.account.events", parts);
  a.transfers = make_memory_journal("bank.transfer.events", parts);
  std::ifstream in{data_dir + "/archive/" + name + ".jsonl", std::ios::binary};
  REQUIRE(in);
  auto records = cafes::test::read_archive(in);
  REQUIRE_FALSE(records.empty());
  for (auto& r : records) {
    auto e = decode_event(r);
    INFO(r.topic << "/" << r.partition.value() << "@" << r.off.value());
    REQUIRE(e);
    auto& j = r.topic == a.accounts->topic() ? a.accounts : a.transfers;
    REQUIRE(r.topic == j->topic());
    auto pos = j->append_sync({*e});
    REQUIRE(pos);
    CHECK(pos->at(0).partition == r.partition); // the same layout as in Kafka
    CHECK(pos->at(0).off == r.off);
  }
  return a;
}

template <class T>
nlohmann::json as_json(const T& v) {
  return nlohmann::json::from_msgpack(detail::pack_value(v));
}

/// Checks every field of `want` in `got` (fields added to the state since are not compared).
void check_fields(const nlohmann::json& got, const nlohmann::json& want, const std::string& what) {
  for (auto& [k, v] : want.items()) {
    INFO(what << "." << k);
    REQUIRE(got.contains(k));
    CHECK(got.at(k) == v);
  }
}

} // namespace

TEST_CASE("an archived journal of version 1 events replays through today's upcasters", "[schema][archive]") {
  auto a = load_archive("bank-v1");
  node_config cfg;
  cfg.storage = storage_kind::memory;
  cfg.ns = "bank";
  cfg.log_level = "warn";
  cfg.threads = 2;
  cfg.command_timeout = cafes::test::scaled(cfg.command_timeout);
  node n{cfg};
  const auto parts = a.expected.at("partitions").get<std::int32_t>();
  host_options ao;
  ao.partitions = parts;
  ao.journal = a.accounts;
  ao.snapshots = make_memory_snapshot_store(parts);
  host_options to = ao;
  to.journal = a.transfers;
  to.snapshots = make_memory_snapshot_store(parts);
  REQUIRE(host_bank(n, ao, to));
  REQUIRE(n.wait_ready(cafes::test::scaled(std::chrono::seconds{10})));
  CHECK(n.stats("account")->sequence_errors == 0);

  // Every aggregate folds to the state the version that wrote the archive folded it to.
  for (auto& [id, want] : a.expected.at("account").items()) {
    auto h = n.history<account>(id);
    REQUIRE(h);
    auto s = n.state_at<account>(id, h->back().seq.value());
    REQUIRE(s);
    check_fields(as_json(*s), want, id);
    if (want.at("open").get<bool>()) { // and the live aggregate recovered the same balance
      auto b = n.ask<account>(id, get_balance{});
      REQUIRE(b);
      CHECK(*b == want.at("balance").get<std::int64_t>());
    }
  }
  for (auto& [id, want] : a.expected.at("transfer").items()) {
    auto t = n.ask<transfer>(id, get_transfer{});
    REQUIRE(t);
    check_fields(as_json(*t), want, id);
  }
  // The values the scenario makes, spelled out.
  CHECK(n.ask<account>("acc-1", get_balance{}).value() == 65);
  CHECK(n.ask<account>("acc-2", get_balance{}).value() == 10);
  CHECK(n.ask<transfer>("t-1", get_transfer{}).value().status == transfer_status::completed);
  CHECK(n.ask<transfer>("t-2", get_transfer{}).value().status == transfer_status::rejected);
  CHECK(n.ask<transfer>("t-3", get_transfer{}).value().status == transfer_status::compensated);

  // The deposits were journaled at version 1 and are upcast: their reference survives, so a
  // repeat of an archived deposit is still recognized and moves no money.
  auto h = n.history<account>("acc-1");
  REQUIRE(h);
  const history_entry<account>* first_deposit = nullptr;
  for (auto& e : *h)
    if (e.get<deposited>() && !first_deposit)
      first_deposit = &e;
  REQUIRE(first_deposit);
  CHECK(first_deposit->schema_version == 1);
  CHECK(first_deposit->get<deposited>()->reference == "d-1");
  CHECK(n.ask<account>("acc-1", deposit{100, "d-1"}).value() == 65);
}
