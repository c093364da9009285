// A command for an aggregate and its reply, as actors send them: the part of the runtime's
// message protocol that application actors use (node::router, make_command, reply_of).
#pragma once

#include <any>
#include <optional>
#include <string>

#include <caf/allowed_unsafe_message_type.hpp>

#include "cafes/core/error.hpp"

namespace cafes {

/// A command for one aggregate instance.
struct command_msg {
  std::string id;         ///< aggregate id (validated by the partition actor)
  std::string command_id; ///< the client's command id (causation); may be empty
  std::any command;       ///< one of the aggregate type's commands
  /// Delivered by another node's gateway: a partition this node does not own answers
  /// not_owner instead of forwarding it again (no forwarding loops).
  bool routed = false;
};

/// The answer to a command: an error, or the handler's reply.
struct command_reply {
  /// The error, if the command failed or was refused.
  std::optional<cafes::error> err;
  /// The handler's reply (of the command's reply type) when there is no error.
  std::any value;
};

} // namespace cafes

// In-process only: a command leaves the node only through the routing codec, never as is.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::command_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::command_reply)
