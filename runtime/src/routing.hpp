// Routing between nodes (internal): the gateway, the forwarder and the directory.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <caf/all.hpp>

#include "cafes/actors/host.hpp"
#include "cafes/persistence/kafka_config.hpp"
#include "tls.hpp"

namespace cafes::detail {

/// CAF pins the actor system's logger in every thread that spawned an actor or made a
/// scoped_actor, and the actor system's destructor waits until no thread pins it: a node
/// stopped on another thread than the one that hosted or queried it would hang for good. The
/// node's code that uses CAF from a caller's thread holds one of these, which unpins it.
struct caller_thread_guard {
  caller_thread_guard() = default;
  caller_thread_guard(const caller_thread_guard&) = delete;
  caller_thread_guard& operator=(const caller_thread_guard&) = delete;
  ~caller_thread_guard() { caf::logger::set_current_actor_system(nullptr); }
};

/// What routing needs of the node's configuration.
struct routing_settings {
  std::string ns;
  std::string node_name;
  std::string advertise_host; ///< where the other nodes reach this node's gateway
  std::string bind_host;      ///< where the gateway listens
  std::uint16_t port = 0;     ///< 0: a free port
  std::int16_t directory_replication = 1;
  std::size_t max_frame_bytes = 1 << 20;
  std::chrono::milliseconds command_timeout{15'000};
  std::chrono::milliseconds request_timeout{10'000};
  bool tls = false; ///< the gateway is published, and other gateways reached, over TLS
};

/// What routing did so far.
struct routing_counters {
  std::atomic<std::uint64_t> forwarded{0}; ///< commands the forwarder took
  std::atomic<std::uint64_t> retries{0};   ///< attempts repeated (no owner, not_owner, no connection)
  std::atomic<std::uint64_t> received{0};  ///< frames the gateway took
  std::atomic<std::uint64_t> refused{0};   ///< frames the gateway refused before any owner saw them
};

/// A node's routing: its gateway (published over CAF's middleman), its forwarder (which the
/// owner actors hand the commands of partitions they do not own) and its view of the
/// directory topic `<ns>.directory`, where each node writes its entry.
class routing {
 public:
  /// Loads the middleman and registers the frame types; before the actor system starts.
  /// With `tls`, also loads CAF's OpenSSL module with those files (checked by check_tls):
  /// then routing_settings::tls must be set.
  static void configure(caf::actor_system_config& cfg, const std::optional<tls_settings>& tls);

  /// Creates the directory topic if missing, starts its tail, publishes the gateway.
  static expected<std::unique_ptr<routing>> start(caf::actor_system& sys, const kafka_config& kafka,
                                                  routing_settings s);
  ~routing();
  routing(const routing&) = delete;
  routing& operator=(const routing&) = delete;

  /// The forwarder, for host_config::forwarder.
  caf::actor forwarder() const;

  const routing_counters& counters() const noexcept;

  /// The port the gateway listens on.
  std::uint16_t port() const noexcept;

  /// Makes a hosted type reachable through the gateway and the forwarder, and writes the
  /// node's entry.
  void add_type(const hosted& h);

  /// Writes the node's entry (its owned partitions of every type), after each change of
  /// ownership. Failures are logged: the entry is written again at the next change, and a
  /// stale entry costs retries, never a wrong answer.
  void publish();

  /// Calls `f` after each record of the directory that this node reads (on the directory's
  /// thread: it must not block); null stops the calls.
  void on_directory_change(std::function<void()> f);

  /// Returns the node that owns partition p of `type` as the directory says, if any.
  std::optional<std::string> owner_name(const std::string& type, std::int32_t p) const;

  /// Returns the nodes that own at least one partition as the directory says.
  std::set<std::string> owning_nodes() const;

  /// Removes the node's entry and stops the actors (before the actor system stops).
  void stop();

 private:
  struct impl;
  explicit routing(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace cafes::detail
