// cafes-inspect: its output for a journal written record by record on the embedded mock
// cluster, compared with golden files (tests/data/inspect/), its answers to bad input, and
// the generic msgpack-to-JSON conversion.
//
// The golden files are the tool's stdout. After a deliberate change of the output, rewrite
// them with CAFES_UPDATE_GOLDEN=1 (docs/testing.md) and review the diff.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include "cafes/persistence/dead_letter.hpp"
#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/kafka_config.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "kafka_common.hpp"
#include "msgpack_json.hpp"
#include "process.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace cafes::test;
using inspect::json;

namespace {

constexpr std::int64_t t0 = 1'795'674'327'128; // 2026-11-26T06:25:27.128Z

template <class F>
std::string pack(F fill) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> pk(b);
  fill(pk);
  return {b.data(), b.size()};
}

/// {"<field>": v}
std::string one_field(const std::string& field, std::int64_t v) {
  return pack([&](auto& pk) {
    pk.pack_map(1);
    pk.pack(field);
    pk.pack(v);
  });
}

/// A payload with every msgpack type: what the generic conversion shows of each.
std::string rich_payload() {
  return pack([](auto& pk) {
    pk.pack_map(9);
    pk.pack(std::string{"amount"});
    pk.pack(-5);
    pk.pack(std::string{"big"});
    pk.pack(std::uint64_t{18'446'744'073'709'551'615u});
    pk.pack(std::string{"note"});
    pk.pack(std::string{"h\xc3\xa9llo"});
    pk.pack(std::string{"rate"});
    pk.pack(1.5);
    pk.pack(std::string{"tags"});
    pk.pack_array(4);
    pk.pack(std::string{"x"});
    pk.pack(true);
    pk.pack_nil();
    pk.pack(7);
    pk.pack(std::string{"blob"});
    pk.pack_bin(3);
    pk.pack_bin_body("\x00\x01\xff", 3);
    pk.pack(std::string{"ext"});
    pk.pack_ext(2, 5);
    pk.pack_ext_body("\x01\x02", 2);
    pk.pack(std::string{"nested"});
    pk.pack_map(2);
    pk.pack(1); // an integer key
    pk.pack(std::string{"one"});
    pk.pack(std::string{"inner"});
    pk.pack_map(0);
    pk.pack(std::string{"raw"});
    pk.pack(std::string{"\xff\xfe"}); // a string that is not UTF-8
  });
}

/// A journal of type `account` in namespace `golden`, two partitions, written record by
/// record with fixed times, nodes and epochs: events of three aggregates, a barrier, records
/// that do not decode, snapshots, checkpoints, a tombstone and dead letters.
struct journal_fixture {
  static constexpr std::int32_t partitions = 2;
  std::shared_ptr<embedded_cluster> mc = embedded_cluster::start(1).value();
  topic_names names = topic_names::of("golden", "account");
  kafka_config cfg;
  std::unique_ptr<detail::async_producer> producer;

