// Error codes of the actors layer (commands, persistence of aggregates, recovery).
#pragma once

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
};

/// Returns the category of cafes::actor_errc.
const std::error_category& actors_category() noexcept;

inline std::error_code make_error_code(actor_errc e) noexcept {
  return {static_cast<int>(e), actors_category()};
}

} // namespace cafes

template <>
struct std::is_error_code_enum<cafes::actor_errc> : std::true_type {};
