// The node's Kafka client properties (TLS, SASL, any librdkafka property): the command line
// and config file options that set them, and the checks at start that refuse bad ones.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cafes/runtime/node.hpp"
#include "test_env.hpp"

using namespace cafes;
namespace fs = std::filesystem;

namespace {

expected<node_config> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "app");
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  return node_config::from_args(static_cast<int>(argv.size()), argv.data());
}

/// A file with `content`, removed at the end of the test.
struct temp_file {
  fs::path path;
  temp_file(const std::string& content, const std::string& ext = ".txt")
      : path{fs::temp_directory_path() / (test::unique_ns("props") + ext)} {
    std::ofstream{path} << content;
  }
  ~temp_file() { fs::remove(path); }
};

/// A node on its own embedded cluster (no broker to check) with `props`.
node_config embedded(std::map<std::string, std::string> props) {
  node_config c;
  c.ns = test::unique_ns("props");
  c.log_level = "off";
  c.threads = 2;
  c.embedded_brokers = 1;
  c.kafka_properties = std::move(props);
  return c;
}

bool has(const cafes::error& e, const std::string& s) { return e.to_string().find(s) != std::string::npos; }

} // namespace

TEST_CASE("the options --kafka-property, --security-protocol, --ssl-ca and --sasl-* fill kafka_properties", "[kafka-properties][options]") {
  temp_file ca{"not really a CA"};
  temp_file pw{"s3cret\n"};
  auto c = parse({"--kafka-property", "socket.keepalive.enable=true", "--kafka-property", "ssl.cipher.suites=a=b",
                  "--security-protocol", "SASL_SSL", "--ssl-ca", ca.path.string(), "--sasl-mechanism", "PLAIN",
                  "--sasl-username", "ann", "--sasl-password-file", pw.path.string()});
  REQUIRE(c);
  const std::map<std::string, std::string> want{{"socket.keepalive.enable", "true"},
                                                {"ssl.cipher.suites", "a=b"}, // split at the first '='
                                                {"security.protocol", "sasl_ssl"},
                                                {"ssl.ca.location", ca.path.string()},
                                                {"sasl.mechanism", "PLAIN"},
                                                {"sasl.username", "ann"}};
  std::string got;
  for (auto& [k, v] : c->kafka_properties)
    got += k + "=" + v + " ";
  INFO(got);
  CHECK(c->kafka_properties == want);
  CHECK(c->sasl_password_file == pw.path.string());
  CHECK(c->check_brokers);
  CHECK_FALSE(parse({"--no-broker-check"})->check_brokers);
}

TEST_CASE("the security options can come from the --config file", "[kafka-properties][options]") {
  temp_file toml{"security-protocol = \"ssl\"\n"
                 "kafka-property = [\"socket.keepalive.enable=true\", \"ssl.endpoint.identification.algorithm=none\"]\n",
                 ".toml"};
  auto c = parse({"--config", toml.path.string()});
  INFO((c ? std::string{} : c.error().to_string()));
  REQUIRE(c);
  CHECK(c->kafka_properties == std::map<std::string, std::string>{{"security.protocol", "ssl"},
                                                                  {"socket.keepalive.enable", "true"},
                                                                  {"ssl.endpoint.identification.algorithm", "none"}});
}

TEST_CASE("bad security options are refused on the command line, naming the option", "[kafka-properties][options][bad-input]") {
  SECTION("a property without '='") {
    auto c = parse({"--kafka-property", "security.protocol"});
    REQUIRE_FALSE(c);
    CHECK(c.error() == errc::invalid_argument);
    CHECK(has(c.error(), "--kafka-property"));
  }
  SECTION("a property without a key") {
    auto c = parse({"--kafka-property", "=ssl"});
    REQUIRE_FALSE(c);
    CHECK(has(c.error(), "KEY=VALUE"));
  }
  SECTION("one key given two values") {
    auto c = parse({"--kafka-property", "security.protocol=ssl", "--security-protocol", "sasl_ssl"});
    REQUIRE_FALSE(c);
    CHECK(c.error() == errc::invalid_argument);
    CHECK(has(c.error(), "security.protocol"));
    CHECK(has(c.error(), "twice"));
  }
  SECTION("an unknown security protocol") {
    auto c = parse({"--security-protocol", "tls"});
    REQUIRE_FALSE(c);
    CHECK(has(c.error(), "--security-protocol"));
  }
  SECTION("a CA file that does not exist") {
    auto c = parse({"--ssl-ca", "/nonexistent/ca.pem"});
    REQUIRE_FALSE(c);
    CHECK(has(c.error(), "--ssl-ca"));
  }
  SECTION("a password file that does not exist") {
    auto c = parse({"--sasl-password-file", "/nonexistent/password"});
    REQUIRE_FALSE(c);
    CHECK(has(c.error(), "--sasl-password-file"));
  }
}

