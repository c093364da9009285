// A local table of a compacted topic: the table side of a stream-table join.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/kafka_config.hpp"
#include "cafes/persistence/record.hpp"

namespace cafes {

/// The latest record per key of every partition of a topic (usually a compacted one, whose
/// brokers keep just that), read committed: it is
/// restored from the topic's start when opened, then a tail thread keeps it up to date. A
/// tombstone removes its key.
class kv_table {
 public:
  /// Opens the table and returns once it holds every record up to the end offsets as they
  /// were when it opened (bounded by `timeout`: errc::timeout).
  static expected<std::unique_ptr<kv_table>> open(const kafka_config& cfg, std::string topic,
                                                   std::chrono::milliseconds timeout);
  ~kv_table();
  kv_table(const kv_table&) = delete;
  kv_table& operator=(const kv_table&) = delete;

  /// Returns the latest record of `key`, or nullopt. Thread-safe.
  std::optional<record> get(const std::string& key) const;
  /// Returns the number of keys.
  std::size_t size() const;
  /// Waits until the table holds every record up to the end offsets as they are now: after
  /// it, a record acknowledged (committed) before the call is in the table.
  expected<void> sync(std::chrono::milliseconds timeout);

  struct impl; ///< private
 private:
  explicit kv_table(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// Reads partition `p` of `topic` from its start to its end offset as it is now, read
/// committed, and hands each record to `f` in offset order.
expected<void> read_partition(const kafka_config& cfg, const std::string& topic, partition_id p,
                              const std::function<void(record&&)>& f);

} // namespace cafes
