// The frames of routing between nodes: a command sent to the gateway of the node that owns
// its partition, and the answer (docs/wire-format.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>

namespace cafes {

/// The version of route_frame and route_reply this build writes and reads.
inline constexpr std::uint16_t route_frame_version = 1;

/// One command for the node that owns the aggregate's partition.
struct route_frame {
  /// The frame's layout version, route_frame_version.
  std::uint16_t version = route_frame_version;
  std::string type;             ///< aggregate type
  std::string id;               ///< aggregate id
  std::string command_id;       ///< the client's command id (may be empty)
  std::string command;          ///< the command's type_name
  std::string bytes;            ///< the command, msgpack
  std::int64_t deadline_ms = 0; ///< how long the sender still waits for the answer
  std::string from;             ///< the sending node's name (for logs)
};

/// The answer to a route_frame: the reply's msgpack bytes, or an error (category non-empty).
struct route_reply {
  /// The reply's layout version, route_frame_version.
  std::uint16_t version = route_frame_version;
  std::string category; ///< the error's category name; empty: success
  /// The error's code within its category.
  std::int32_t code = 0;
  /// The error's message.
  std::string message;
  std::string bytes; ///< the reply, msgpack, known by its command's name
};

/// Returns the bytes a frame carries (what the frame limit bounds).
inline std::size_t frame_bytes(const route_frame& f) {
  return f.type.size() + f.id.size() + f.command_id.size() + f.command.size() + f.bytes.size() + f.from.size();
}

/// Makes route_frame serializable by CAF (its type name and fields, in order).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, route_frame& x) {
  return f(caf::meta::type_name("cafes.route_frame"), x.version, x.type, x.id, x.command_id, x.command, x.bytes,
           x.deadline_ms, x.from);
}

/// Makes route_reply serializable by CAF (its type name and fields, in order).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, route_reply& x) {
  return f(caf::meta::type_name("cafes.route_reply"), x.version, x.category, x.code, x.message, x.bytes);
}

} // namespace cafes
