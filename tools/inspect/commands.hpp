// The subcommands of cafes-inspect: each reads what it needs and prints one JSON line per
// record to `out`. They return the first error that stops them (a record that does not
// decode does not: it is printed raw with its error).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "source.hpp"

namespace cafes::inspect {

/// Which topic: --topic, or --namespace and --type (`<ns>.<type>.<kind>`).
struct topic_choice {
  std::string topic; ///< a topic named outright
  std::string ns;    ///< the namespace, with `type`
  std::string type;  ///< the aggregate type, with `ns`

  /// Returns the topic of `kind` ("events", "snapshots" or "dlq"). --topic is taken as it is
  /// for the subcommand's own kind (`own`); for another kind (the snapshots of an events
  /// topic) its last part is replaced, which needs a name that ends in `.events`,
  /// `.snapshots` or `.dlq`.
  expected<std::string> resolve(std::string_view kind, bool own) const;
};

/// A part of a topic: one partition, and a range of its offsets (both ends included).
struct range_choice {
  std::optional<std::int32_t> partition; ///< only this partition
  std::optional<std::int64_t> from;      ///< its first offset (default: the first record's)
  std::optional<std::int64_t> to;        ///< its last offset (default: the last record's)
};

/// `events`: the records of an events topic.
struct events_options {
  topic_choice t;           ///< the events topic
  std::string id;           ///< only this aggregate's records (only its partition is read)
  range_choice range;       ///< or only these partitions and offsets
  bool skip_barriers = false; ///< leave barrier records out
};
/// Prints the events topic's records: an aggregate's, a range's, or all, partition by partition.
expected<void> run_events(source& s, const events_options& o, std::ostream& out);

/// `snapshots`: the records of a snapshot topic.
struct snapshots_options {
  topic_choice t;              ///< the snapshot topic
  std::string id;              ///< only this aggregate's snapshots
  std::optional<std::int32_t> partition; ///< only this partition
  bool all = false;            ///< every record, not only the latest per key
};
/// Prints the snapshot topic's records: the latest per key (a tombstone drops its key) or all.
expected<void> run_snapshots(source& s, const snapshots_options& o, std::ostream& out);

/// `state`: what the runtime would replay to rebuild an aggregate as of a point.
struct state_options {
  topic_choice t;                      ///< the events topic (the snapshot topic beside it)
  std::string id;                      ///< the aggregate
  std::optional<std::int64_t> at_seq;  ///< up to this event
  std::optional<std::string> at_time;  ///< or up to the last event at or before this time
};
/// Prints a summary line, the nearest snapshot at or before the point, and the records after it
/// up to the point. An absurd point (seq below 1 or beyond the last, a bad time) is
/// invalid_argument.
expected<void> run_state(source& s, const state_options& o, std::ostream& out);

/// `partition`: per partition, offsets, stored mark, lag and last writer.
struct partition_options {
  topic_choice t;                        ///< the events topic (the snapshot topic beside it)
  std::optional<std::int32_t> partition; ///< only this partition
};
/// Prints one line per partition: low and end offsets, the stored mark, lag and last writer.
expected<void> run_partition(source& s, const partition_options& o, std::ostream& out);

/// `dlq`: the records of a dead-letter topic.
struct dlq_options {
  topic_choice t;      ///< the dead-letter topic
  range_choice range;  ///< only these partitions and offsets
};
/// Prints the dead-letter topic's letters, each with its original record decoded.
expected<void> run_dlq(source& s, const dlq_options& o, std::ostream& out);

} // namespace cafes::inspect
