// The bank's read side: the account-balances state topic, transfers enriched with the
// accounts' owners, and a SQLite read model of balances and transfers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "cafes/runtime/node.hpp"

namespace bank {

/// What the bank's read side runs.
struct read_side_options {
  bool state_topic = true;   ///< keep `<ns>.account.state` (the account-balances topic)
  bool enrich = true;        ///< keep `<ns>.bank.transfers-enriched` (needs the state topic)
  std::string db;            ///< the SQLite read model's file; empty: none
  std::int32_t partitions = 12;
  std::int16_t replication = 1;
};

/// Returns the enriched transfers topic, `<ns>.bank.transfers-enriched`.
std::string enriched_topic(const std::string& ns);

/// The SQLite read model: table `balances` (id, owner, balance, seq), table `transfers` (id,
/// from_id, to_id, amount, status, reason, updated), and the projection's positions, all
/// written in one SQLite transaction per batch.
class read_model;

/// Opens the read model in `file` (created if missing) and reads what the report shows:
/// every balance (ordered by id) and the `recent` most recently changed transfers.
cafes::expected<nlohmann::json> read_report(const std::string& file, int recent = 20);

/// Prints the report of the read model in `file`: a table, or one JSON object. Returns 0, or 2
/// with the error on stderr.
int print_report(const std::string& file, int recent, bool json);

/// The projections of the bank's read side, running on a node's Kafka cluster (each is one
/// instance of a group shared by every bank node of the namespace).
class read_side {
 public:
  /// Creates the topics it writes and starts the projections. Fails with invalid_argument on
  /// memory storage, or with the first projection's error.
  static cafes::expected<std::unique_ptr<read_side>> start(cafes::node& node, const read_side_options& o);
  ~read_side();

  /// Waits until every projection has read its partitions up to their end offsets now.
  cafes::expected<void> wait_caught_up(std::chrono::milliseconds timeout);
  /// The projections' counters and lag, as JSON.
  nlohmann::json status() const;
  /// Re-drives every projection's dead letters (projection::redrive); per projection, the
  /// letters read, re-driven and failed again.
  cafes::expected<nlohmann::json> redrive(std::chrono::milliseconds timeout);
  /// Rebuilds every projection from the first event of its partitions (projection::reset).
  cafes::expected<void> reset(std::chrono::milliseconds timeout);
  /// The report of the SQLite read model (invalid_argument without one).
  cafes::expected<nlohmann::json> report(int recent = 20) const;

  struct impl;

 private:
  explicit read_side(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace bank
