// Strong types for the values that get confused: aggregate ids, sequence numbers, partitions, offsets.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

#include "cafes/persistence/errc.hpp"

namespace cafes {

/// A value of type T that does not convert to or from other named types.
template <class T, class Tag>
class named_type {
 public:
  /// The type of the value.
  using value_type = T;
  constexpr named_type() = default;
  /// Wraps `v`.
  constexpr explicit named_type(T v) : v_(std::move(v)) {}
  /// Returns the value.
  constexpr const T& value() const noexcept { return v_; }
  /// Compares the values.
  friend constexpr auto operator<=>(const named_type&, const named_type&) = default;
  /// Writes the value.
  friend std::ostream& operator<<(std::ostream& os, const named_type& x) { return os << x.v_; }

 private:
  T v_{};
};

/// The per-aggregate sequence number of an event. The first event has 1; 0 means "none yet".
using seq_nr = named_type<std::uint64_t, struct seq_nr_tag>;
/// A Kafka partition number.
using partition_id = named_type<std::int32_t, struct partition_tag>;
/// A Kafka offset within one partition.
using offset = named_type<std::int64_t, struct offset_tag>;

/// The prefix of keys that cafes reserves for itself (checkpoints and other markers).
inline constexpr std::string_view reserved_prefix = "__cafes";
/// The longest aggregate id in bytes.
inline constexpr std::size_t max_aggregate_id_size = 256;

/// The id of one aggregate instance; also its Kafka record key. Build it with make().
class aggregate_id {
 public:
  aggregate_id() = default;

  /// Returns the id, or invalid_aggregate_id (empty, too long, control bytes) or
  /// reserved_aggregate_id (starts with the reserved prefix).
  static expected<aggregate_id> make(std::string s);

  /// Wraps a key read back from Kafka without checks (it may be a reserved key).
  static aggregate_id unchecked(std::string s) { return aggregate_id{std::move(s)}; }

  /// Returns the id's bytes.
  const std::string& str() const noexcept { return v_; }
  /// Returns true if it starts with the reserved prefix (a key of cafes', not an aggregate).
  bool reserved() const noexcept { return std::string_view{v_}.starts_with(reserved_prefix); }
  /// Compares the ids' bytes.
  friend auto operator<=>(const aggregate_id&, const aggregate_id&) = default;
  /// Writes the id.
  friend std::ostream& operator<<(std::ostream& os, const aggregate_id& x) { return os << x.v_; }

 private:
  explicit aggregate_id(std::string s) : v_(std::move(s)) {}
  std::string v_;
};

} // namespace cafes

/// Hashes an aggregate id as its string, for unordered containers.
template <>
struct std::hash<cafes::aggregate_id> {
  /// Returns the hash of the id's string.
  std::size_t operator()(const cafes::aggregate_id& x) const noexcept {
    return std::hash<std::string>{}(x.str());
  }
};
