// The journal: an append-only, partitioned log of event envelopes for one aggregate type.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/types.hpp"

namespace cafes {

/// Where one appended event landed.
struct position {
  partition_id partition{0};
  offset off{-1};
  friend auto operator<=>(const position&, const position&) = default;
};

/// Called once per append with the positions of all events (in batch order) or one error.
/// A failed append may have written some of its events (an unknown outcome): callers must
/// re-read the journal before trusting their state. It is never reported as a success.
/// The callback may run on a thread of the journal's; it must not block.
using append_callback = std::function<void(expected<std::vector<position>>)>;

/// One chunk of a partition read.
struct read_chunk {
  std::vector<event_envelope> events;  ///< decoded events, in offset order
  std::vector<offset> offsets;         ///< the offset of each event
  offset next{0};                      ///< where the next read starts
  bool end = false;                    ///< true if `next` reached the end of the partition
};

/// The journal of one aggregate type: topic `<ns>.<aggregate>.events` with P partitions.
/// Each aggregate's events go to partition_for(id, P). Implementations: kafka_journal
/// (idempotent or transactional) and memory_journal.
class journal {
 public:
  virtual ~journal() = default;

  /// Appends a batch that may span many aggregates and partitions. Invalid events fail the
  /// whole batch before anything is written. Completion arrives through `cb`.
  virtual void append(std::vector<event_envelope> batch, append_callback cb) = 0;

  /// Reads at most `max_events` events of partition `p` from offset `from` on.
  virtual expected<read_chunk> read(partition_id p, offset from, std::size_t max_events) = 0;

  /// Returns the end offset of partition `p` (the offset the next event will get, or the
  /// last stable offset in transactional mode).
  virtual expected<offset> end_offset(partition_id p) = 0;

  /// Returns the number of partitions.
  virtual std::int32_t partitions() const noexcept = 0;

  /// Returns the journal's topic name.
  virtual const std::string& topic() const noexcept = 0;

  /// Appends and waits for the outcome (for tools and tests; actors use append()).
  expected<std::vector<position>> append_sync(std::vector<event_envelope> batch);
};

/// The topic names of one aggregate type in namespace `ns`.
struct topic_names {
  std::string events;     ///< <ns>.<aggregate>.events
  std::string snapshots;  ///< <ns>.<aggregate>.snapshots
  std::string dlq;        ///< <ns>.<aggregate>.dlq
  static topic_names of(std::string_view ns, std::string_view aggregate);
};

/// Creates an in-memory journal with `partitions` partitions (for tests and tools).
std::unique_ptr<journal> make_memory_journal(std::string topic, std::int32_t partitions,
                                             codec_limits limits = {});

} // namespace cafes
