// TLS between nodes: nodes of one process on a shared embedded cluster, with certificates made
// at test time by the openssl program in a private temporary directory (docs/cluster.md, "TLS
// between nodes").
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/runtime/node.hpp"
#include "cafes/runtime/route_frame.hpp"
#include "process.hpp"
#include "test_env.hpp"

using namespace cafes;
using namespace bank;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t parts = 4;

/// Returns the path of `program` on PATH.
std::string on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    auto end = dirs.find(':', start);
    if (end == std::string::npos)
      end = dirs.size();
    auto candidate = fs::path{dirs.substr(start, end - start)} / program;
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate.string();
    start = end + 1;
  }
  FAIL("no " << program << " on PATH (scripts/deps.sh installs it)");
  return {};
}

/// A private directory of certificates, removed at the end: a CA with node-a's and node-b's
/// certificates (node-b's key encrypted), and a rogue CA with the rogue node's certificate.
struct certs {
  fs::path dir;
  std::string openssl = on_path("openssl");

  certs() {
    auto tmpl = (fs::temp_directory_path() / "cafes-tls-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr); // mode 0700: private to this user
    dir = tmpl;
    write("node.ext", "basicConstraints = critical, CA:FALSE\n"
                      "keyUsage = critical, digitalSignature, keyEncipherment\n"
                      "extendedKeyUsage = serverAuth, clientAuth\n");
    make_ca("ca");
    make_node("node-a", "ca");
    make_node("node-b", "ca");
    make_ca("rogue-ca");
    make_node("rogue", "rogue-ca");
    // node-b's key, encrypted with the passphrase in node-b.pass.
    write("node-b.pass", "correct horse\n");
    write("wrong.pass", "battery staple\n");
    write("empty.pass", "\n");
    sh({"pkey", "-in", path("node-b.key"), "-aes256", "-passout", "file:" + path("node-b.pass"), "-out",
        path("node-b.enc.key")});
    // The rogue trusts both CAs, so that it accepts the good nodes' certificates: only their
    // refusal of its own certificate stops it.
    write("both-cas.pem", read("ca.pem") + read("rogue-ca.pem"));
    write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
  }
  ~certs() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  certs(const certs&) = delete;
  certs& operator=(const certs&) = delete;

  std::string path(const std::string& name) const { return (dir / name).string(); }

  void write(const std::string& name, const std::string& text) const {
    std::ofstream out{dir / name, std::ios::binary};
    out << text;
    REQUIRE(out.good());
  }

  std::string read(const std::string& name) const {
    std::ifstream in{dir / name, std::ios::binary};
    return {std::istreambuf_iterator<char>{in}, {}};
  }

  void sh(std::vector<std::string> args) const {
    args.insert(args.begin(), openssl);
    auto r = cafes::test::run(args, cafes::test::scaled(20s));
    INFO("openssl " << args[1] << ": " << r.err);
    REQUIRE(r.exit_code == 0);
  }

  void make_ca(const std::string& name) const {
    sh({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
        path(name + ".key"), "-out", path(name + ".pem"), "-days", "2", "-subj", "/CN=" + name});
  }

  void make_node(const std::string& name, const std::string& ca) const {
    sh({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path(name + ".key"),
        "-out", path(name + ".csr"), "-subj", "/CN=" + name});
    sh({"x509", "-req", "-in", path(name + ".csr"), "-CA", path(ca + ".pem"), "-CAkey", path(ca + ".key"),
        "-CAcreateserial", "-days", "1", "-extfile", path("node.ext"), "-out", path(name + ".pem")});
  }
};

/// Nodes of one namespace on one embedded cluster, each with its own TLS settings.
struct tls_cluster {
  certs files;
  std::shared_ptr<embedded_cluster> mc = embedded_cluster::start(1).value();
  std::string ns = cafes::test::unique_ns("tls");

