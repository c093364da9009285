// The journal: an append-only, partitioned log of event envelopes for one aggregate type.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/types.hpp"

namespace cafes {

/// Where one appended event landed.
struct position {
  /// The partition it landed in.
  partition_id partition{0};
  /// Its offset in the partition (-1: none).
  offset off{-1};
  /// Orders by partition, then offset.
  friend auto operator<=>(const position&, const position&) = default;
};

/// The key of a barrier record in an events topic (journal::barrier). Readers skip it: it is
/// no event. Aggregate ids cannot take it (the reserved prefix).
inline constexpr std::string_view barrier_key = "__cafes.barrier";

/// What became of one event of an append.
enum class event_outcome : std::uint8_t {
  durable,     ///< acknowledged: it is in the journal
  not_written, ///< refused before it was written: it is not in the journal and never will be
  unknown,     ///< it may be in the journal, or may still land (a timeout, a lost connection)
};

/// The outcome of one append, event by event. A batch may span many aggregates and
/// partitions, and its events may fare differently: each caller takes the outcome of its own
/// events (outcome_of), so that one failure never fails the others' durable writes.
struct append_result {
  std::vector<position> positions;     ///< where each durable event landed (off -1 otherwise)
  std::vector<event_outcome> outcomes; ///< one per event; empty: every event has `uniform`
  /// The outcome of every event when `outcomes` is empty.
  event_outcome uniform = event_outcome::durable;
  std::optional<error> err;            ///< the first error, when any event is not durable

  append_result() = default;
  /// Every event durable, at `p`.
  append_result(std::vector<position> p) : positions(std::move(p)) {}
  /// Every event failed with `e`; by default the outcome is unknown (the safe assumption).
  append_result(error e, event_outcome o = event_outcome::unknown) : uniform(o), err(std::move(e)) {}

  /// Returns the outcome of event i.
  event_outcome outcome(std::size_t i) const { return outcomes.empty() ? uniform : outcomes[i]; }
  /// Returns the outcome of events [first, first + count): durable or not_written when all
  /// are, unknown otherwise (part of a command may have landed).
  event_outcome outcome_of(std::size_t first, std::size_t count) const;
  /// Returns every position, or the first error if any event is not durable.
  operator expected<std::vector<position>>() const;
};

/// Called once per append with each event's outcome. An unknown outcome means the caller
/// must re-read the journal (up to a barrier, see journal::barrier) before trusting its
/// state. The callback may run on a thread of the journal's; it must not block.
using append_callback = std::function<void(append_result)>;

/// One chunk of a partition read.
struct read_chunk {
  std::vector<event_envelope> events;  ///< decoded events, in offset order
  std::vector<offset> offsets;         ///< the offset of each event
  offset next{0};                      ///< where the next read starts
  bool end = false;                    ///< true if `next` reached the end of the partition
};

/// The journal of one aggregate type. Its topic is `<ns>.<aggregate>.events`, with P partitions;
/// each aggregate's events go to partition_for(id, P). Implementations: kafka_journal
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

  /// Returns an offset of partition `p` past which no event of an earlier failed append can
  /// still land: an aggregate whose append had an unknown outcome re-reads up to it before it
  /// trusts its state. The default is the end offset, which is exact for journals whose
  /// failed appends are settled when they are reported (memory, transactional).
  virtual expected<offset> barrier(partition_id p) { return end_offset(p); }

  /// Returns the number of partitions.
  virtual std::int32_t partitions() const noexcept = 0;

  /// Returns the journal's topic name.
  virtual const std::string& topic() const noexcept = 0;

  /// Returns the limits append() enforces: check each event against them before batching,
  /// so that an event too large fails only its own command.
  virtual codec_limits limits() const noexcept { return {}; }

  /// Returns false while the journal cannot write (its producer failed fatally and is not
  /// replaced yet, or a partition's writer is lost and not taken over again yet); a node
  /// reports itself not ready meanwhile.
  virtual bool healthy() const noexcept { return true; }

  /// Opens partition `p`'s writer for this node, the partition's new owner. A transactional
  /// journal creates p's producer, whose init_transactions fences every older owner and
  /// finishes their pending transaction: afterwards nothing of theirs can still change the
  /// partition. Opening an open partition does nothing. Blocks (up to the request timeout).
  virtual expected<void> open(partition_id) { return {}; }

  /// Closes partition `p`'s writer: finishes its pending transaction and drops its producer.
  /// Later appends to `p` fail with not_owned until it is opened again. Blocks.
  virtual expected<void> close(partition_id) { return {}; }

  /// Returns true once partition `p`'s writer is lost: fenced by a newer owner, or its
  /// transactional producer failed. A lost partition takes no more writes, of events,
  /// snapshots or checkpoints: each fails (errc::fenced when fenced). Its owner must stop
  /// serving it; the only way back is close() and open() (whose new producer fences every
  /// other writer) followed by a recovery, as a takeover does. A failed producer is never
  /// aborted or replaced in place: a resumed zombie's abort or replacement could fence the
  /// partition's rightful owner.
  virtual bool lost(partition_id) const noexcept { return false; }

  /// Returns true once partition `p`'s writer is lost because a newer writer fenced it.
  virtual bool fenced(partition_id) const noexcept { return false; }

  /// Appends and waits for the outcome (for tools and tests; actors use append()).
  expected<std::vector<position>> append_sync(std::vector<event_envelope> batch);
};

/// The topic names of one aggregate type in namespace `ns`.
struct topic_names {
  std::string events;     ///< `<ns>.<aggregate>.events`
  std::string snapshots;  ///< `<ns>.<aggregate>.snapshots`
  std::string dlq;        ///< `<ns>.<aggregate>.dlq`
  std::string state;      ///< `<ns>.<aggregate>.state` (opt-in: start_state_topic)

  /// Returns the topic names of aggregate type `aggregate` in namespace `ns`.
  static topic_names of(std::string_view ns, std::string_view aggregate);
};

/// Creates an in-memory journal with `partitions` partitions (for tests and tools).
std::unique_ptr<journal> make_memory_journal(std::string topic, std::int32_t partitions,
                                             codec_limits limits = {});

} // namespace cafes
