// The bank node's HTTP interface on loopback, and the client commands that call it.
#pragma once

#include <cstdint>
#include <string>

#include "cafes/runtime/node.hpp"

namespace bank {

struct server_options {
  std::uint16_t port = 0;
  std::string port_file;
  std::int32_t partitions = 12;
  std::uint64_t snapshot_every = 100;
  std::uint64_t max_replay = 10'000;
  std::int16_t replication = 1;
  std::int16_t min_insync_replicas = 0; ///< 0: the broker's default
};

/// Runs a node with the bank's aggregates and serves HTTP until SIGINT or SIGTERM.
int run_server(const cafes::node_config& cfg, const server_options& o);

/// One client command (open, deposit, withdraw, transfer, balance) against a node.
struct client_request {
  std::string command;
  std::string node; ///< host:port
  std::string id, owner, ref, from, to;
  std::int64_t amount = 0;
};

/// Sends the request, prints the node's JSON answer, returns 0 (ok), 1 (rejected) or 2.
int run_client(const client_request& r);

} // namespace bank
