// Error codes of the actors layer (commands, persistence of aggregates, recovery).
#pragma once

#include <string_view>
#include <system_error>

#include "cafes/core/error.hpp"

namespace cafes {

/// Errors that commands and aggregates report. Values are stable.
enum class actor_errc {
  ok = 0,
  unknown_aggregate_type = 1, ///< no aggregate type is hosted under that name
  invalid_command,            ///< the command is not one of the aggregate's commands
  overloaded,                 ///< a bounded queue (stash, journal backlog) is full
  persist_failed,             ///< the events were not made durable; the aggregate restarts
  recovery_failed,            ///< the partition could not recover (corruption, Kafka down)
  timeout,                    ///< no reply within the command's deadline
  shutting_down,              ///< the node is stopping
  not_owner,                  ///< this node no longer owns the aggregate's partition (fenced)
  handler_failed,             ///< the aggregate's handle or apply threw; the message says what
  not_encodable,              ///< the command must go to another node but has no type_name (codec)
  unreachable,                ///< the node owning the partition could not be reached in time
  frame_too_large,            ///< a command or reply exceeds the routing frame limit
  rejected,                   ///< refused by its handler with cafes::reject("message"); meets condition::rejected
  no_history,                 ///< the aggregate has no event in the journal (node::state_at, node::history)
  out_of_history,             ///< a seq beyond the aggregate's last event, or a time before its first
};

/// Returns the category of cafes::actor_errc.
const std::error_category& actors_category() noexcept;

/// Returns the error code of `e`; makes actor_errc an error-code enum.
inline std::error_code make_error_code(actor_errc e) noexcept {
  return {static_cast<int>(e), actors_category()};
}

/// What an error means to whoever sent the command, whatever its category: compare an error
/// with one (`r.error() == cafes::condition::rejected`). An error may meet several (an
/// overloaded one is also retryable) or none (bad input such as invalid_argument or
/// event_too_large, handler_failed, recovery_failed: refused, nothing written, and sending it
/// again does not help until something changes).
enum class condition {
  /// The command was refused by its handler (the rejection's code: of the application's own
  /// category, or actor_errc::rejected), or its aggregate id is invalid or reserved. Nothing was written, and
  /// the same command is refused again.
  rejected = 1,
  /// Nothing was written and the same command may succeed later (a full queue): it may be sent
  /// again as it is, after a pause, even if it is not idempotent.
  retryable,
  /// The command may have been applied, or may still be (persist_failed, actor_errc::timeout,
  /// shutting_down, not_owner, unreachable, frame_too_large). Unlike `retryable`: read the
  /// state before sending it again, unless its own reference makes a repeat harmless.
  unknown_outcome,
  /// A bounded queue was full (actor_errc::overloaded or errc::overloaded); retryable.
  overloaded,
  /// A deadline passed: actor_errc::timeout (no reply in time; an unknown outcome) or
  /// errc::timeout (a Kafka operation; for a command, its write was refused before it reached
  /// the log).
  timeout,
};

/// Returns the category of cafes::condition, named "cafes".
const std::error_category& condition_category() noexcept;

/// Returns the error condition of `c`; makes condition an error-condition enum.
inline std::error_condition make_error_condition(condition c) noexcept {
  return {static_cast<int>(c), condition_category()};
}

/// Makes `c` known by its name(), so that an error of this category that comes back from
/// another node (a rejection of a routed command) compares equal to the local error codes.
/// reject() registers the category of its error enum on its own; the cafes categories and
/// std's generic and system categories are always known.
void register_error_category(const std::error_category& c);

/// Returns the category registered under `name`, or nullptr.
const std::error_category* find_error_category(std::string_view name);

namespace detail {

using category_getter = const std::error_category& (*)();

/// Registers a category known by its getter, which is called only at the first lookup: at
/// start-up the category object itself may not be constructed yet.
void register_error_category(category_getter g);

template <class E>
const std::error_category& category_of() {
  return make_error_code(E{}).category();
}

/// Registers the category of error enum E at start-up (odr-used by reject<E>).
template <class E>
struct category_registrar {
  static inline const bool done = (register_error_category(&category_of<E>), true);
};

} // namespace detail

} // namespace cafes

template <>
struct std::is_error_code_enum<cafes::actor_errc> : std::true_type {};

template <>
struct std::is_error_condition_enum<cafes::condition> : std::true_type {};
