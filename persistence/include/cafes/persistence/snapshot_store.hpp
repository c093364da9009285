// The snapshot store: the latest state per aggregate and a checkpoint per partition.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/kafka_config.hpp"
#include "cafes/persistence/record.hpp"
#include "cafes/persistence/types.hpp"

namespace cafes {

/// The version of the snapshot record layout that this build writes.
inline constexpr std::uint32_t snapshot_format_version = 1;
/// The record key of a partition's checkpoint in the snapshot topic.
inline constexpr std::string_view checkpoint_key = "__cafes.checkpoint";

/// An aggregate's state after its event `seq`, which sits at `journal_offset`.
struct snapshot {
  /// The aggregate's id (the record key).
  aggregate_id id;
  /// The sequence number of the last event in the state.
  seq_nr seq{0};
  /// The journal offset of that event.
  offset journal_offset{-1};
  std::string state_type;          ///< registered state type name
  std::uint32_t state_version = 1; ///< schema version of the state
  std::string state;               ///< msgpack bytes of the state
  /// Compares every field.
  friend bool operator==(const snapshot&, const snapshot&) = default;
};

/// Encodes a snapshot as a record of `topic` (key = id, value = msgpack map).
expected<record> encode_snapshot(const snapshot& s, std::string topic);
/// Decodes a snapshot record; malformed_record or unsupported_version on bad input.
expected<snapshot> decode_snapshot(const record& r);

/// Returns the size that encode_snapshot's record of `s` takes (key, value and headers),
/// without encoding it.
std::size_t snapshot_record_bytes(const snapshot& s);
/// Checks that the snapshot of a state fits `limits` (the events' limit: snapshots go to a
/// topic with the same size rules); state_too_large otherwise. The aggregate actor calls it
/// at decide time with the new state, so that a state too large to snapshot is refused with
/// the command that would create it, instead of freezing its partition's checkpoint.
expected<void> check_snapshot(const snapshot& s, const codec_limits& limits);

/// What a partition's owner stores beside the snapshots of partition p: its checkpoint, and
/// the ownership epoch of the owner that stored it. Each new owner stores the epoch it found
/// plus one, through its freshly opened (fencing) writer, before it serves: the epoch grows
/// with every change of owner, and a node writes events with its partition's epoch.
struct partition_mark {
  offset checkpoint{0};    ///< every event of the journal partition below it has a snapshot
  std::uint64_t epoch = 0; ///< the owner's epoch (0: stored before epochs, or by a tool)
  /// Compares both fields.
  friend bool operator==(const partition_mark&, const partition_mark&) = default;
};

/// Encodes the mark of partition `p` as a record of `topic` under checkpoint_key.
record encode_checkpoint(std::string topic, partition_id p, partition_mark m);
/// Decodes a checkpoint record; malformed_record or unsupported_version on bad input. A
/// record without an epoch (written before epochs) has epoch 0.
expected<partition_mark> decode_checkpoint(const record& r);

/// Called once per save with the outcome; may run on a thread of the store's.
using save_callback = std::function<void(expected<void>)>;

/// Snapshots of one aggregate type. Its topic is `<ns>.<aggregate>.snapshots` (compacted), with
/// the same partitions as the journal; the latest record per key wins.
class snapshot_store {
 public:
  virtual ~snapshot_store() = default;

  /// Saves a snapshot to the partition of its id; the outcome goes to `cb`.
  virtual void save(snapshot s, save_callback cb) = 0;

  /// Returns the latest snapshot of `id`, or nullopt if it has none.
  virtual expected<std::optional<snapshot>> load(const aggregate_id& id) = 0;

  /// Calls `f` once for the latest snapshot of every aggregate in partition `p`.
  /// A record that does not decode goes to `bad` (if set) and the scan goes on.
  virtual expected<void> scan(partition_id p, const std::function<void(snapshot)>& f,
                              const std::function<void(const record&, const error&)>& bad = {}) = 0;

  /// Stores the mark of partition `p` (its checkpoint and its owner's epoch).
  virtual expected<void> save_mark(partition_id p, partition_mark m) = 0;

  /// Returns the mark of partition `p`, or nullopt if none was stored.
  virtual expected<std::optional<partition_mark>> load_mark(partition_id p) = 0;

  /// Stores checkpoint `o` of partition `p` with epoch 0 (for tools and tests; owners store
  /// marks).
  expected<void> save_checkpoint(partition_id p, offset o) { return save_mark(p, {o, 0}); }

  /// Returns the checkpoint of partition `p`, or nullopt if none was stored.
  expected<std::optional<offset>> load_checkpoint(partition_id p);

  /// Returns the number of partitions.
  virtual std::int32_t partitions() const noexcept = 0;

  /// Returns the limits its snapshots must fit (check_snapshot); save() refuses larger ones
  /// with state_too_large.
  virtual codec_limits limits() const noexcept { return {}; }

  /// Saves and waits for the outcome.
  expected<void> save_sync(snapshot s);
};

/// Creates an in-memory snapshot store.
std::unique_ptr<snapshot_store> make_memory_snapshot_store(std::int32_t partitions, codec_limits limits = {});

class partition_writer;

/// Opens the snapshot store on `topic` (which must exist with `partitions` partitions). Its
/// limits are cfg.limits narrowed to what the producer and the topic accept
/// (effective_limits). In transactional mode, pass the journal's partition_writer
/// (transactional_writer): snapshots and checkpoints of partition p are then written in
/// transactions of partition p's producer, so that fencing the partition fences them too.
/// Without one, they go through an idempotent producer of the store's own.
expected<std::unique_ptr<snapshot_store>> make_kafka_snapshot_store(const kafka_config& cfg,
                                                                    std::string topic,
                                                                    std::int32_t partitions,
                                                                    std::shared_ptr<partition_writer> writer = {});

} // namespace cafes
