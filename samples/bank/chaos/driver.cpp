// bank_chaos_driver: the client side of scripts/chaos.sh. Opens the accounts, runs concurrent
// clients that send seeded deposits, withdrawals and transfers to a bank node over HTTP,
// retries every operation whose outcome is unknown with the same reference, and logs each
// operation with its final outcome (one JSON line per operation). Also reads the balances.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
using nlohmann::json;

struct options {
  std::string host = "127.0.0.1";
  std::vector<int> ports; // one per node; a client moves to the next after an unknown outcome
  std::uint64_t seed = 1;
  int clients = 8;
  int accounts = 16;
  double seconds = 60;  // of workload: no operation starts later
  double grace = 120;   // after the workload: unknown outcomes are retried until then
  std::string log = "ops.jsonl";
  std::string out;      // balances: where to write them
};

/// One HTTP answer: status 0 when the node did not answer at all.
struct answer {
  int status = 0;
  json body;
  /// A definite outcome: applied (200) or refused for good (422). Anything else is unknown.
  bool definite() const { return status == 200 || status == 422; }
};

answer call(httplib::Client& cli, const std::string& path, const httplib::Params& p, bool post) {
  auto res = post ? cli.Post(path + "?" + httplib::detail::params_to_query_str(p))
                  : cli.Get(path, p, httplib::Headers{});
  if (!res)
    return {};
  return {res->status, json::parse(res->body, nullptr, false)};
}

/// A client's connections to the nodes. It sends to one node and moves to the next after an
/// unknown outcome (that node may be dead, paused, or have lost the partition).
class nodes_client {
 public:
  nodes_client(const options& o, std::size_t first) : at_(first % o.ports.size()) {
    for (int port : o.ports) {
      auto c = std::make_unique<httplib::Client>(o.host, port);
      c->set_connection_timeout(std::chrono::seconds{1});
      // Longer than a transfer's few commands at the node's command timeout each.
      c->set_read_timeout(std::chrono::seconds{60});
      clients_.push_back(std::move(c));
    }
  }
  answer call(const std::string& path, const httplib::Params& p, bool post) {
    auto a = ::call(*clients_[at_], path, p, post);
    if (!a.definite())
      at_ = (at_ + 1) % clients_.size();
    return a;
  }

 private:
  std::vector<std::unique_ptr<httplib::Client>> clients_;
  std::size_t at_;
};

/// Sends one operation until its outcome is definite or `deadline` passes; returns the last
/// answer and how many attempts had an unknown outcome.
std::pair<answer, int> until_definite(nodes_client& cli, const std::string& path, const httplib::Params& p,
                                      bool post, clock_type::time_point deadline) {
  int unknown = 0;
  for (;;) {
    auto a = cli.call(path, p, post);
    if (a.definite() || clock_type::now() >= deadline)
      return {a, unknown + (a.definite() ? 0 : 1)};
    ++unknown;
    // Back off a little: the node may be restarting or waiting for the broker.
    std::this_thread::sleep_for(std::chrono::milliseconds{std::min(1000, 50 * unknown)});
  }
}

class op_log {
 public:
  explicit op_log(const std::string& path) : out_{path, std::ios::trunc} {}
  void write(const json& j) {
    std::lock_guard lock{mu_};
    out_ << j.dump() << '\n' << std::flush;
  }
  bool good() const { return out_.good(); }

 private:
  std::mutex mu_;
  std::ofstream out_;
};

std::string account(int i) { return "acc-" + std::to_string(i); }

/// Opens every account (overdraft 100, so some withdrawals are refused). Idempotent.
bool open_accounts(const options& o, op_log& log, clock_type::time_point deadline) {
  nodes_client cli{o, 0};
  for (int i = 0; i < o.accounts; ++i) {
    auto [a, unknown] = until_definite(cli, "/accounts/open", {{"id", account(i)}, {"owner", "chaos"}, {"overdraft", "100"}},
                                       true, deadline);
    // A retried open whose first attempt went through is refused as already_open: opened.
    bool opened = a.status == 200 || (a.status == 422 && a.body.value("code", "") == "already_open");
    log.write({{"op", "open"}, {"account", account(i)}, {"outcome", opened ? "acked" : "unknown"}, {"unknown_attempts", unknown}});
    if (!opened) {
      std::fprintf(stderr, "chaos driver: cannot open %s (HTTP %d %s)\n", account(i).c_str(), a.status,
                   a.body.dump().c_str());
      return false;
    }
  }
  return true;
}

