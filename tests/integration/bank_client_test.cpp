// The bank's command line against a node on the real broker: the client's exit codes, the
// references it generates for deposits and withdrawals, and the node's replication options.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <catch2/catch.hpp>
#include <librdkafka/rdkafka.h>

#include "cafes/persistence/logger.hpp"
#include "process.hpp"
#include "test_env.hpp"

using namespace cafes::test;

namespace {

struct ran {
  int status = -1; ///< the exit code, or -1 if the command did not exit normally
  std::string out, err;
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in{p};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Runs the bank binary with `args` to completion and returns its exit code and output.
ran bank(const std::vector<std::string>& args) {
  static int n = 0;
  const auto base = std::filesystem::temp_directory_path() / (unique_ns("client") + "-" + std::to_string(++n));
  const auto out = base.string() + ".out", err = base.string() + ".err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv{CAFES_BANK_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = -1;
  ran r;
  if (posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ) == 0) {
    int st = 0;
    waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  posix_spawn_file_actions_destroy(&fa);
  r.out = slurp(out);
  r.err = slurp(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

/// A bank node on the real broker; `address` is host:port for the client commands.
struct bank_node {
  std::unique_ptr<child> proc;
  std::string address;

  explicit bank_node(const std::string& ns, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{CAFES_BANK_BINARY, "node", "--bootstrap", bootstrap(), "--namespace", ns,
                                  "--port", "0", "--partitions", "2", "--log-level", "warn"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc = std::make_unique<child>(argv, (std::filesystem::temp_directory_path() / (ns + ".log")).string());
    auto port = proc->wait_for(std::regex{"listening on 127\\.0\\.0\\.1:([0-9]+)"}, scaled(std::chrono::seconds{60}));
    REQUIRE(port);
    address = "127.0.0.1:" + *port;
  }
};

/// Returns the port of a loopback socket that was bound and closed: nothing listens there.
std::string closed_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return std::to_string(ntohs(a.sin_port));
}

/// Returns the value of topic config `name` of `topic` if it was set for the topic itself.
std::optional<std::string> topic_config(const std::string& topic, const std::string& name) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  cafes::route_kafka_logs(conf);
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap().c_str(), err, sizeof err);
  auto* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  REQUIRE(rk);
  auto* q = rd_kafka_queue_new(rk);
  auto* res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_DescribeConfigs(rk, &res, 1, nullptr, q);
  rd_kafka_ConfigResource_destroy(res);
  auto* ev = rd_kafka_queue_poll(q, static_cast<int>(scaled(std::chrono::seconds{30}).count()));
  std::optional<std::string> value;
  if (ev && !rd_kafka_event_error(ev)) {
    size_t n = 0, cn = 0;
    auto** rs = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
    auto** entries = n == 1 ? rd_kafka_ConfigResource_configs(rs[0], &cn) : nullptr;
    for (size_t i = 0; i < cn; ++i)
      if (rd_kafka_ConfigEntry_name(entries[i]) == name &&
          rd_kafka_ConfigEntry_source(entries[i]) == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG)
        value = rd_kafka_ConfigEntry_value(entries[i]);
  }
  if (ev)
    rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return value;
}

} // namespace

TEST_CASE("broker: bank client commands exit 0 on success, 1 on a rejection, 2 when the node is unreachable",
          "[bank][client][broker]") {
  bank_node n{unique_ns("exit")};
  auto opened = bank({"open", "--node", n.address, "--id", "acc-1", "--owner", "ann"});
  CHECK(opened.status == 0);
  auto ok = bank({"deposit", "--node", n.address, "--id", "acc-1", "--amount", "10", "--ref", "r1"});
  INFO(ok.out << ok.err);
  CHECK(ok.status == 0);
  CHECK(ok.out.find("\"balance\":10") != std::string::npos);

  auto refused = bank({"withdraw", "--node", n.address, "--id", "acc-1", "--amount", "11", "--ref", "r2"});
  INFO(refused.out << refused.err);
  CHECK(refused.status == 1);
  CHECK(refused.out.find("insufficient_funds") != std::string::npos);
  CHECK(bank({"balance", "--node", n.address, "--id", "nobody"}).status == 1);

  const auto nowhere = "127.0.0.1:" + closed_port();
  for (auto cmd : {"balance", "deposit", "transfer"}) {
    std::vector<std::string> args{cmd, "--node", nowhere, "--amount", "1", "--id", "acc-1"};
    if (std::string{cmd} == "balance")
      args = {cmd, "--node", nowhere, "--id", "acc-1"};
    if (std::string{cmd} == "transfer")
      args = {cmd, "--node", nowhere, "--from", "acc-1", "--to", "acc-2", "--amount", "1"};
    auto down = bank(args);
    INFO(cmd << ": " << down.out << down.err);
    CHECK(down.status == 2);
    CHECK(down.err.find("cannot reach the node") != std::string::npos);
  }
}

TEST_CASE("broker: a deposit or withdrawal without --ref gets a generated ref, so its retry applies once",
          "[bank][client][broker]") {
  bank_node n{unique_ns("ref")};
  REQUIRE(bank({"open", "--node", n.address, "--id", "acc-1", "--owner", "ann", "--overdraft", "100"}).status == 0);
  const std::regex ref_line{"--ref ([A-Za-z0-9_-]+)"};
  std::vector<std::string> refs;
  for (auto cmd : {"deposit", "withdraw"}) {
    auto first = bank({cmd, "--node", n.address, "--id", "acc-1", "--amount", "7"});
    INFO(cmd << ": " << first.out << first.err);
    REQUIRE(first.status == 0);
    std::smatch m;
    REQUIRE(std::regex_search(first.err, m, ref_line)); // the client names the ref it sent
    refs.push_back(m[1]);
    // The retry with that ref is answered with the same balance: applied once.
    auto retry = bank({cmd, "--node", n.address, "--id", "acc-1", "--amount", "7", "--ref", refs.back()});
    INFO(retry.out << retry.err);
    REQUIRE(retry.status == 0);
    CHECK(retry.out == first.out);
  }
  CHECK(refs[0] != refs[1]);
  auto balance = bank({"balance", "--node", n.address, "--id", "acc-1"});
  CHECK(balance.out.find("\"balance\":0") != std::string::npos);
}

TEST_CASE("broker: bank node --replication and --min-insync-replicas reach the topics, and bad values are typed errors",
          "[bank][node][broker]") {
  const auto ns = unique_ns("isr");
  {
    bank_node n{ns, {"--replication", "1", "--min-insync-replicas", "1"}};
    CHECK(topic_config(ns + ".account.events", "min.insync.replicas") == std::optional<std::string>{"1"});
    CHECK(topic_config(ns + ".transfer.snapshots", "min.insync.replicas") == std::optional<std::string>{"1"});
  }
  auto above = bank({"node", "--bootstrap", bootstrap(), "--namespace", unique_ns("isr"), "--replication", "1",
                     "--min-insync-replicas", "2", "--port", "0"});
  INFO(above.err);
  CHECK(above.status == 2);
  CHECK(above.err.find("invalid_argument") != std::string::npos);
  CHECK(above.err.find("min.insync.replicas") != std::string::npos);

  // One broker cannot hold two replicas: the broker's refusal, typed.
  auto too_many = bank({"node", "--bootstrap", bootstrap(), "--namespace", unique_ns("isr"), "--replication", "2",
                        "--port", "0"});
  INFO(too_many.err);
  CHECK(too_many.status == 2);
  CHECK(too_many.err.find("replication") != std::string::npos);

  for (auto bad : {"0", "-1", "x"}) {
    auto r = bank({"node", "--bootstrap", bootstrap(), "--replication", bad});
    INFO(bad << ": " << r.err);
    CHECK(r.status != 0);
    CHECK(r.err.find("--replication") != std::string::npos);
  }
}