  /// A node named `name`: with node-a's certificate if `cert` is "node-a", and so on; "" is a
  /// node without TLS.
  node_config config(const std::string& name, const std::string& cert) const {
    node_config c;
    c.ns = ns;
    c.node_name = name;
    c.routing = true;
    c.embedded = mc;
    c.log_level = "warn";
    c.threads = 2;
    // A refused connection is retried until 90% of the command timeout: keep it short.
    c.delivery_timeout = cafes::test::scaled(1s);
    c.command_timeout = cafes::test::scaled(2s);
    if (cert.empty())
      return c;
    c.tls_cert = files.path(cert + ".pem");
    c.tls_key = files.path(cert + ".key");
    c.tls_ca = files.path("ca.pem");
    if (cert == "node-b") { // the encrypted key
      c.tls_key = files.path("node-b.enc.key");
      c.tls_key_passphrase_file = files.path("node-b.pass");
    }
    if (cert == "rogue")
      c.tls_ca = files.path("both-cas.pem");
    return c;
  }

  /// Starts a node that hosts account and owns `owned`.
  std::unique_ptr<node> start(const std::string& name, const std::string& cert, std::vector<std::int32_t> owned) {
    auto n = node::start(config(name, cert));
    REQUIRE(n);
    host_options o;
    o.partitions = parts;
    o.assign_all = false;
    REQUIRE((*n)->host<account>(o));
    for (auto p : owned)
      REQUIRE((*n)->assign("account", p));
    REQUIRE((*n)->wait_ready(cafes::test::scaled(10s)));
    return std::move(*n);
  }
};

/// Returns an account id of partition p.
std::string id_in(std::int32_t p) {
  for (int i = 0;; ++i) {
    auto id = "acc-" + std::to_string(i);
    if (partition_for(id, parts).value() == p)
      return id;
  }
}

/// Expects `r` to be unreachable, with a message that says TLS may be why.
template <class T>
void check_refused(const expected<T>& r) {
  REQUIRE(!r);
  INFO(r.error().to_string());
  CHECK(r.error() == actor_errc::unreachable);
  CHECK(r.error().message.find("TLS") != std::string::npos);
}

} // namespace

TEST_CASE("TLS between nodes: all three files or none, each file loads, the certificate chains to the CA",
          "[routing][tls]") {
  certs f;
  auto cfg = [&] {
    node_config c;
    c.routing = true;
    c.log_level = "warn";
    c.tls_cert = f.path("node-a.pem");
    c.tls_key = f.path("node-a.key");
    c.tls_ca = f.path("ca.pem");
    return c;
  };
  auto refused = [](const node_config& c, std::vector<std::string> words) {
    auto n = node::start(c);
    REQUIRE(!n);
    INFO(n.error().to_string());
    CHECK(n.error() == errc::invalid_argument);
    for (auto& w : words)
      CHECK(n.error().message.find(w) != std::string::npos);
  };
  auto c = cfg();
  c.tls_key.clear();
  c.tls_ca.clear();
  refused(c, {"--tls-key and --tls-ca are missing"});
  c = cfg();
  c.tls_cert.clear();
  refused(c, {"--tls-cert is missing"});
  c = node_config{};
  c.routing = true;
  c.tls_key_passphrase_file = f.path("node-b.pass");
  refused(c, {"--tls-key-passphrase-file", "is not"});
  c = cfg();
  c.routing = false;
  refused(c, {"needs routing"});
  c = cfg();
  c.tls_ca = f.path("no-such.pem");
  refused(c, {"--tls-ca", "no-such.pem", "cannot be read"});
  c = cfg();
  c.tls_cert = f.path("garbage.pem");
  refused(c, {"--tls-cert", "garbage.pem", "not a usable PEM certificate"});
  c = cfg();
  c.tls_cert = f.path("node-a.csr"); // PEM, but a request, not a certificate
  refused(c, {"--tls-cert", "not a usable PEM certificate"});
  c = cfg();
  c.tls_key = f.path("node-b.key");
  refused(c, {"--tls-key", "does not match the certificate"});
  c = cfg();
  c.tls_key = f.path("node-a.pem");
  refused(c, {"--tls-key", "not a usable PEM private key"});
  c = cfg();
  c.tls_ca = f.path("garbage.pem");
  refused(c, {"--tls-ca", "no usable PEM CA certificate"});
  // An encrypted key: without its passphrase, with a wrong one, with an empty file.
  c = cfg();
  c.tls_cert = f.path("node-b.pem");
  c.tls_key = f.path("node-b.enc.key");
  refused(c, {"--tls-key", "needs --tls-key-passphrase-file"});
  c.tls_key_passphrase_file = f.path("wrong.pass");
  refused(c, {"--tls-key", "passphrase is wrong"});
  c.tls_key_passphrase_file = f.path("empty.pass");
  refused(c, {"--tls-key-passphrase-file", "holds no passphrase"});
  c.tls_key_passphrase_file = f.path("no-such.pass");
  refused(c, {"--tls-key-passphrase-file", "cannot be read"});
  // A certificate of another CA than --tls-ca would be refused by every other node.
  c = cfg();
  c.tls_cert = f.path("rogue.pem");
  c.tls_key = f.path("rogue.key");
  refused(c, {"--tls-cert", "does not verify against the CA", "unable to get local issuer certificate"});
  // The command line takes the four options.
  std::vector<std::string> args{"node",      "--routing",         "--tls-cert",
                                "a.pem",     "--tls-key",         "a.key",
                                "--tls-ca",  "ca.pem",            "--tls-key-passphrase-file",
                                "a.pass"};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  auto parsed = node_config::from_args(static_cast<int>(argv.size()), argv.data()).value();
  CHECK(parsed.tls_cert == "a.pem");
  CHECK(parsed.tls_key == "a.key");
  CHECK(parsed.tls_ca == "ca.pem");
  CHECK(parsed.tls_key_passphrase_file == "a.pass");
}