/// One client: random operations until the workload ends. Seeded by (seed, client).
void run_client(const options& o, int c, op_log& log, clock_type::time_point end, clock_type::time_point deadline,
                std::atomic<std::uint64_t>& sent) {
  std::mt19937_64 rng{o.seed * 1'000'003u + static_cast<std::uint64_t>(c)};
  nodes_client cli{o, static_cast<std::size_t>(c)};
  auto pick = [&] { return static_cast<int>(rng() % static_cast<std::uint64_t>(o.accounts)); };
  for (int n = 0; clock_type::now() < end; ++n) {
    const auto kind = rng() % 100;
    const auto amount = static_cast<std::int64_t>(1 + rng() % 100);
    // A few operations go to an account that is never opened: always refused.
    const bool ghost = rng() % 50 == 0;
    std::string path;
    httplib::Params p;
    json entry;
    if (kind < 70) {
      const bool dep = kind < 35;
      const auto id = ghost ? "ghost-" + std::to_string(c) : account(pick());
      const auto ref = "c" + std::to_string(c) + "-" + std::to_string(n);
      const auto amt = dep ? amount : amount * 2; // withdrawals outpace deposits: some are refused
      path = dep ? "/accounts/deposit" : "/accounts/withdraw";
      p = {{"id", id}, {"amount", std::to_string(amt)}, {"ref", ref}};
      entry = {{"op", dep ? "deposit" : "withdraw"}, {"ref", ref}, {"account", id}, {"amount", amt}};
    } else {
      const int from = pick();
      const int to = (from + 1 + static_cast<int>(rng() % static_cast<std::uint64_t>(o.accounts - 1))) % o.accounts;
      const auto id = "t" + std::to_string(c) + "-" + std::to_string(n);
      const auto to_id = ghost ? "ghost-" + std::to_string(c) : account(to);
      path = "/transfers";
      p = {{"id", id}, {"from", account(from)}, {"to", to_id}, {"amount", std::to_string(amount)}};
      entry = {{"op", "transfer"}, {"ref", id}, {"from", account(from)}, {"to", to_id}, {"amount", amount}};
    }
    ++sent;
    auto [a, unknown] = until_definite(cli, path, p, true, deadline);
    entry["unknown_attempts"] = unknown;
    if (!a.definite()) {
      entry["outcome"] = "unknown";
      entry["last_status"] = a.status;
    } else if (a.status == 422) {
      entry["outcome"] = "rejected";
      entry["error"] = a.body.value("code", "");
    } else if (entry["op"] == "transfer") {
      // A transfer's answer is its final status; "rejected" moved no money.
      auto status = a.body.value("status", "");
      entry["outcome"] = status == "rejected" ? "rejected" : "acked";
      entry["status"] = status;
    } else {
      entry["outcome"] = "acked";
      entry["balance"] = a.body.value("balance", std::int64_t{0});
    }
    log.write(entry);
  }
}

int run(const options& o) {
  op_log log{o.log};
  if (!log.good()) {
    std::fprintf(stderr, "chaos driver: cannot write %s\n", o.log.c_str());
    return 2;
  }
  const auto start = clock_type::now();
  const auto end = start + std::chrono::milliseconds{static_cast<long>(o.seconds * 1000)};
  const auto deadline = end + std::chrono::milliseconds{static_cast<long>(o.grace * 1000)};
  if (!open_accounts(o, log, deadline))
    return 2;
  std::printf("accounts open\n");
  std::fflush(stdout);
  std::atomic<std::uint64_t> sent{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < o.clients; ++c)
    threads.emplace_back([&, c] { run_client(o, c, log, end, deadline, sent); });
  for (auto& t : threads)
    t.join();
  std::printf("%llu operations sent\n", static_cast<unsigned long long>(sent.load()));
  return 0;
}

