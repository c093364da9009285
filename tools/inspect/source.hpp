// The Kafka side of cafes-inspect: topic metadata, watermarks and ranges of records.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/record.hpp"

namespace cafes::inspect {

/// Where and how to read.
struct source_options {
  /// The brokers, "host:port,…".
  std::string bootstrap;
  /// Bound on connecting, on each metadata and watermark request, and on a read that gets
  /// nothing.
  std::chrono::milliseconds timeout{10'000};
  /// Reads with isolation.level=read_uncommitted: records of open and aborted transactions too.
  bool read_uncommitted = false;
  /// Keeps librdkafka's own log lines (on stderr); by default only its critical ones.
  bool verbose = false;
  /// More librdkafka properties (security settings, for example), applied last.
  std::map<std::string, std::string> properties;
};

/// A partition's offsets: the first record's, and the end (the next record's, the high
/// watermark).
struct watermarks {
  std::int64_t low = 0;  ///< the offset of the first record still in the log
  std::int64_t end = 0;  ///< the offset the next record will get
};

/// Reads cafes topics. Not thread-safe.
class source {
 public:
  /// Connects: fails with broker_unavailable, naming the servers, if no broker answers within
  /// the timeout.
  static expected<std::unique_ptr<source>> open(const source_options& opts);
  ~source();

  /// Returns the partition count of `topic`; topic_missing, naming it, if the cluster does
  /// not know it.
  expected<std::int32_t> partitions(const std::string& topic);

  /// Returns the low and end offsets of topic/p.
  expected<watermarks> offsets(const std::string& topic, std::int32_t p);

  /// Calls `f` for each record of topic/p with an offset in [from, to), in order (offsets
  /// that hold no record, such as transaction markers, are skipped).
  expected<void> read(const std::string& topic, std::int32_t p, std::int64_t from, std::int64_t to,
                      const std::function<void(record&&)>& f);

 private:
  struct impl;
  explicit source(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// Exit codes of cafes-inspect (its --help lists them).
enum exit_code : int {
  exit_ok = 0,          ///< done; records that did not decode were printed raw with their error
  exit_failed = 1,      ///< an unexpected failure
  exit_bad_input = 2,   ///< a bad command line or argument (partition, offset, seq, time)
  exit_no_topic = 3,    ///< a topic does not exist
  exit_no_broker = 4,   ///< no broker answered within --timeout-ms (or a read timed out)
  exit_kafka = 5,       ///< another Kafka error
};

/// Returns the exit code for `e`.
int exit_code_of(const error& e);

} // namespace cafes::inspect
