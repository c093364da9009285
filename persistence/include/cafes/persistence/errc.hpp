// Error codes of the persistence layer (error and expected<T> are in cafes/core/error.hpp).
#pragma once

#include <system_error>

#include "cafes/core/error.hpp"

namespace cafes {

/// Errors of the persistence layer. Values are stable: they appear in logs and metrics.
enum class errc {
  ok = 0,
  // Bad input.
  invalid_argument = 1,   ///< A caller passed a value that can never be valid.
  invalid_aggregate_id,   ///< Empty, too long, or not valid UTF-8-free printable bytes.
  reserved_aggregate_id,  ///< The id starts with the reserved prefix "__cafes".
  event_too_large,        ///< An encoded event exceeds the configured maximum.
  state_too_large,        ///< A state's snapshot record would exceed the same maximum: the
                          ///< command that leads to it is refused at decide time, so that
                          ///< every state can be snapshotted and recovery stays bounded.
  help_requested,         ///< The command line asked for --help; the message is the help.
  // Decoding.
  malformed_record = 20,  ///< The value is not a msgpack map of the expected shape.
  missing_header,         ///< A required CloudEvents header is absent.
  bad_header,             ///< A header is present but its value is invalid.
  unsupported_version,    ///< An envelope or schema version this build cannot read.
  unknown_type,           ///< No event or state type is registered under the name.
  type_mismatch,          ///< The stored type does not convert to the requested C++ type.
  duplicate_type,         ///< A type name or C++ type was registered twice.
  sequence_gap,           ///< Per-aggregate sequence numbers skip a value.
  sequence_repeat,        ///< Per-aggregate sequence numbers repeat or go back.
  // Kafka and topics.
  timeout = 40,           ///< An operation did not finish within its bound.
  broker_unavailable,     ///< No broker answered.
  fenced,                 ///< A newer producer with our transactional.id took over.
  transaction_aborted,    ///< The transaction was aborted; nothing of it is visible.
  topic_mismatch,         ///< An existing topic differs from the required spec.
  topic_missing,          ///< A topic does not exist and may not be created here.
  kafka_error,            ///< Any other Kafka error; the message says which.
  fatal,                  ///< A fatal client error: the client must be recreated.
  closed,                 ///< The component was shut down.
  overloaded,             ///< A bounded queue is full.
  not_owned,              ///< A write to a partition this node has not opened (owns no more).
  unauthorized,           ///< The brokers refused the client's credentials (SASL authentication
                          ///< failed) or its access (an ACL); the message says which.
  tls_failed,             ///< The TLS handshake with a broker failed: its certificate was not
                          ///< trusted (ssl.ca.location), or the port does not speak TLS.
};

/// Returns the category of cafes::errc.
const std::error_category& persistence_category() noexcept;

/// Returns the error code of `e`; makes errc an error-code enum.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), persistence_category()};
}

} // namespace cafes

template <>
struct std::is_error_code_enum<cafes::errc> : std::true_type {};
