// cafes-inspect on the real broker: a transactional journal is read committed by default
// (the mock cluster does not filter aborted transactions, so this needs a broker), and a
// node's TLS and SASL settings are taken from the node's config file.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/topics.hpp"
#include "kafka_common.hpp"
#include "kafka_fixture.hpp"
#include "process.hpp"

using namespace cafes;
using namespace cafes::test;

namespace {

/// The (offset, seq) of each event line of cafes-inspect's output.
std::vector<std::pair<std::int64_t, std::uint64_t>> events_of(const std::string& out) {
  std::vector<std::pair<std::int64_t, std::uint64_t>> v;
  std::istringstream lines{out};
  for (std::string l; std::getline(lines, l);) {
    auto j = nlohmann::json::parse(l);
    if (j["kind"] == "event")
      v.emplace_back(j["offset"].get<std::int64_t>(), j["seq"].get<std::uint64_t>());
  }
  return v;
}

/// Fails the test case with the message of `e` if it is set, and frees it.
void require_ok(RdKafka::Error* e) {
  std::unique_ptr<RdKafka::Error> own{e};
  INFO((e ? e->str() : std::string{}));
  REQUIRE_FALSE(e);
}

} // namespace

TEST_CASE("cafes-inspect reads a transactional journal read_committed unless told otherwise", "[inspect][broker]") {
  auto cfg = broker_config(journal_mode::transactional);
  const auto ns = unique_ns("inspect");
  REQUIRE(ensure_topics(cfg, aggregate_topics(ns, "account", 1, 1)));
  const auto names = topic_names::of(ns, "account");

  // seq 1 committed, seq 2 aborted, then seq 2 again committed (a retried command).
  auto conf = detail::make_conf(cfg, {{"transactional.id", ns + ".writer"}, {"enable.idempotence", "true"}, {"acks", "all"}});
  REQUIRE(conf);
  std::string err;
  std::unique_ptr<RdKafka::Producer> p{RdKafka::Producer::create(conf->get(), err)};
  REQUIRE(p);
  const int ms = static_cast<int>(cfg.request_timeout.count());
  require_ok(p->init_transactions(ms));
  auto transaction = [&](std::uint64_t seq, std::int64_t amount, bool commit) {
    event_envelope e;
    e.id = aggregate_id::make("acc-1").value();
    e.seq = seq_nr{seq};
    e.type = "deposited";
    e.time_ms = 1'795'674'327'128 + static_cast<std::int64_t>(seq);
    e.writer_node = "node-a";
    e.writer_epoch = 1;
    msgpack::sbuffer b;
    msgpack::packer<msgpack::sbuffer> pk(b);
    pk.pack_map(1);
    pk.pack(std::string{"amount"});
    pk.pack(amount);
    e.payload.assign(b.data(), b.size());
    auto r = encode_event(e, names.events).value();
    r.partition = partition_id{0};
    require_ok(p->begin_transaction());
    REQUIRE(detail::produce(*p, r, nullptr) == RdKafka::ERR_NO_ERROR);
    REQUIRE(p->flush(ms) == RdKafka::ERR_NO_ERROR);
    require_ok(commit ? p->commit_transaction(ms) : p->abort_transaction(ms));
  };
  transaction(1, 10, true);
  transaction(2, 99, false);
  transaction(2, 20, true);

  auto inspect = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{CAFES_INSPECT_BINARY, "events",      "--bootstrap", cfg.bootstrap, "--namespace",
                                  ns,                   "--type",      "account",     "--timeout-ms",
                                  std::to_string(cfg.request_timeout.count())};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run(argv, scaled(std::chrono::milliseconds{60'000}));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return r.out;
  };
  // Each transaction ends with a marker that takes an offset: events at 0, 2 and 4.
  using ev = std::vector<std::pair<std::int64_t, std::uint64_t>>;
  CHECK(events_of(inspect({})) == ev{{0, 1}, {4, 2}});
  CHECK(events_of(inspect({"--read-uncommitted"})) == ev{{0, 1}, {2, 2}, {4, 2}});

  // The last writer is found behind the commit marker at the end.
  auto r = run({CAFES_INSPECT_BINARY, "partition", "--bootstrap", cfg.bootstrap, "--namespace", ns, "--type",
                "account", "--timeout-ms", std::to_string(cfg.request_timeout.count())},
               scaled(std::chrono::milliseconds{60'000}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["end"] == 6);
  CHECK(j["checkpoint"].is_null());
  CHECK(j["lag"] == 6);
  CHECK(j["last_writer"]["offset"] == 4);
  CHECK(j["last_writer"]["seq"] == 2);
  CHECK(j["last_writer"]["node"] == "node-a");
}

TEST_CASE("cafes-inspect takes a node's TLS and SASL settings from the node's config file", "[inspect][broker][security]") {
  const char* dir = std::getenv("CAFES_BROKER_DIR");
  REQUIRE(dir);
  auto line = [&](const std::string& name) {
    std::ifstream in{std::string{dir} + "/" + name};
    std::string s;
    std::getline(in, s);
    INFO(name << ": start the broker with broker.sh start --secure");
    REQUIRE_FALSE(s.empty());
    return s;
  };
  const auto cfg = broker_config();
  const auto ns = unique_ns("inspect-sasl");
  REQUIRE(ensure_topics(cfg, aggregate_topics(ns, "account", 1, 1)));
  const auto toml = std::filesystem::temp_directory_path() / (ns + ".toml");
  std::ofstream{toml} << "bootstrap = \"" << line("sasl-bootstrap") << "\"\n"
                      << "namespace = \"" << ns << "\"\n"
                      << "security-protocol = \"sasl_ssl\"\n"
                      << "ssl-ca = \"" << dir << "/tls/ca.pem\"\n"
                      << "sasl-mechanism = \"PLAIN\"\n"
                      << "sasl-username = \"" << line("sasl-user") << "\"\n"
                      << "sasl-password-file = \"" << dir << "/sasl-password\"\n";
  auto inspect = [&](std::vector<std::string> extra, std::chrono::milliseconds timeout) {
    std::vector<std::string> argv{CAFES_INSPECT_BINARY, "partition", "--config", toml.string(), "--type", "account",
                                  "--timeout-ms", std::to_string(scaled(timeout).count())};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv, scaled(std::chrono::milliseconds{60'000}));
  };
  auto ok = inspect({}, std::chrono::milliseconds{10'000});
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("\"end\":0") != std::string::npos);
  // -X overrides the file: a wrong password is refused, at once.
  const auto bound = std::chrono::milliseconds{10'000};
  auto refused = inspect({"-X", "sasl.password=wrong"}, bound);
  INFO(refused.out << refused.err);
  CHECK(refused.exit_code == 5);
  CHECK(refused.err.find("cafes:unauthorized") != std::string::npos);
  CHECK(refused.err.find("wrong") == std::string::npos);
  CHECK(refused.took < scaled(bound));
  std::filesystem::remove(toml);
}
