// The Kafka implementation of the journal, in idempotent or transactional mode.
#pragma once

#include <memory>
#include <vector>

#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/kafka_config.hpp"

namespace cafes {

/// Opens the journal on `topic` (which must exist with `partitions` partitions).
/// In transactional mode it initialises one transactional producer per partition in
/// `owned` (all partitions when empty), which fences any older owner of them.
/// Fails with broker_unavailable, timeout, fenced or kafka_error.
expected<std::unique_ptr<journal>> make_kafka_journal(const kafka_config& cfg, std::string topic,
                                                      std::int32_t partitions,
                                                      std::vector<partition_id> owned = {});

} // namespace cafes