TEST_CASE("two nodes with certificates of one CA route commands to each other over TLS, and a plain client is refused",
          "[routing][tls]") {
  tls_cluster c;
  auto a = c.start("node-a", "node-a", {0, 1});
  auto b = c.start("node-b", "node-b", {2}); // its key is encrypted
  const auto id = id_in(2);
  CHECK(a->ask<account>(id, bank::open{"ann", 0}).value() == 0);
  CHECK(a->ask<account>(id, deposit{50, "d1"}).value() == 50);
  CHECK(b->ask<account>(id, get_balance{}).value() == 50);
  CHECK(b->ask<account>(id_in(0), bank::open{"bob", 0}).value() == 0); // and the way back
  CHECK(a->routing_counters().forwarded == 2);
  CHECK(b->routing_counters().received == 2);
  CHECK(a->routing_counters().received == 1);
  // A plain BASP connection to b's gateway (from a's actor system, without TLS) fails.
  auto plain = a->system().middleman().remote_actor("127.0.0.1", b->gateway_port());
  CHECK(!plain);
  CHECK(b->routing_counters().received == 2);
}

TEST_CASE("a node whose certificate another CA signed can neither route to the TLS nodes nor be routed to",
          "[routing][tls]") {
  tls_cluster c;
  auto a = c.start("node-a", "node-a", {0, 1});
  auto b = c.start("node-b", "node-b", {2});
  // The rogue trusts the nodes' CA, and claims partition 3 in the directory.
  auto rogue = c.start("rogue", "rogue", {3});
  auto from_rogue = rogue->ask_async<account>(id_in(2), bank::open{"eve", 0});
  auto to_rogue = a->ask_async<account>(id_in(3), bank::open{"ann", 0});
  check_refused(from_rogue.get());
  check_refused(to_rogue.get());
  CHECK(b->routing_counters().received == 0); // no frame of the rogue got in
  CHECK(rogue->routing_counters().received == 0);
  CHECK(b->stats("account")->events_persisted.load() == 0);
  // The TLS nodes route on between themselves.
  CHECK(a->ask<account>(id_in(2), bank::open{"ann", 0}).value() == 0);
  CHECK(b->routing_counters().received == 1);
}

TEST_CASE("a node without TLS and a TLS node cannot route to each other", "[routing][tls]") {
  tls_cluster c;
  auto a = c.start("node-a", "node-a", {0, 1});
  auto plain = c.start("plain", "", {2});
  auto from_tls = a->ask_async<account>(id_in(2), bank::open{"ann", 0});
  auto from_plain = plain->ask_async<account>(id_in(0), bank::open{"bob", 0});
  check_refused(from_tls.get());
  auto r = from_plain.get();
  REQUIRE(!r);
  CHECK(r.error() == actor_errc::unreachable); // the plain node does not know why
  CHECK(a->routing_counters().received == 0);
  CHECK(plain->routing_counters().received == 0);
  CHECK(a->stats("account")->events_persisted.load() == 0);
  CHECK(plain->stats("account")->events_persisted.load() == 0);
}

