// Partition ownership from Kafka's group protocol: one consumer group per namespace, whose
// rebalances say which node owns which partition of which topic.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/kafka_config.hpp"
#include "cafes/persistence/types.hpp"

namespace cafes {

/// One partition of one topic.
struct topic_partition {
  /// The topic's name.
  std::string topic;
  /// The partition's number.
  partition_id partition{0};
  /// Compares both fields.
  friend bool operator==(const topic_partition&, const topic_partition&) = default;
};

/// How a node joins its namespace's group.
struct group_settings {
  std::string group_id;    ///< the consumer group: one per namespace
  std::string instance_id; ///< group.instance.id (static membership): the node's name
  /// Without a heartbeat for this long, a member's partitions move to the others.
  std::chrono::milliseconds session_timeout{10'000};
};

/// What a member does when the group moves partitions. Both run on the member's own thread,
/// one at a time, and the group waits for them: a revoked partition is assigned elsewhere
/// only after `revoked` returned (unless the member was already expelled: `lost`).
struct group_handlers {
  /// Called with the partitions the group gives this member.
  std::function<void(const std::vector<topic_partition>&)> assigned;
  /// Called with the partitions the group takes from this member; `lost` when it was
  /// expelled (another member may own them already).
  std::function<void(const std::vector<topic_partition>&, bool lost)> revoked;
};

/// A member of a consumer group with cooperative-sticky assignment and static membership.
/// It never reads a record: it only takes part in the group's rebalances. Destroying it
/// revokes its partitions (the handler runs) and closes the consumer without leaving the
/// group, so that a restart under the same instance id within the session timeout moves
/// nothing.
class group_member {
 public:
  /// Joins the group; `subscribe` gives it the topics to share.
  static expected<std::unique_ptr<group_member>> join(const kafka_config& cfg, group_settings settings,
                                                      group_handlers handlers);
  ~group_member();
  group_member(const group_member&) = delete;
  group_member& operator=(const group_member&) = delete;

  /// Shares the partitions of `topics` (the whole set: it replaces the previous one).
  expected<void> subscribe(std::vector<std::string> topics);

  /// Returns whether the member has taken part in a rebalance of its current subscription
  /// and is not known to have been expelled since.
  bool joined() const noexcept;

  /// Asks the group coordinator whether this member still holds `tp`: it commits an offset of
  /// `tp` under its membership and generation, which the coordinator refuses from a member it
  /// expelled (a paused node that missed its session timeout) or of an older generation.
  /// True only when `tp` is in the member's assignment and the commit succeeded; false on any
  /// doubt. Blocks up to a round trip to the coordinator.
  bool holds(const topic_partition& tp);

  /// Returns how many rebalances (assignments and revocations) the member went through.
  std::uint64_t rebalances() const noexcept;

 private:
  struct impl;
  explicit group_member(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace cafes
