// A Kafka record as cafes sees it, independent of the client library.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cafes/persistence/types.hpp"

namespace cafes {

/// One Kafka record header. Kafka allows repeated keys; cafes writes each key once.
struct header {
  std::string key;
  std::string value;
  friend bool operator==(const header&, const header&) = default;
};

/// One Kafka record: where it sits, its key, headers and value.
struct record {
  std::string topic;
  partition_id partition{0};
  offset off{-1};
  std::string key;
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

} // namespace cafes
