// Dead letters: records a projection could not handle, kept with why and where they came from.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/record.hpp"

namespace cafes {

/// The headers a dead letter adds to the original record's (docs/read-side.md).
namespace dlq_hdr {
/// The error's code, "category:code" (for example "cafes:malformed_record").
inline constexpr std::string_view error = "cafes_dlq_error";
/// The error's message.
inline constexpr std::string_view message = "cafes_dlq_message";
/// The topic the record was read from.
inline constexpr std::string_view topic = "cafes_dlq_topic";
/// Its partition, decimal.
inline constexpr std::string_view partition = "cafes_dlq_partition";
/// Its offset, decimal.
inline constexpr std::string_view offset = "cafes_dlq_offset";
/// How many times the handler was tried, decimal (0: the record did not decode).
inline constexpr std::string_view attempts = "cafes_dlq_attempts";
/// The name of the projection that gave up on it.
inline constexpr std::string_view projection = "cafes_dlq_projection";
/// When it was given up on, RFC 3339 UTC.
inline constexpr std::string_view time = "cafes_dlq_time";
} // namespace dlq_hdr

/// A record a projection gave up on, with why.
struct dead_letter {
  /// The record as it was read: topic, partition, offset, key, headers and value.
  record original;
  /// The error's code, "category:code".
  std::string error;
  /// The error's message.
  std::string message;
  /// How many times the handler was tried (0: the record did not decode).
  std::uint32_t attempts = 0;
  /// The projection that gave up on it.
  std::string projection;
  /// When it was given up on, in milliseconds since the Unix epoch.
  std::int64_t time_ms = 0;
  /// Compares every field.
  friend bool operator==(const dead_letter&, const dead_letter&) = default;
};

/// Encodes a dead letter as a record of `dlq_topic`: the original key, value and headers,
/// followed by the dlq_hdr headers. The partition is the original's (the dead-letter topic
/// has as many partitions as the events topic), so that a re-drive keeps each aggregate's
/// order.
record encode_dead_letter(const dead_letter& d, std::string dlq_topic);

/// Decodes a record of a dead-letter topic. Fails with missing_header or bad_header, naming
/// the record's place, when a dlq_hdr header is missing or malformed.
expected<dead_letter> decode_dead_letter(const record& r);

} // namespace cafes
