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

  // The subcommands that run a node take the node's options. CLI11 2.1 reads a --config file
  // only for the top-level app, so each is also parsed as an app of its own (below).
  bank::demo_options demo;
  std::string demo_nodes;
  auto add_demo = [&](CLI::App& a) {
    node_cfg.add_options(a);
    a.add_option("--accounts", demo.accounts, "accounts to open")->check(CLI::Range(2, 1'000'000));
    a.add_option("--commands", demo.commands, "commands of the workload")->check(CLI::Range(1, 100'000'000));
    a.add_option("--workers", demo.workers, "concurrent clients")->check(CLI::Range(1, 1024));
    a.add_option("--partitions", demo.partitions, "partitions per aggregate type")->check(CLI::Range(1, 1000));
    a.add_option("--snapshot-every", demo.snapshot_every, "snapshot an aggregate every N events");
    a.add_option("--seed", demo.seed, "seed of the workload");
    a.add_flag("--json", demo.json, "end with one JSON line of the results");
    a.add_option("--nodes", demo_nodes,
                 "run the workload over HTTP across these running bank nodes (host:port,...) instead of "
                 "a node of its own");
  };
  bank::server_options server;
  auto add_node = [&](CLI::App& a) {
    node_cfg.add_options(a);
    a.add_option("--port", server.port, "HTTP port on 127.0.0.1 (0: pick a free one)");
    a.add_option("--port-file", server.port_file, "write the chosen port to this file");
    a.add_option("--partitions", server.partitions, "partitions per aggregate type")->check(CLI::Range(1, 1000));
    a.add_option("--snapshot-every", server.snapshot_every, "snapshot an aggregate every N events");
    a.add_option("--max-replay", server.max_replay, "bound on the events one partition replays to recover");
    a.add_option("--standby-replicas", server.standby_replicas,
                 "nodes that keep each partition warm for a takeover (needs --cluster or --routing)")
      ->check(CLI::Range(0, 16));
    a.add_option("--replication", server.replication, "replication factor of the topics it creates")
      ->check(CLI::Range(1, 32767));
    a.add_option("--min-insync-replicas", server.min_insync_replicas,
                 "min.insync.replicas of the topics it creates (0: the broker's default)")
      ->check(CLI::Range(0, 32767));
    a.add_flag("!--no-read-side", server.read_side, "run no projection (no state topic, no enrichment, no read model)");
    a.add_option("--read-model", server.read.db, "keep the SQLite read model (balances, transfers) in this file");
    a.add_flag("!--no-state-topic", server.read.state_topic,
               "do not keep the account state topic (nor the enriched transfers)");
  };
  const char* demo_what = "run a random workload on a node and verify the invariants";
  const char* node_what = "run a bank node that serves HTTP on loopback";
  add_demo(*app.add_subcommand("demo", demo_what));
  add_node(*app.add_subcommand("node", node_what));

  const std::string first = argc > 1 ? argv[1] : "";
  if (first == "demo" || first == "node") {
    CLI::App sub{first == "demo" ? demo_what : node_what, std::string{"bank "} + first};
    if (first == "demo")
      add_demo(sub);
    else
      add_node(sub);
    CLI11_PARSE(sub, argc - 1, argv + 1); // argv[1], the subcommand, stands for the program's name
    if (first == "demo") {
      if (!demo_nodes.empty())
        return bank::run_cluster_demo(demo_nodes, demo);
      auto node = cafes::node::start(node_cfg);
      if (!node) {
        std::fprintf(stderr, "bank: %s\n", node.error().to_string().c_str());
        return 2;
      }
      return bank::run_demo(**node, demo);
    }
    server.read.partitions = server.partitions;
    server.read.replication = server.replication;
    return bank::run_server(node_cfg, server);
  }

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
