// The bank node's HTTP interface on loopback, and the client commands that call it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "cafes/runtime/node.hpp"
#include "read_side.hpp"

namespace bank {

/// Bounds of the HTTP interface. One header line and the request line are at most 8 KiB each
/// (cpp-httplib's compiled limits: 400 and 414 beyond).
struct http_limits {
  std::size_t workers = 8;                 ///< threads that serve connections
  std::size_t queue = 64;                  ///< connections waiting for a worker; beyond: 503 overloaded
  std::size_t max_payload = 64 << 10;      ///< request body bytes; beyond: 413
  std::size_t max_headers = 64;            ///< header fields of a request; beyond: 431
  std::chrono::milliseconds read_timeout{5'000};
  std::chrono::milliseconds write_timeout{5'000};
  std::chrono::seconds keep_alive{1};      ///< an idle kept-alive connection holds a worker this long
  /// How long POST /transfers waits for the final status; later it answers 202 "pending" and
  /// the transfer manager finishes the transfer (GET /transfers?id= reads it).
  std::chrono::milliseconds transfer_wait{1'000};
};

struct server_options {
  std::uint16_t port = 0;
  std::string port_file;
  std::int32_t partitions = 12;
  std::uint64_t snapshot_every = 100;
  std::uint64_t max_replay = 10'000;
  std::int16_t replication = 1;
  std::int16_t min_insync_replicas = 0; ///< 0: the broker's default
  std::int32_t standby_replicas = 0;    ///< hot standbys per partition (needs routing)
  http_limits http{};
  /// The read side (state topic, enrichment, SQLite read model); on Kafka storage only.
  read_side_options read{};
  bool read_side = true; ///< false: run no projection
};

/// The bank's HTTP interface for a node that hosts the bank (host_bank), on 127.0.0.1.
class http_interface {
 public:
  http_interface(cafes::node& node, http_limits limits);
  ~http_interface();
  http_interface(const http_interface&) = delete;
  http_interface& operator=(const http_interface&) = delete;

  /// Serves the read side's status in /stats and its read model in /report (may be null).
  void serve(read_side* r);

  /// Binds 127.0.0.1:port (0: a free port) and returns the port.
  cafes::expected<int> bind(std::uint16_t port);
  /// Serves until stop() (from another thread or a signal handler).
  void listen();
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
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

/// Sends the request, prints the node's JSON answer, returns 0 (ok or pending), 1 (rejected) or 2.
int run_client(const client_request& r);

} // namespace bank
