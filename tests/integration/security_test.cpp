// TLS and SASL between a node and the broker: the bank served over the broker's SSL and
// SASL_SSL listeners (scripts/broker.sh start --secure), and refused handshakes failing the
// start with a typed error within the request timeout.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>

#include "cafes/runtime/node.hpp"
#include "process.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace cafes::test;
namespace fs = std::filesystem;

namespace {

/// The secure listeners of the test broker and their client settings (written by
/// scripts/broker.sh start --secure into the broker's directory).
struct secure_broker {
  fs::path dir;
  std::string ssl, sasl, user;

  secure_broker() {
    const char* d = std::getenv("CAFES_BROKER_DIR");
    if (!d || !*d)
      throw std::runtime_error("CAFES_BROKER_DIR is not set (scripts/test-all.sh sets it)");
    dir = d;
    ssl = line("ssl-bootstrap");
    sasl = line("sasl-bootstrap");
    user = line("sasl-user");
  }
  std::string line(const std::string& name) const {
    std::ifstream in{dir / name};
    std::string s;
    if (!std::getline(in, s) || s.empty())
      throw std::runtime_error("no " + (dir / name).string() + ": start the broker with broker.sh start --secure");
    return s;
  }
  std::string ca() const { return (dir / "tls" / "ca.pem").string(); }
  std::string other_ca() const { return (dir / "tls" / "other-ca.pem").string(); }
  std::string password_file() const { return (dir / "sasl-password").string(); }
};

/// A file holding `content`, removed at the end of the test.
struct temp_file {
  fs::path path;
  explicit temp_file(const std::string& content) : path{fs::temp_directory_path() / (unique_ns("secret") + ".txt")} {
    std::ofstream{path} << content << "\n";
  }
  ~temp_file() { fs::remove(path); }
};

/// A bank node process; `address` is host:port for the client commands.
struct bank_node {
  std::unique_ptr<child> proc;
  std::string address;

