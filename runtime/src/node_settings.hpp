// The settings of a node that are checked before it starts anything (internal to the runtime):
// the TLS files of routing between nodes, and the librdkafka properties of its Kafka clients.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "cafes/runtime/node.hpp"
#include "tls.hpp"

namespace cafes::detail {

/// The TLS files of routing between nodes (none: plain TCP), checked: all three options or
/// none, files that load, a key that matches, a certificate that chains to the CA.
expected<std::optional<tls_settings>> tls_of(const node_config& c, bool routing);

/// The node's librdkafka properties (node_config::kafka_properties and the SASL password
/// file), or invalid_argument naming what is wrong. librdkafka itself checks them later.
expected<std::map<std::string, std::string>> kafka_properties(const node_config& cfg);

} // namespace cafes::detail
