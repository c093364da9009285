// Topic provisioning: create missing topics and check existing ones against their spec.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/kafka_config.hpp"

namespace cafes {

/// What a topic must look like.
struct topic_spec {
  /// The topic's name.
  std::string name;
  /// The partition count.
  std::int32_t partitions = 1;
  /// The replication factor.
  std::int16_t replication = 1;
  std::string cleanup_policy = "delete"; ///< "delete" or "compact"
  std::map<std::string, std::string> configs; ///< more topic configs for creation
};

/// Returns the specs of the journal, snapshot and dead-letter topics of one aggregate type.
std::vector<topic_spec> aggregate_topics(std::string_view ns, std::string_view aggregate,
                                         std::int32_t partitions, std::int16_t replication);

/// Returns the spec of the state topic of one aggregate type (compacted; as many partitions
/// as its events topic, so that an aggregate's state sits in its events' partition number).
topic_spec state_topic_spec(std::string_view ns, std::string_view aggregate, std::int32_t partitions,
                            std::int16_t replication);

/// Creates the topics that are missing and checks the others. An existing topic whose
/// partition count, replication factor or cleanup policy differs fails with topic_mismatch,
/// naming the topic, the setting, the wanted and the found value.
expected<void> ensure_topics(const kafka_config& cfg, const std::vector<topic_spec>& specs);

/// Returns cfg.limits narrowed to what every stage accepts: the producer's message.max.bytes
/// and the max.message.bytes of each topic in `topics` (as the brokers describe them; the
/// embedded cluster has none), each less record_framing_bytes. An event or snapshot within
/// them is never refused for its size by the producer or a broker.
expected<codec_limits> effective_limits(const kafka_config& cfg, const std::vector<std::string>& topics);

} // namespace cafes