/// Reads every account's balance (retrying until the node answers) into a JSON object.
int balances(const options& o) {
  nodes_client cli{o, 0};
  const auto deadline = clock_type::now() + std::chrono::milliseconds{static_cast<long>(o.grace * 1000)};
  json out = json::object();
  for (int i = 0; i < o.accounts; ++i) {
    auto [a, unknown] = until_definite(cli, "/accounts/balance", {{"id", account(i)}}, false, deadline);
    if (a.status != 200) {
      std::fprintf(stderr, "chaos driver: no balance for %s (HTTP %d %s)\n", account(i).c_str(), a.status,
                   a.body.dump().c_str());
      return 2;
    }
    out[account(i)] = a.body.value("balance", std::int64_t{0});
  }
  std::ofstream{o.out, std::ios::trunc} << out.dump() << '\n';
  return 0;
}

/// Waits until the read side of the nodes has caught up: for each projection, the nodes
/// together hold `partitions` partitions with no lag, twice in a row half a second apart
/// (nothing is written any more). Returns 0, or 2 when the grace passed.
int read_side(const options& o, int partitions) {
  const auto deadline = clock_type::now() + std::chrono::milliseconds{static_cast<long>(o.grace * 1000)};
  std::string last;
  int settled = 0;
  while (clock_type::now() < deadline) {
    std::map<std::string, std::pair<int, std::int64_t>> held; // projection -> (partitions, lag)
    bool answered = true;
    for (int port : o.ports) {
      httplib::Client cli{o.host, port};
      cli.set_read_timeout(std::chrono::seconds{10});
      auto a = call(cli, "/stats", {}, false);
      if (a.status != 200 || !a.body.contains("read_side")) {
        answered = false;
        break;
      }
      for (auto& [name, p] : a.body["read_side"].items()) {
        held[name].first += static_cast<int>(p["partitions"].size());
        held[name].second += p["lag"].get<std::int64_t>();
      }
    }
    bool done = answered && !held.empty();
    for (auto& [name, h] : held)
      done = done && h.first == partitions && h.second == 0;
    last = json(held).dump();
    settled = done ? settled + 1 : 0;
    if (settled == 2)
      return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds{500});
  }
  std::fprintf(stderr, "chaos driver: the read side did not catch up: %s\n", last.c_str());
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"bank_chaos_driver: seeded clients of a bank node that retry unknown outcomes"};
  app.require_subcommand(1);
  options o;
  auto common = [&](CLI::App* c) {
    c->add_option("--port", o.ports, "HTTP port on 127.0.0.1 of each node (repeat for several nodes)")
      ->required()
      ->check(CLI::Range(1, 65535));
    c->add_option("--accounts", o.accounts, "accounts acc-0 .. acc-(N-1)")->check(CLI::Range(2, 100'000));
    c->add_option("--grace", o.grace, "seconds to keep retrying unknown outcomes")->check(CLI::Range(0.0, 86'400.0));
  };
  auto* run_cmd = app.add_subcommand("run", "open the accounts, then run the workload");
  common(run_cmd);
  run_cmd->add_option("--seed", o.seed, "seed of the operations");
  run_cmd->add_option("--clients", o.clients, "concurrent clients")->check(CLI::Range(1, 256));
  run_cmd->add_option("--seconds", o.seconds, "seconds of workload")->check(CLI::Range(0.0, 86'400.0));
  run_cmd->add_option("--log", o.log, "operation log (JSON lines)");
  auto* bal_cmd = app.add_subcommand("balances", "write every account's balance as one JSON object");
  common(bal_cmd);
  bal_cmd->add_option("--out", o.out, "output file")->required();
  int partitions = 4;
  auto* read_cmd = app.add_subcommand("read-side", "wait until the nodes' projections have read everything");
  common(read_cmd);
  read_cmd->add_option("--partitions", partitions, "partitions of each projection's source")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  if (read_cmd->parsed())
    return read_side(o, partitions);
  return run_cmd->parsed() ? run(o) : balances(o);
}