  explicit bank_node(const std::string& ns, const std::vector<std::string>& extra) {
    std::vector<std::string> argv{CAFES_BANK_BINARY, "node", "--namespace", ns, "--port", "0", "--partitions", "2",
                                  "--log-level", "warn"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const auto log = (fs::temp_directory_path() / (ns + ".log")).string();
    proc = std::make_unique<child>(argv, log);
    auto port = proc->wait_for(std::regex{"listening on 127\\.0\\.0\\.1:([0-9]+)"}, scaled(std::chrono::seconds{60}));
    if (!port) {
      std::ifstream in{log};
      std::string all{std::istreambuf_iterator<char>{in}, {}};
      FAIL("the bank node did not start: " << all);
    }
    address = "127.0.0.1:" + *port;
  }
};

run_result bank(std::vector<std::string> args) {
  args.insert(args.begin(), CAFES_BANK_BINARY);
  return run(args, scaled(std::chrono::seconds{60}));
}

/// Opens an account, deposits into it and reads its balance through the node at `address`.
void serve_commands(const std::string& address) {
  auto opened = bank({"open", "--node", address, "--id", "acc-1", "--owner", "ann"});
  INFO(opened.out << opened.err);
  REQUIRE(opened.exit_code == 0);
  auto deposit = bank({"deposit", "--node", address, "--id", "acc-1", "--amount", "25", "--ref", "d1"});
  INFO(deposit.out << deposit.err);
  REQUIRE(deposit.exit_code == 0);
  auto balance = bank({"balance", "--node", address, "--id", "acc-1"});
  INFO(balance.out << balance.err);
  REQUIRE(balance.exit_code == 0);
  CHECK(balance.out.find("\"balance\":25") != std::string::npos);
}

/// A node config on `bootstrap` that only starts (no aggregate is hosted).
node_config start_config(const std::string& bootstrap, std::map<std::string, std::string> props) {
  node_config c;
  c.bootstrap = bootstrap;
  c.ns = unique_ns("sec");
  c.log_level = "off";
  c.threads = 2;
  c.request_timeout = scaled(std::chrono::milliseconds{8'000});
  c.delivery_timeout = c.request_timeout;
  c.command_timeout = c.request_timeout * 2;
  c.kafka_properties = std::move(props);
  return c;
}

/// Starts a node that must be refused: returns the error and checks it came before the
/// request timeout (a refused handshake is reported at once, not waited out).
cafes::error refused_start(const node_config& c) {
  const auto t0 = std::chrono::steady_clock::now();
  auto n = node::start(c);
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(n);
  INFO(n.error().to_string());
  CHECK(took < c.request_timeout);
  return n.error();
}

bool has(const cafes::error& e, const std::string& s) { return e.to_string().find(s) != std::string::npos; }

} // namespace

TEST_CASE("broker: a bank node serves commands over TLS (the broker's SSL listener), read side included",
          "[security][bank][broker]") {
  secure_broker b;
  bank_node n{unique_ns("ssl"), {"--bootstrap", b.ssl, "--security-protocol", "ssl", "--ssl-ca", b.ca()}};
  serve_commands(n.address);
}

TEST_CASE("broker: a bank node in cluster mode serves commands over SASL_SSL, its password read from a file",
          "[security][bank][broker]") {
  secure_broker b;
  // Cluster mode: the group member, the directory and the transactional journal all connect
  // with the same settings.
  bank_node n{unique_ns("sasl"),
              {"--bootstrap", b.sasl, "--cluster", "--mode", "transactional", "--node-name", "sasl-1",
               "--security-protocol", "SASL_SSL", "--ssl-ca", b.ca(), "--sasl-mechanism", "PLAIN", "--sasl-username",
               b.user, "--sasl-password-file", b.password_file()}};
  serve_commands(n.address);
}

TEST_CASE("broker: refused TLS and SASL handshakes fail the start, typed and within the request timeout",
          "[security][broker][bad-input]") {
  secure_broker b;
  SECTION("a wrong SASL password") {
    auto e = refused_start(start_config(b.sasl, {{"security.protocol", "sasl_ssl"},
                                                 {"ssl.ca.location", b.ca()},
                                                 {"sasl.mechanism", "PLAIN"},
                                                 {"sasl.username", b.user},
                                                 {"sasl.password", "not-the-password"}}));
    CHECK(e == errc::unauthorized);
    CHECK(has(e, "Authentication failed"));
    CHECK_FALSE(has(e, "not-the-password"));
  }
  SECTION("an unknown SASL user") {
    auto e = refused_start(start_config(b.sasl, {{"security.protocol", "sasl_ssl"},
                                                 {"ssl.ca.location", b.ca()},
                                                 {"sasl.mechanism", "PLAIN"},
                                                 {"sasl.username", "mallory"},
                                                 {"sasl.password", "x"}}));
    CHECK(e == errc::unauthorized);
  }
  SECTION("a CA that did not sign the broker's certificate") {
    auto e = refused_start(start_config(b.ssl, {{"security.protocol", "ssl"}, {"ssl.ca.location", b.other_ca()}}));
    CHECK(e == errc::tls_failed);
    CHECK(has(e, "certificate verify failed"));
  }
  SECTION("TLS to the plaintext port") {
    auto e = refused_start(start_config(bootstrap(), {{"security.protocol", "ssl"}, {"ssl.ca.location", b.ca()}}));
    CHECK(e == errc::tls_failed);
    CHECK(has(e, "SSL handshake failed"));
  }
  SECTION("SASL_SSL to the SSL port (no SASL there)") {
    auto e = refused_start(start_config(b.ssl, {{"security.protocol", "sasl_ssl"},
                                                {"ssl.ca.location", b.ca()},
                                                {"sasl.mechanism", "PLAIN"},
                                                {"sasl.username", b.user},
                                                {"sasl.password", "x"}}));
    INFO(e.to_string());
    CHECK((e == errc::unauthorized || e == errc::broker_unavailable));
  }
}

TEST_CASE("broker: plaintext to a TLS port fails the start with broker_unavailable and librdkafka's hint",
          "[security][broker][bad-input]") {
  secure_broker b;
  auto c = start_config(b.ssl, {});
  c.request_timeout = scaled(std::chrono::milliseconds{1'500});
  const auto t0 = std::chrono::steady_clock::now();
  auto n = node::start(c);
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(n);
  INFO(n.error().to_string());
  CHECK(n.error() == errc::broker_unavailable);
  CHECK(has(n.error(), "security.protocol"));
  CHECK(took < c.request_timeout + scaled(std::chrono::milliseconds{2'000}));
}

TEST_CASE("broker: bank node exits 2 with the broker's refusal when its SASL password is wrong",
          "[security][bank][broker][bad-input]") {
  secure_broker b;
  temp_file wrong{"not-the-password"};
  auto r = bank({"node", "--bootstrap", b.sasl, "--namespace", unique_ns("sec"), "--port", "0",
                 "--request-timeout-ms", std::to_string(scaled(std::chrono::milliseconds{8'000}).count()),
                 "--command-timeout-ms", std::to_string(scaled(std::chrono::milliseconds{20'000}).count()),
                 "--security-protocol", "sasl_ssl", "--ssl-ca", b.ca(), "--sasl-mechanism", "PLAIN", "--sasl-username",
                 b.user, "--sasl-password-file", wrong.path.string()});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("unauthorized") != std::string::npos);
  CHECK(r.err.find("Authentication failed") != std::string::npos);
  CHECK(r.err.find("not-the-password") == std::string::npos);
  CHECK(r.took < scaled(std::chrono::milliseconds{8'000}));
}
