// A Kafka record as cafes sees it, independent of the client library.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cafes/persistence/types.hpp"

namespace cafes {

/// One Kafka record header. Kafka allows repeated keys; cafes writes each key once.
struct header {
  /// The header's name.
  std::string key;
  /// The header's value, bytes.
  std::string value;
  /// Compares both fields.
  friend bool operator==(const header&, const header&) = default;
};

/// One Kafka record: where it sits, its key, headers and value.
struct record {
  /// The topic's name.
  std::string topic;
  /// The partition's number.
  partition_id partition{0};
  /// The record's offset in the partition (-1: not written yet).
  offset off{-1};
  /// The record key: the aggregate id, or a reserved key.
  std::string key;
  /// The headers, in order.
  std::vector<header> headers;
  std::optional<std::string> value; ///< nullopt is a tombstone.

  /// Returns the value of the first header named `k`, or nullptr.
  const std::string* find_header(std::string_view k) const {
    for (auto& h : headers)
      if (h.key == k)
        return &h.value;
    return nullptr;
  }
};

/// A record read in place: views into memory owned elsewhere (a consumed Kafka message, or
/// a record). Decoding from it copies only what the decoded value keeps.
struct record_view {
  /// The topic's name.
  std::string_view topic;
  /// The partition's number.
  partition_id partition{0};
  /// The record's offset in the partition.
  offset off{-1};
  /// The record key.
  std::string_view key;
  std::optional<std::string_view> value; ///< nullopt is a tombstone.
  /// The headers (name, value), in order.
  std::vector<std::pair<std::string_view, std::string_view>> headers;

  /// Returns the value of the first header named `k`, or nullopt.
  std::optional<std::string_view> find_header(std::string_view k) const {
    for (auto& [hk, hv] : headers)
      if (hk == k)
        return hv;
    return std::nullopt;
  }

  /// Returns a view of `r` (which must outlive it).
  static record_view of(const record& r) {
    record_view v{r.topic, r.partition, r.off, r.key, std::nullopt, {}};
    if (r.value)
      v.value = std::string_view{*r.value};
    v.headers.reserve(r.headers.size());
    for (auto& h : r.headers)
      v.headers.emplace_back(h.key, h.value);
    return v;
  }
};

} // namespace cafes
