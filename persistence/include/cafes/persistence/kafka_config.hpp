// Settings shared by every Kafka client of cafes, and the embedded (mock) cluster.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/errc.hpp"

namespace cafes {

class embedded_cluster;

/// How the journal makes appends durable.
enum class journal_mode {
  idempotent,    ///< idempotent producer, acks=all
  transactional, ///< one transactional.id per owned partition; read_committed reads
};

/// Returns "idempotent" or "transactional".
std::string_view to_string(journal_mode m) noexcept;
/// Parses "idempotent" or "transactional"; invalid_argument otherwise.
expected<journal_mode> parse_journal_mode(std::string_view s);

/// Called at named fault points (for example "journal.before_commit") with the partition
/// concerned. Tests use it to act at an exact moment; it is empty in production.
using fault_hook = std::function<void(std::string_view point, std::int32_t partition)>;

/// Settings of the Kafka clients of one aggregate type.
struct kafka_config {
  /// "host:port,…"; ignored when `embedded` is set.
  std::string bootstrap;
  /// The in-process mock cluster to use instead of a real broker, or null.
  std::shared_ptr<embedded_cluster> embedded;
  /// How the journal makes appends durable.
  journal_mode mode = journal_mode::idempotent;
  /// Bound on one append: an event not acknowledged within it fails with errc::timeout.
  std::chrono::milliseconds delivery_timeout{30'000};
  /// Bound on metadata, admin, read and transaction calls.
  std::chrono::milliseconds request_timeout{10'000};
  /// Prefix of the transactional.id of each partition: "<prefix>.<partition>".
  /// Empty means the events topic name, which derives it from (namespace, aggregate).
  std::string transactional_id_prefix;
  /// Name of this node, written into every event (ce_cafesnode).
  std::string node_name = "cafes";
  /// client.id of the clients.
  std::string client_id = "cafes";
  /// Extra librdkafka properties, applied last (they override cafes's choices) to every
  /// client made from this config: producers, consumers, admin and group clients alike. The
  /// place for security.protocol, ssl.* and sasl.* (docs/security.md).
  std::map<std::string, std::string> extra;
  /// Size limits of events and snapshots (narrowed by effective_limits).
  codec_limits limits;
  /// Whether the size limit also takes each topic's max.message.bytes, read through the admin
  /// API. Off only for a cluster without one, such as a bare librdkafka mock (the embedded
  /// cluster is known and skipped anyway).
  bool describe_topic_limits = true;
  /// Called at named fault points (tests only); empty in production.
  fault_hook on_fault;

  /// Returns the bootstrap servers to connect to (the embedded cluster's if set).
  std::string servers() const;
};

/// Checks that librdkafka accepts every property of `cfg`, cafes's own and cfg.extra (a
/// misspelt key, a bad value, a feature this build lacks), without connecting anywhere.
/// Fails with invalid_argument naming the property; the value of a secret (a password, a
/// key) is never shown.
expected<void> check_properties(const kafka_config& cfg);

/// Connects to the brokers of `cfg` with its properties (TLS, SASL) and asks them for the
/// cluster's metadata, within cfg.request_timeout. A refused handshake fails as soon as
/// librdkafka reports it, with librdkafka's message: unauthorized when the SASL credentials
/// or mechanism are refused, tls_failed when the broker's certificate is not trusted or the
/// port does not speak TLS. No answer within the bound fails with broker_unavailable and the
/// last connection error seen. Passes at once on the embedded cluster.
expected<void> check_brokers(const kafka_config& cfg);

/// librdkafka's in-process mock cluster: zero set-up, nothing durable, deterministic faults.
/// It has no admin API and does not enforce producer fencing.
class embedded_cluster {
 public:
  /// Starts a mock cluster with `brokers` brokers on loopback ports.
  static expected<std::shared_ptr<embedded_cluster>> start(int brokers = 1);
  ~embedded_cluster();
  embedded_cluster(const embedded_cluster&) = delete;
  embedded_cluster& operator=(const embedded_cluster&) = delete;

  /// Returns the bootstrap servers of the mock brokers.
  const std::string& bootstrap() const noexcept { return bootstrap_; }
  /// Returns the number of brokers.
  int brokers() const noexcept { return brokers_; }

  /// Creates a topic (the mock's own call; it has no admin API).
  expected<void> create_topic(const std::string& name, std::int32_t partitions,
                              std::int16_t replication, const std::string& cleanup_policy);
  /// Returns the cleanup policy a topic was created with, or "" if unknown.
  std::string cleanup_policy(const std::string& name) const;

  /// Makes the next `errors.size()` requests of API `api_key` (Produce = 0) fail with the
  /// given librdkafka error codes, in order.
  void push_request_errors(std::int16_t api_key, const std::vector<int>& errors);
  /// Takes broker `id` (1-based) down or up. The mock does not move leadership.
  void set_broker_down(std::int32_t id, bool down);
  /// Takes every broker down or up.
  void set_all_down(bool down);
  /// Sets the round-trip time of broker `id` (-1 for all).
  void set_rtt(std::int32_t id, int ms);

 private:
  struct impl;
  explicit embedded_cluster(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
  std::string bootstrap_;
  int brokers_ = 0;
};

} // namespace cafes
