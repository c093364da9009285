// The read side of one aggregate's journal: its history, event by event (node::history).
#pragma once

#include <any>
#include <chrono>
#include <cstdint>
#include <string>
#include <variant>

#include "cafes/persistence/types.hpp"

namespace cafes {

/// What the journal records about one event besides the event itself: its envelope's
/// metadata and where it sits (docs/wire-format.md names the headers).
struct event_metadata {
  /// The event's per-aggregate sequence number, from 1 (ce_cafesseq).
  seq_nr seq{0};
  /// The registered event type name (ce_type).
  std::string type;
  /// The schema version the event was written with (ce_cafesschema), before upcasting.
  std::uint32_t schema_version = 0;
  /// When the writer journaled it (ce_time), in milliseconds since the Unix epoch.
  std::int64_t time_ms = 0;
  /// The client's command id that caused it (ce_causationid); may be empty.
  std::string command_id;
  /// The node that wrote it (ce_cafesnode).
  std::string writer_node;
  /// The ownership epoch of its partition's writer (ce_cafesepoch).
  std::uint64_t epoch = 0;
  /// The journal partition it is in.
  partition_id partition{0};
  /// Its offset in that partition.
  offset off{-1};

  /// Returns time_ms as a time point of the system clock.
  std::chrono::system_clock::time_point time() const {
    return std::chrono::system_clock::time_point{std::chrono::milliseconds{time_ms}};
  }
};

/// One event of an aggregate's history (node::history): its metadata, and the event decoded
/// and upcast to the type this build writes, as one of aggregate A's events.
template <class A>
struct history_entry : event_metadata {
  /// The event, as today's code sees it (upcast from older schema versions).
  typename A::events event;

  /// Returns the event if it is an E, else nullptr.
  template <class E>
  const E* get() const {
    return std::get_if<E>(&event);
  }

  /// Calls `f` with the event as its own type (std::visit).
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit(std::forward<F>(f), event);
  }
};

namespace detail {

/// Stores in `out` the alternative of variant V that `a` holds; false if it holds none.
template <class V>
bool any_to_variant(const std::any& a, V& out) {
  return [&]<class... Ts>(std::variant<Ts...>*) {
    return ((std::any_cast<Ts>(&a) ? (out = *std::any_cast<Ts>(&a), true) : false) || ...);
  }(static_cast<V*>(nullptr));
}

} // namespace detail

} // namespace cafes