  journal_fixture() {
    cfg.embedded = mc;
    cfg.delivery_timeout = scaled(std::chrono::milliseconds{10'000});
    cfg.request_timeout = scaled(std::chrono::milliseconds{10'000});
    REQUIRE(mc->create_topic(names.events, partitions, 1, "delete"));
    REQUIRE(mc->create_topic(names.snapshots, partitions, 1, "compact"));
    REQUIRE(mc->create_topic(names.dlq, partitions, 1, "delete"));
    producer = detail::async_producer::make(cfg, {names.events, names.snapshots, names.dlq}).value();
    write();
  }

  /// Writes `recs` (their partitions set) and returns where they landed.
  std::vector<position> send(std::vector<record> recs) {
    auto done = std::make_shared<std::promise<append_result>>();
    auto f = done->get_future();
    producer->send(std::move(recs), [done](append_result r) { done->set_value(std::move(r)); });
    REQUIRE(f.wait_for(scaled(std::chrono::milliseconds{30'000})) == std::future_status::ready);
    auto res = f.get();
    INFO((res.err ? res.err->to_string() : std::string{}));
    REQUIRE_FALSE(res.err);
    return res.positions;
  }

  static std::int32_t part(std::string_view id) { return partition_for(id, partitions).value(); }

  record event(const std::string& id, std::uint64_t seq, const std::string& type, std::string payload,
               const std::string& node, std::uint64_t epoch, const std::string& command = {}) {
    event_envelope e;
    e.id = aggregate_id::make(id).value();
    e.seq = seq_nr{seq};
    e.type = type;
    e.time_ms = t0 + static_cast<std::int64_t>(seq) * 1000 + (id == "acc-1" ? 0 : 100);
    e.command_id = command;
    e.writer_node = node;
    e.writer_epoch = epoch;
    e.payload = std::move(payload);
    auto r = encode_event(e, names.events).value();
    r.partition = partition_id{part(id)};
    return r;
  }

  std::vector<position> events;   // where each record of the journal landed
  std::vector<record> journal;     // what was written (positions set)

  void write() {
    const auto acc1 = part("acc-1");
    std::vector<record> recs;
    recs.push_back(event("acc-1", 1, "opened", pack([](auto& pk) {
                           pk.pack_map(1);
                           pk.pack(std::string{"owner"});
                           pk.pack(std::string{"ann"});
                         }),
                         "node-a", 1, "c-1"));
    recs.push_back(event("acc-2", 1, "rich", rich_payload(), "node-a", 1));
    recs.push_back(event("acc-1", 2, "deposited", one_field("amount", 30), "node-a", 1, "c-2"));
    // A barrier, as a node writes one after an append of unknown outcome.
    record barrier;
    barrier.topic = names.events;
    barrier.partition = partition_id{acc1};
    barrier.key = std::string{barrier_key};
    barrier.headers = {{std::string{hdr::type}, "cafes.barrier"}};
    recs.push_back(barrier);
    recs.push_back(event("acc-1", 3, "deposited", one_field("amount", 30), "node-a", 1));
    // Garbage of acc-1: headers missing, and a value that is no msgpack.
    record garbage;
    garbage.topic = names.events;
    garbage.partition = partition_id{acc1};
    garbage.key = "acc-1";
    garbage.headers = {{std::string{hdr::specversion}, "1.0"}};
    garbage.value = std::string{"\xc1 not msgpack", 14};
    recs.push_back(garbage);
    recs.push_back(event("acc-1", 4, "withdrawn", one_field("amount", 20), "node-b", 2, "c-4"));
    // A key that is not UTF-8, with no headers at all.
    record binary_key;
    binary_key.topic = names.events;
    binary_key.partition = partition_id{0};
    binary_key.key = "\xff\xfe";
    binary_key.value = "zz";
    recs.push_back(binary_key);
    recs.push_back(event("acc-3", 1, "deposited", one_field("amount", 5), "node-b", 2));
    // Valid headers, but the value is an array, not a map.
    auto not_a_map = event("acc-2", 2, "rich", one_field("amount", 1), "node-a", 1);
    not_a_map.value = std::string{"\x93\x01\x02\x03", 4};
    recs.push_back(not_a_map);
    journal = recs;
    events = send(std::move(recs));
    for (std::size_t i = 0; i < journal.size(); ++i)
      journal[i].off = events[i].off;

    // Snapshots and checkpoints: two snapshots of acc-1 (the latest wins), one of acc-9 that a
    // tombstone deletes, one that does not decode, and two marks of each partition.
    auto snap = [&](const std::string& id, std::uint64_t seq, std::int64_t journal_offset, std::string state) {
      snapshot s;
      s.id = aggregate_id::make(id).value();
      s.seq = seq_nr{seq};
      s.journal_offset = offset{journal_offset};
      s.state_type = "balance";
      s.state = std::move(state);
      auto r = encode_snapshot(s, names.snapshots).value();
      r.partition = partition_id{part(id)};
      return r;
    };
    std::vector<record> snaps;
    snaps.push_back(snap("acc-1", 2, journal[2].off.value(), pack([](auto& pk) {
                           pk.pack_map(2);
                           pk.pack(std::string{"balance"});
                           pk.pack(30);
                           pk.pack(std::string{"owner"});
                           pk.pack(std::string{"ann"});
                         })));
    for (std::int32_t p = 0; p < partitions; ++p)
      snaps.push_back(encode_checkpoint(names.snapshots, partition_id{p}, {offset{p == acc1 ? 3 : 0}, 1}));
    snaps.push_back(snap("acc-1", 3, journal[4].off.value(), one_field("balance", 60)));
    snaps.push_back(snap("acc-9", 1, 0, one_field("balance", 1)));
    record tombstone;
    tombstone.topic = names.snapshots;
    tombstone.partition = partition_id{part("acc-9")};
    tombstone.key = "acc-9";
    snaps.push_back(tombstone);
    record bad_snapshot;
    bad_snapshot.topic = names.snapshots;
    bad_snapshot.partition = partition_id{part("acc-2")};
    bad_snapshot.key = "acc-2";
    bad_snapshot.headers = {{"content-type", "application/msgpack"}};
    bad_snapshot.value = "zz";
    snaps.push_back(bad_snapshot);
    for (std::int32_t p = 0; p < partitions; ++p)
      snaps.push_back(encode_checkpoint(names.snapshots, partition_id{p}, {offset{p == acc1 ? 5 : 1}, 2}));
    send(std::move(snaps));

    // Dead letters: an event a projection's handler threw on, the garbage that did not
    // decode, and a record of the dead-letter topic that is no letter.
    std::vector<record> letters;
    dead_letter threw;
    threw.original = journal[2];
    threw.error = "cafes:handler_failed";
    threw.message = "the balances projection threw: no account";
    threw.attempts = 3;
    threw.projection = "balances";
    threw.time_ms = t0 + 60'000;
    letters.push_back(encode_dead_letter(threw, names.dlq));
    dead_letter undecodable;
    undecodable.original = journal[5];
    undecodable.error = "cafes:missing_header";
    undecodable.message = "no header ce_id";
    undecodable.attempts = 0;
    undecodable.projection = "balances";
    undecodable.time_ms = t0 + 61'000;
    letters.push_back(encode_dead_letter(undecodable, names.dlq));
    record no_letter;
    no_letter.topic = names.dlq;
    no_letter.partition = partition_id{1};
    no_letter.key = "acc-7";
    no_letter.value = "x";
    letters.push_back(no_letter);
    send(std::move(letters));
  }

  /// Runs cafes-inspect `sub` on this journal with `args`.
  run_result inspect(const std::string& sub, std::vector<std::string> args, bool by_type = true) const {
    std::vector<std::string> argv{CAFES_INSPECT_BINARY, sub, "--bootstrap", mc->bootstrap(), "--timeout-ms",
                                  std::to_string(scaled(std::chrono::milliseconds{10'000}).count())};
    if (by_type)
      argv.insert(argv.end(), {"--namespace", "golden", "--type", "account"});
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, scaled(std::chrono::milliseconds{60'000}));
  }
};

/// Runs cafes-inspect with `args` alone (no cluster).
run_result inspect_alone(std::vector<std::string> args, std::chrono::milliseconds bound = std::chrono::milliseconds{60'000}) {
  args.insert(args.begin(), CAFES_INSPECT_BINARY);
  return run(args, scaled(bound));
}

/// Checks that `r` succeeded, that each line is one JSON object, and that its stdout equals
/// golden file `name` (or rewrites the file when CAFES_UPDATE_GOLDEN is set).
void check_golden(const std::string& name, const run_result& r) {
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  REQUIRE(r.exit_code == 0);
  std::istringstream lines{r.out};
  for (std::string l; std::getline(lines, l);)
    CHECK(json::parse(l).is_object());
  const auto path = std::string{CAFES_INSPECT_GOLDEN_DIR} + "/" + name + ".jsonl";
  if (const char* u = std::getenv("CAFES_UPDATE_GOLDEN"); u && *u && std::string{u} != "0") {
    std::ofstream{path, std::ios::binary} << r.out;
    WARN("rewrote " << path);
    return;
  }
  std::ifstream in{path, std::ios::binary};
  INFO("golden file " << path << " (CAFES_UPDATE_GOLDEN=1 writes it)");
  REQUIRE(in);
  std::stringstream want;
  want << in.rdbuf();
  CHECK(r.out == want.str());
}

/// Returns a loopback port where nothing listens.
int dead_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd); // bound, never listening, now closed: connections are refused
  return ntohs(a.sin_port);
}

} // namespace

// -- golden files -----------------------------------------------------------------------------

TEST_CASE("cafes-inspect events: a whole topic, garbage and barriers included", "[inspect]") {
  journal_fixture f;
  check_golden("events", f.inspect("events", {}));
}

TEST_CASE("cafes-inspect events --id: one aggregate, its partition alone", "[inspect]") {
  journal_fixture f;
  check_golden("events-id", f.inspect("events", {"--id", "acc-1"}));
}

TEST_CASE("cafes-inspect events: a partition range by --topic, barriers skipped", "[inspect]") {
  journal_fixture f;
  const auto p = std::to_string(journal_fixture::part("acc-1"));
  check_golden("events-range", f.inspect("events",
                                         {"--topic", f.names.events, "--partition", p, "--from", "2", "--to", "4",
                                          "--skip-barriers"},
                                         false));
}

TEST_CASE("cafes-inspect snapshots: the latest per key and per partition's checkpoint", "[inspect]") {
  journal_fixture f;
  check_golden("snapshots", f.inspect("snapshots", {}));
}

TEST_CASE("cafes-inspect snapshots --all: every record, tombstone included", "[inspect]") {
  journal_fixture f;
  check_golden("snapshots-all", f.inspect("snapshots", {"--all"}));
}

TEST_CASE("cafes-inspect state --at-seq: the nearest snapshot, then the events after it", "[inspect]") {
  journal_fixture f;
  check_golden("state-seq-4", f.inspect("state", {"--id", "acc-1", "--at-seq", "4"}));
  check_golden("state-seq-2", f.inspect("state", {"--id", "acc-1", "--at-seq", "2"}));
  check_golden("state-seq-1", f.inspect("state", {"--id", "acc-1", "--at-seq", "1"}));
}

TEST_CASE("cafes-inspect state --at-time: up to the last event at or before the time", "[inspect]") {
  journal_fixture f;
  // acc-1's events are at t0 + seq seconds: 06:25:30.128 is seq 3's time.
  check_golden("state-time", f.inspect("state", {"--id", "acc-1", "--at-time", "2026-11-26T06:25:30.128Z"}));
  check_golden("state-time-before", f.inspect("state", {"--id", "acc-1", "--at-time", "2026-11-26T06:00:00Z"}));
}

TEST_CASE("cafes-inspect partition: offsets, mark, lag and last writer per partition", "[inspect]") {
  journal_fixture f;
  check_golden("partition", f.inspect("partition", {}));
}

TEST_CASE("cafes-inspect --config: a node's config file names the broker and the namespace", "[inspect]") {
  journal_fixture f;
  const auto path = std::filesystem::temp_directory_path() / ("cafes-inspect-" + std::to_string(::getpid()) + ".toml");
  {
    // As a node reads it (node_config::add_options): settings the tool does not know are ignored.
    std::ofstream out{path};
    out << "bootstrap = \"" << f.mc->bootstrap() << "\"\nnamespace = \"golden\"\nnode-name = \"node-a\"\n"
        << "mode = \"idempotent\"\nthreads = 2\n";
  }
  auto r = run({CAFES_INSPECT_BINARY, "partition", "--config", path.string(), "--type", "account"},
               scaled(std::chrono::milliseconds{60'000}));
  std::filesystem::remove(path);
  check_golden("partition", r);
}

TEST_CASE("cafes-inspect dlq: each letter with its reasons and its original decoded", "[inspect]") {
  journal_fixture f;
  check_golden("dlq", f.inspect("dlq", {}));
}

// -- bad input --------------------------------------------------------------------------------

TEST_CASE("cafes-inspect: an unknown topic is exit code 3, naming the topic", "[inspect][bad-input]") {
  journal_fixture f;
  auto r = f.inspect("events", {"--topic", "golden.nothing.events"}, false);
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK(r.out.empty());
  CHECK(r.err.find("cafes:topic_missing") != std::string::npos);
  CHECK(r.err.find("golden.nothing.events") != std::string::npos);
  auto by_type = f.inspect("partition", {}, false);
  CHECK(by_type.exit_code == 2); // neither --topic nor --namespace and --type
  auto other = f.inspect("snapshots", {"--namespace", "golden", "--type", "nothing"}, false);
  CHECK(other.exit_code == 3);
  CHECK(other.err.find("golden.nothing.snapshots") != std::string::npos);
}

TEST_CASE("cafes-inspect state: an absurd seq or time is exit code 2 with a typed message", "[inspect][bad-input]") {
  journal_fixture f;
  for (auto seq : {"0", "-3"}) {
    auto r = f.inspect("state", {"--id", "acc-1", "--at-seq", seq});
    INFO(seq << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("cafes:invalid_argument: --at-seq " + std::string{seq} + ": sequence numbers start at 1") !=
          std::string::npos);
  }
  auto beyond = f.inspect("state", {"--id", "acc-1", "--at-seq", "99"});
  INFO(beyond.err);
  CHECK(beyond.exit_code == 2);
  CHECK(beyond.err.find("--at-seq 99 is beyond acc-1's last event, seq 4") != std::string::npos);
  auto none = f.inspect("state", {"--id", "acc-404", "--at-seq", "1"});
  CHECK(none.exit_code == 2);
  CHECK(none.err.find("acc-404 has no events in golden.account.events") != std::string::npos);
  auto time = f.inspect("state", {"--id", "acc-1", "--at-time", "yesterday"});
  CHECK(time.exit_code == 2);
  CHECK(time.err.find("'yesterday' is not an RFC 3339 time") != std::string::npos);
  auto both = f.inspect("state", {"--id", "acc-1", "--at-seq", "1", "--at-time", "2026-11-26T06:00:00Z"});
  CHECK(both.exit_code == 2);
  auto reserved = f.inspect("state", {"--id", "__cafes.checkpoint", "--at-seq", "1"});
  CHECK(reserved.exit_code == 2);
  CHECK(reserved.err.find("reserved_aggregate_id") != std::string::npos);
}

TEST_CASE("cafes-inspect: a bad partition or offset is exit code 2, naming what the topic has", "[inspect][bad-input]") {
  journal_fixture f;
  auto r = f.inspect("events", {"--partition", "7"});
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("partition 7 is not one of topic golden.account.events's 2 partitions (0 to 1)") !=
        std::string::npos);
  auto off = f.inspect("dlq", {"--partition", "0", "--from", "50"});
  CHECK(off.exit_code == 2);
  CHECK(off.err.find("--from 50 is outside golden.account.dlq/0") != std::string::npos);
  auto no_partition = f.inspect("events", {"--from", "1"});
  CHECK(no_partition.exit_code == 2);
}

TEST_CASE("cafes-inspect: an unreachable bootstrap fails within --timeout-ms with exit code 4", "[inspect][bad-input]") {
  const auto port = dead_port();
  const auto bound = scaled(std::chrono::milliseconds{1'000});
  auto r = inspect_alone({"events", "--bootstrap", "127.0.0.1:" + std::to_string(port), "--namespace", "golden",
                          "--type", "account", "--timeout-ms", std::to_string(bound.count())});
  INFO(r.err << " after " << r.took.count() << " ms");
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 4);
  CHECK(r.err.find("cafes:broker_unavailable: no broker answered at 127.0.0.1:" + std::to_string(port)) !=
        std::string::npos);
  // The bound plus the time to start and stop a client.
  CHECK(r.took < bound + scaled(std::chrono::milliseconds{5'000}));
}

TEST_CASE("cafes-inspect --help: examples and exit codes, exit code 0", "[inspect][bad-input]") {
  for (auto sub : {"events", "snapshots", "state", "partition", "dlq"}) {
    auto r = inspect_alone({sub, "--help"});
    INFO(sub << ": " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("Examples:") != std::string::npos);
    CHECK(r.out.find("cafes-inspect " + std::string{sub} + " --bootstrap") != std::string::npos);
    CHECK(r.out.find("Exit codes:") != std::string::npos);
  }
  auto none = inspect_alone({});
  CHECK(none.exit_code == 2);
  auto unknown = inspect_alone({"events", "--bogus"});
  CHECK(unknown.exit_code == 2);
}

// -- msgpack to JSON ----------------------------------------------------------------------------

TEST_CASE("msgpack to JSON: every msgpack type, generically", "[inspect]") {
  auto j = inspect::msgpack_to_json(rich_payload());
  REQUIRE(j);
  CHECK(j->dump() ==
        R"({"amount":-5,"big":18446744073709551615,"blob":{"base64":"AAH/"},"ext":{"base64":"AQI=","ext":5},)"
        R"("nested":{"1":"one","inner":{}},"note":")" "h\xc3\xa9llo" R"(","rate":1.5,"raw":{"str_base64":"//4="},)"
        R"("tags":["x",true,null,7]})");
}

TEST_CASE("msgpack to JSON: bad bytes are malformed_record, never a crash", "[inspect][bad-input]") {
  CHECK(inspect::msgpack_to_json("").error() == errc::malformed_record);
  CHECK(inspect::msgpack_to_json("\xc1").error() == errc::malformed_record);           // never used
  CHECK(inspect::msgpack_to_json("\x81\xa1" "a").error() == errc::malformed_record);  // cut short
  CHECK(inspect::msgpack_to_json("\x01\x02").error() == errc::malformed_record);      // trailing bytes
  CHECK(inspect::msgpack_to_json(std::string{"\xdd\xff\xff\xff\xff", 5}).error() == errc::malformed_record); // huge array
  std::string deep(200, '\x91'); // 200 nested arrays: beyond the depth limit
  deep += '\x01';
  CHECK(inspect::msgpack_to_json(deep).error() == errc::malformed_record);
  CHECK(inspect::base64("") == "");
  CHECK(inspect::base64("f") == "Zg==");
  CHECK(inspect::base64("fo") == "Zm8=");
  CHECK(inspect::base64("foobar") == "Zm9vYmFy");
  CHECK(inspect::valid_utf8("h\xc3\xa9llo"));
  CHECK_FALSE(inspect::valid_utf8("\xc0\x80"));       // overlong
  CHECK_FALSE(inspect::valid_utf8("\xed\xa0\x80"));   // a surrogate
  CHECK_FALSE(inspect::valid_utf8("\xe2\x82"));       // cut short
}
