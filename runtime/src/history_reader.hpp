// Reading one aggregate's past from the journal and the snapshot store (internal).
#pragma once

#include <any>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "cafes/actors/ops.hpp"
#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "cafes/runtime/history.hpp"

namespace cafes::detail {

/// The stores and the type of one hosted aggregate type.
struct history_source {
  journal& events;
  snapshot_store& snapshots;
  const aggregate_ops& ops;
};

/// The state of aggregate `id` after its event `seq` (seq > 0), or, when `time_ms` is set, after
/// its last event at or before it (seq is then ignored). node::state_at documents the errors.
expected<std::any> read_state_at(const history_source& src, std::string_view id, std::uint64_t seq,
                                 std::optional<std::int64_t> time_ms);

/// Every event of aggregate `id`, decoded and upcast, with its metadata.
expected<std::vector<std::pair<event_metadata, std::any>>> read_history(const history_source& src,
                                                                         std::string_view id);

} // namespace cafes::detail
