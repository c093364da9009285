// bank: the sample bank's command line: demo, node, and client commands.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include <CLI/CLI.hpp>

#include "demo.hpp"
#include "server.hpp"

namespace {

/// Returns a reference no other command uses: the clock and 64 random bits.
std::string unique_ref(const std::string& command) {
  std::random_device rd;
  const auto bits = (std::uint64_t{rd()} << 32) | rd();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(bits));
  return command.substr(0, 1) + "-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) +
         "-" + hex;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"bank: accounts and transfers on cafes"};
  app.require_subcommand(1);
  cafes::node_config node_cfg;

  bank::demo_options demo;
  auto* demo_cmd = app.add_subcommand("demo", "run a random workload on a node and verify the invariants");
  node_cfg.add_options(*demo_cmd);
  demo_cmd->add_option("--accounts", demo.accounts, "accounts to open")->check(CLI::Range(2, 1'000'000));
  demo_cmd->add_option("--commands", demo.commands, "commands of the workload")->check(CLI::Range(1, 100'000'000));
  demo_cmd->add_option("--workers", demo.workers, "concurrent clients")->check(CLI::Range(1, 1024));
  demo_cmd->add_option("--partitions", demo.partitions, "partitions per aggregate type")->check(CLI::Range(1, 1000));
  demo_cmd->add_option("--snapshot-every", demo.snapshot_every, "snapshot an aggregate every N events");
  demo_cmd->add_option("--seed", demo.seed, "seed of the workload");
  demo_cmd->add_flag("--json", demo.json, "end with one JSON line of the results");
  std::string demo_nodes;
  demo_cmd->add_option("--nodes", demo_nodes,
                       "run the workload over HTTP across these running bank nodes (host:port,...) instead of "
                       "a node of its own");

  bank::server_options server;
  auto* node_cmd = app.add_subcommand("node", "run a bank node that serves HTTP on loopback");
  node_cfg.add_options(*node_cmd);
  node_cmd->add_option("--port", server.port, "HTTP port on 127.0.0.1 (0: pick a free one)");
  node_cmd->add_option("--port-file", server.port_file, "write the chosen port to this file");
  node_cmd->add_option("--partitions", server.partitions, "partitions per aggregate type")->check(CLI::Range(1, 1000));
  node_cmd->add_option("--snapshot-every", server.snapshot_every, "snapshot an aggregate every N events");
  node_cmd->add_option("--max-replay", server.max_replay, "bound on the events one partition replays to recover");
  node_cmd->add_option("--standby-replicas", server.standby_replicas,
                       "nodes that keep each partition warm for a takeover (needs --cluster or --routing)")
    ->check(CLI::Range(0, 16));
  node_cmd->add_option("--replication", server.replication, "replication factor of the topics it creates")
    ->check(CLI::Range(1, 32767));
  node_cmd->add_option("--min-insync-replicas", server.min_insync_replicas,
                       "min.insync.replicas of the topics it creates (0: the broker's default)")
    ->check(CLI::Range(0, 32767));

  node_cmd->add_flag("!--no-read-side", server.read_side,
                     "run no projection (no state topic, no enrichment, no read model)");
  node_cmd->add_option("--read-model", server.read.db, "keep the SQLite read model (balances, transfers) in this file");
  node_cmd->add_flag("!--no-state-topic", server.read.state_topic,
                     "do not keep the account state topic (nor the enriched transfers)");

  std::string report_db;
  int report_recent = 20;
  bool report_json = false;
  auto* report_cmd = app.add_subcommand("report", "print balances and recent transfers from a SQLite read model");
  report_cmd->add_option("--db", report_db, "the read model's file (bank node --read-model FILE)")->required();
  report_cmd->add_option("--recent", report_recent, "how many recent transfers")->check(CLI::Range(1, 1000));
  report_cmd->add_flag("--json", report_json, "print one JSON object");

  bank::client_request req;
  auto add_client = [&](const char* name, const char* what) {
    auto* c = app.add_subcommand(name, what);
    c->add_option("--node", req.node, "host:port of the bank node")->required();
    return c;
  };
  auto* open_cmd = add_client("open", "open an account");
  open_cmd->add_option("--id", req.id, "account id")->required();
  open_cmd->add_option("--owner", req.owner, "owner")->required();
  open_cmd->add_option("--overdraft", req.amount, "overdraft limit");
  for (auto* name : {"deposit", "withdraw"}) {
    auto* c = add_client(name, name[0] == 'd' ? "deposit into an account" : "withdraw from an account");
    c->add_option("--id", req.id, "account id")->required();
    c->add_option("--amount", req.amount, "amount")->required();
    c->add_option("--ref", req.ref, "operation reference (a retry with the same ref is applied once; default: generated and printed)");
  }
  auto* transfer_cmd = add_client("transfer", "move money between accounts (a saga)");
  transfer_cmd->add_option("--from", req.from, "debited account")->required();
  transfer_cmd->add_option("--to", req.to, "credited account")->required();
  transfer_cmd->add_option("--amount", req.amount, "amount")->required();
  transfer_cmd->add_option("--id", req.id, "transfer id (default: generated)");
  add_client("redrive", "re-drive the node's dead letters through its projections (once their cause is fixed)");
  add_client("rebuild", "rebuild the node's read side from the first event (its share of the partitions)");
  auto* balance_cmd = add_client("balance", "print an account's balance");
  balance_cmd->add_option("--id", req.id, "account id")->required();

  CLI11_PARSE(app, argc, argv);

  if (demo_cmd->parsed()) {
    if (!demo_nodes.empty())
      return bank::run_cluster_demo(demo_nodes, demo);
    auto node = cafes::node::start(node_cfg);
    if (!node) {
      std::fprintf(stderr, "bank: %s\n", node.error().to_string().c_str());
      return 2;
    }
    return bank::run_demo(**node, demo);
  }
  if (node_cmd->parsed()) {
    server.read.partitions = server.partitions;
    server.read.replication = server.replication;
    return bank::run_server(node_cfg, server);
  }
  if (report_cmd->parsed())
    return bank::print_report(report_db, report_recent, report_json);
  for (auto* c : app.get_subcommands()) {
    req.command = c->get_name();
    // Without a ref a retry would apply twice. The generated one is printed, so that a
    // command whose outcome is unknown (exit 2) can be retried safely with it.
    if ((req.command == "deposit" || req.command == "withdraw") && req.ref.empty()) {
      req.ref = unique_ref(req.command);
      std::fprintf(stderr, "bank: %s ref %s (retry with --ref %s)\n", req.command.c_str(), req.ref.c_str(),
                   req.ref.c_str());
    }
    return bank::run_client(req);
  }
  return 2;
}
