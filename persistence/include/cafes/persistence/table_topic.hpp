// A shared table on one partition of a compacted topic: each writer owns its keys, every
// reader tails the whole partition from the beginning (the cluster's directory).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/kafka_config.hpp"

namespace cafes {

/// Partition 0 of a compacted topic as a table. put() writes a key's latest value (or a
/// tombstone); a tail thread hands every record, from the beginning and then as it arrives,
/// to a callback. The topic must exist (ensure_topics).
class table_topic {
 public:
  /// Called on the tail thread for each record, in partition order; nullopt is a tombstone.
  using on_record = std::function<void(const std::string& key, const std::optional<std::string>& value)>;

  /// Opens the writer and starts the tail.
  static expected<std::unique_ptr<table_topic>> open(const kafka_config& cfg, std::string topic, on_record f);
  ~table_topic();
  table_topic(const table_topic&) = delete;
  table_topic& operator=(const table_topic&) = delete;

  /// Writes `value` under `key` (nullopt: a tombstone) and waits until it is acknowledged
  /// (bounded by the delivery timeout). Thread-safe.
  expected<void> put(const std::string& key, const std::optional<std::string>& value);

  /// Returns how many records the tail has handed to the callback.
  std::uint64_t records_seen() const noexcept;

 private:
  struct impl;
  explicit table_topic(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace cafes