TEST_CASE("the node refuses at start a Kafka property librdkafka does not know, naming it", "[kafka-properties][bad-input]") {
  SECTION("a misspelt key") {
    auto n = node::start(embedded({{"ssl.ca.locaton", "/tmp/ca.pem"}}));
    REQUIRE_FALSE(n);
    CHECK(n.error() == errc::invalid_argument);
    CHECK(has(n.error(), "ssl.ca.locaton"));
    CHECK(has(n.error(), "No such configuration property"));
  }
  SECTION("a bad value") {
    auto n = node::start(embedded({{"security.protocol", "tls"}}));
    REQUIRE_FALSE(n);
    CHECK(n.error() == errc::invalid_argument);
    CHECK(has(n.error(), "security.protocol"));
  }
  SECTION("a secret's value is never shown") {
    auto n = node::start(embedded({{"sasl.pasword", "hunter2"}}));
    REQUIRE_FALSE(n);
    CHECK(has(n.error(), "sasl.pasword"));
    CHECK_FALSE(has(n.error(), "hunter2"));
  }
  SECTION("a property cafes sets for each client") {
    for (auto key : {"group.id", "transactional.id", "enable.idempotence", "isolation.level", "bootstrap.servers"}) {
      auto n = node::start(embedded({{key, "x"}}));
      REQUIRE_FALSE(n);
      CHECK(n.error() == errc::invalid_argument);
      CHECK(has(n.error(), key));
    }
    auto n = node::start(embedded({{"bootstrap.servers", "x:1"}}));
    REQUIRE_FALSE(n);
    CHECK(has(n.error(), "--bootstrap"));
  }
}

TEST_CASE("the SASL password file is read at start", "[kafka-properties]") {
  SECTION("its first line is the password, given to every client") {
    temp_file pw{"s3cret\r\nsecond line\n"};
    auto c = embedded({{"sasl.username", "ann"}});
    c.sasl_password_file = pw.path.string();
    auto n = node::start(c);
    INFO((n ? std::string{} : n.error().to_string()));
    REQUIRE(n);
    auto kafka = (*n)->kafka();
    REQUIRE(kafka);
    CHECK(kafka->extra.at("sasl.password") == "s3cret");
    CHECK(kafka->extra.at("sasl.username") == "ann");
  }
  SECTION("a missing file") {
    auto c = embedded({});
    c.sasl_password_file = "/nonexistent/password";
    auto n = node::start(c);
    REQUIRE_FALSE(n);
    CHECK(n.error() == errc::invalid_argument);
    CHECK(has(n.error(), "/nonexistent/password"));
  }
  SECTION("an empty file") {
    temp_file pw{""};
    auto c = embedded({});
    c.sasl_password_file = pw.path.string();
    auto n = node::start(c);
    REQUIRE_FALSE(n);
    CHECK(n.error() == errc::invalid_argument);
  }
  SECTION("a password given twice") {
    temp_file pw{"s3cret\n"};
    auto c = embedded({{"sasl.password", "other"}});
    c.sasl_password_file = pw.path.string();
    auto n = node::start(c);
    REQUIRE_FALSE(n);
    CHECK(has(n.error(), "twice"));
    CHECK_FALSE(has(n.error(), "s3cret"));
    CHECK_FALSE(has(n.error(), "other"));
  }
}
