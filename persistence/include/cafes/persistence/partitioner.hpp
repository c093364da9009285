// The Java client's default partitioner (murmur2), so every Kafka client agrees with cafes.
#pragma once

#include <cstdint>
#include <string_view>

#include "cafes/persistence/types.hpp"

namespace cafes {

/// Returns Kafka's murmur2 hash of `key` (org.apache.kafka.common.utils.Utils.murmur2).
std::int32_t murmur2(std::string_view key) noexcept;

/// Returns the partition of `key` among `partitions` (> 0): toPositive(murmur2(key)) % partitions.
partition_id partition_for(std::string_view key, std::int32_t partitions) noexcept;

} // namespace cafes
