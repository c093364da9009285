// Projections: read models kept from journal topics through a consumer group, with offsets
// committed only once the model has the events (docs/read-side.md).
#pragma once

#include <any>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/group_member.hpp"
#include "cafes/persistence/kafka_config.hpp"
#include "cafes/persistence/record.hpp"

namespace cafes {

/// One journaled event as a projection's handler sees it: the envelope (aggregate id, seq,
/// type, schema version, time, command id, writer), where it was read, and the event decoded
/// and upcast to its C++ type.
struct projected_event {
  /// The envelope: id, seq, type, time_ms, command_id, … and the msgpack payload.
  event_envelope envelope;
  /// The topic it was read from.
  std::string topic;
  /// Its partition.
  partition_id partition{0};
  /// Its offset.
  offset off{-1};
  /// The decoded event (empty when the source has no decoder).
  std::any value;

  /// Returns the event as an E, or nullptr if it is another type.
  template <class E>
  const E* get() const {
    return std::any_cast<E>(&value);
  }
};

/// Decodes an envelope into its C++ event, upcasting older versions.
using event_decoder = std::function<expected<std::any>(const event_envelope&)>;

/// One topic a projection reads, with the decoder of its events.
struct projection_source {
  /// The events topic, `<ns>.<aggregate>.events`.
  std::string topic{};
  /// The decoder of its events; empty: projected_event::value stays empty.
  event_decoder decode{};
  /// Where its dead letters go; empty: the topic's name with ".events" replaced by ".dlq".
  std::string dlq_topic{};
};

/// How far a projection has read one partition.
struct partition_lag {
  /// The topic.
  std::string topic;
  /// The partition.
  partition_id partition{0};
  /// The next offset the projection will handle (its committed position once idle).
  offset position{0};
  /// The partition's end offset (the last stable offset on a transactional journal).
  offset end{0};
  /// Events (records) behind: end - position, at least 0.
  std::int64_t lag() const noexcept { return end.value() > position.value() ? end.value() - position.value() : 0; }
};

/// What a projection did since it started (a reset does not clear it).
struct projection_stats {
  std::uint64_t handled = 0;      ///< events handed to the store or the transform, and committed
  std::uint64_t batches = 0;      ///< store transactions or Kafka transactions committed
  std::uint64_t retries = 0;      ///< handler attempts repeated after a failure
  std::uint64_t dead_letters = 0; ///< records sent to a dead-letter topic
  std::uint64_t rebalances = 0;   ///< assignments and revocations
  std::uint64_t aborted = 0;      ///< batches given up and read again (failed commits, lost partitions)
};

/// What a projection into an external store moves on: partition (topic, partition) of the
/// store's positions from `from` (-1: none stored) to `to`.
struct position_advance {
  /// The topic.
  std::string topic;
  /// The partition.
  partition_id partition{0};
  /// The position the store must hold now; -1: it holds none.
  offset from{-1};
  /// The position to store: the offset of the next record to read.
  offset to{0};
};

/// An external store (a database) that keeps a read model and, beside it, the projection's
/// position in each partition. Calls come from the projection's thread, one at a time:
/// begin(), then handle() for each event, then commit() or rollback(). The store makes the
/// events' effects and the new positions durable in one transaction, so a restart or a
/// rebalance neither skips nor repeats an event.
class projection_store {
 public:
  virtual ~projection_store() = default;
  /// Returns the stored position of a partition (the next offset to read), or nullopt.
  virtual expected<std::optional<offset>> position(const std::string& topic, partition_id p) = 0;
  /// Opens a transaction.
  virtual expected<void> begin() = 0;
  /// Applies one event inside the transaction. An error is the event's: the projection rolls
  /// back, retries the event with backoff, and dead-letters it after the last attempt.
  virtual expected<void> handle(const projected_event& e) = 0;
  /// Stores the positions and commits. Each advance must find its `from` stored (none for
  /// -1), or the store refuses with errc::fenced and commits nothing: another instance moved
  /// the partition on, so this one lost it. Any other error is the store's: the batch is
  /// rolled back and tried again after a backoff, never dead-lettered.
  virtual expected<void> commit(const std::vector<position_advance>& advances) = 0;
  /// Drops the open transaction.
  virtual void rollback() = 0;
  /// Deletes the read model and every position (projection::reset).
  virtual expected<void> clear() = 0;
};

/// The records an exactly-once projection writes for one event; they are produced in the
/// transaction that also commits the projection's offsets.
class projection_output {
 public:
  /// Adds a record to `topic`, in the partition of its key: partition_for(key) over the
  /// topic's partitions (the journal's partitioner, so that a key keeps its partition number
  /// across topics with as many partitions).
  void send(std::string topic, std::string key, std::optional<std::string> value, std::vector<header> headers = {}) {
    records.push_back(record{std::move(topic), partition_id{-1}, offset{-1}, std::move(key), std::move(headers),
                             std::move(value)});
  }
  /// Adds a record as it is: in partition r.partition (a record's default is 0; set -1 for
  /// the partition of its key, as the other send does).
  void send(record r) { records.push_back(std::move(r)); }
  /// The records added so far.
  std::vector<record> records;
};

/// Turns one event into output records (exactly-once flavour). An error is the event's: it is
/// retried with backoff and then dead-lettered. It must not keep state of its own that
/// outlives an aborted transaction (see exactly_once_hooks).
using transform_fn = std::function<expected<void>(const projected_event&, projection_output&)>;

/// Optional callbacks of an exactly-once projection, all on its thread.
struct exactly_once_hooks {
  /// The group gave these partitions to the projection, before any of their records is read
  /// (for example: restore a table of the partitions' state).
  std::function<expected<void>(const std::vector<topic_partition>&)> assigned;
  /// The group took these partitions; nothing of them is in flight.
  std::function<void(const std::vector<topic_partition>&)> revoked;
  /// The transaction of the last batch committed.
  std::function<void()> committed;
  /// The transaction of the last batch was aborted: forget what it changed.
  std::function<void()> aborted;
  /// projection::reset rewinds these partitions to their start: forget their state (the
  /// events are read again from the first one).
  std::function<void(const std::vector<topic_partition>&)> reset;
};

/// What a re-drive of dead letters did.
struct redrive_report {
  std::uint64_t letters = 0;      ///< letters of this projection read
  std::uint64_t redriven = 0;     ///< letters the model took this time
  std::uint64_t failed_again = 0; ///< letters that failed again (dead-lettered anew)
};

/// Settings of a projection.
struct projection_options {
  /// The projection's name: it is the consumer group's id, and it names the projection in
  /// dead letters and logs. Instances with the same name share the partitions.
  std::string name{};
  /// This instance's name, unique among the projection's instances (the exactly-once
  /// flavour's transactional.id is the name, a dot and the instance, so that a restarted
  /// instance fences its old self).
  std::string instance = "1";
  /// The topics to read. Each one, and its dead-letter topic, must exist (topic_missing).
  std::vector<projection_source> sources{};
  /// The topics the transform writes (exactly_once): checked at start (topic_missing), and
  /// their leaders learnt before the first batch.
  std::vector<std::string> outputs{};
  /// Bound on one batch (one store or Kafka transaction). A batch is what the consumer has
  /// fetched, up to this bound: large batches amortize a transaction's commit (a Kafka one
  /// costs several round trips), small ones bound the work an abort repeats.
  std::size_t max_batch = 5'000;
  /// Attempts of the handler on one event before it is dead-lettered.
  int max_attempts = 5;
  /// The backoff after the first failed attempt; it doubles up to max_backoff.
  std::chrono::milliseconds backoff{20};
  /// The longest backoff.
  std::chrono::milliseconds max_backoff{1'000};
  /// Without a heartbeat for this long, an instance's partitions move to the others.
  std::chrono::milliseconds session_timeout{6'000};
};

/// A running projection: a thread of its own reads batches through the consumer group,
/// hands them to the store or the transform, and commits. Destroying it finishes the batch in
/// hand and leaves the group, so that its partitions move to the other instances at once.
class projection {
 public:
  /// Starts a projection into an external store (at least once into the store, with the
  /// position stored beside the data, which makes each event's effect happen once).
  static expected<std::unique_ptr<projection>> into_store(const kafka_config& cfg, projection_options opts,
                                                          std::shared_ptr<projection_store> store);
  /// Starts an exactly-once projection into Kafka: each batch's output records, dead letters
  /// and consumer offsets go in one transaction. Needs a broker with transactions (the real
  /// one, or the embedded cluster).
  static expected<std::unique_ptr<projection>> exactly_once(const kafka_config& cfg, projection_options opts,
                                                            transform_fn transform, exactly_once_hooks hooks = {});
  ~projection();
  projection(const projection&) = delete;
  projection& operator=(const projection&) = delete;

  /// Returns, for each partition this instance holds, its position and end offset.
  std::vector<partition_lag> lag() const;
  /// Returns the counters.
  projection_stats stats() const;
  /// Returns the error that stopped the projection (a fatal client error, or a store that
  /// cannot be read), or nullopt while it runs.
  std::optional<error> failure() const;
  /// Waits until the instance holds partitions and has handled every record up to their end
  /// offsets as they are when it is called (or the projection failed, or `timeout` passed:
  /// errc::timeout).
  expected<void> wait_caught_up(std::chrono::milliseconds timeout) const;
  /// Rebuilds the model from the start of every partition this instance holds: the store is
  /// cleared (into_store), or the offsets rewound (exactly_once: the output is written again;
  /// a compacted output such as a state topic converges to the same records). Waits until the
  /// projection took the request (bounded by `timeout`).
  expected<void> reset(std::chrono::milliseconds timeout = std::chrono::seconds{30});
  /// Re-drives this projection's dead letters once their cause is fixed: every letter of the
  /// sources' dead-letter topics written since the last re-drive goes through the handler
  /// again. Its position in each dead-letter partition is kept like a source's (in the store,
  /// or in the group's offsets), so a letter is re-driven once; one that fails again is
  /// dead-lettered anew, with its new error. Waits for the outcome (bounded by `timeout`).
  expected<redrive_report> redrive(std::chrono::milliseconds timeout = std::chrono::seconds{60});

  struct impl; ///< private
 private:
  explicit projection(std::unique_ptr<impl> p);
  static expected<std::unique_ptr<projection>> start(std::unique_ptr<impl> d);
  std::unique_ptr<impl> impl_;
};

/// Returns the dead-letter topic of an events topic: ".events" replaced by ".dlq".
std::string dlq_topic_of(const std::string& events_topic);

} // namespace cafes
