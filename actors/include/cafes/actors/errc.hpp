// Error codes of the actors layer (commands, persistence of aggregates, recovery).
#pragma once

#include <string_view>
#include <system_error>

#include "cafes/persistence/errc.hpp"

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
};

/// Returns the category of cafes::actor_errc.
const std::error_category& actors_category() noexcept;

inline std::error_code make_error_code(actor_errc e) noexcept {
  return {static_cast<int>(e), actors_category()};
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
  return std::error_code{E{}}.category();
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
