// The Kafka implementation of the journal, in idempotent or transactional mode.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/kafka_config.hpp"
#include "cafes/persistence/record.hpp"

namespace cafes {

/// Opens the journal on `topic` (which must exist with `partitions` partitions).
/// In transactional mode it opens (journal::open) the partitions in `owned`, each with a
/// transactional producer that fences any older owner of it: every partition by default,
/// none for a reader or for a node whose partitions open their writers when assigned. Its
/// limits are cfg.limits narrowed by effective_limits.
/// Fails with broker_unavailable, timeout, fenced or kafka_error.
expected<std::unique_ptr<journal>> make_kafka_journal(const kafka_config& cfg, std::string topic,
                                                      std::int32_t partitions,
                                                      std::optional<std::vector<partition_id>> owned = std::nullopt);

/// Writes records of other topics (snapshots, checkpoints) through the transactional
/// producer of a journal partition, so that whoever fences the partition fences them too.
class partition_writer {
 public:
  virtual ~partition_writer() = default;
  /// Writes `recs` (each with its partition set to `p`) in one transaction of partition p's
  /// producer; fenced once the partition is, invalid_argument if it is not owned here.
  virtual void write(partition_id p, std::vector<record> recs, append_callback cb) = 0;
  /// Announces another topic written through this writer (the snapshots'): each producer
  /// learns its leaders when it opens, so that its first transaction does not wait for them.
  virtual void also_writes(const std::string& topic) = 0;
};

/// Returns the partition_writer of a transactional Kafka journal, or null for any other.
std::shared_ptr<partition_writer> transactional_writer(const std::shared_ptr<journal>& j);

/// For tests: raises a fabricated fatal error (rd_kafka_test_fatal_error) in the producers
/// of a Kafka journal, as a real one would be raised. invalid_argument for other journals.
expected<void> inject_fatal_error(journal& j, const std::string& reason);

} // namespace cafes
