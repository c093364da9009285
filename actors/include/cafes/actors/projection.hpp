// Projections of aggregate types: typed sources, typed visits, and the state topic.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "cafes/actors/ops.hpp"
#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/projection.hpp"
#include "cafes/persistence/snapshot_store.hpp"

namespace cafes {

/// Returns the source of a projection that reads the events of `ops`'s aggregate type in
/// namespace `ns`, decoded and upcast to their C++ types.
projection_source source_of(std::string_view ns, std::shared_ptr<const aggregate_ops> ops);

/// Returns the source of a projection that reads aggregate type A's events in namespace `ns`.
template <class A>
projection_source source_of(std::string_view ns) {
  return source_of(ns, make_ops<A>());
}

/// Calls `f` with the event as its C++ type (one of A::events) and returns true, or returns
/// false if the event is none of them (another aggregate type's).
template <class A, class F>
bool visit_event(const projected_event& e, F&& f) {
  return detail::visit_any<typename A::events>(e.value, std::forward<F>(f));
}

/// Starts the projection that keeps the state topic of `ops`'s aggregate type: compacted, one
/// record per aggregate holding its latest state, written exactly once (the events' offsets
/// commit in the same transactions). Its records have the snapshot layout (decode_snapshot;
/// snapshot::journal_offset is the offset of the last event in the state), in the partition
/// of the aggregate's events. The topic (topic_names::state) must exist: ensure_topics with
/// state_topic_spec. Options left empty
/// default: name `<ns>.<aggregate>.state-projection`, the one source.
expected<std::unique_ptr<projection>> start_state_topic(const kafka_config& cfg, std::string_view ns,
                                                        std::shared_ptr<const aggregate_ops> ops,
                                                        projection_options opts = {});

/// start_state_topic for aggregate type A.
template <class A>
expected<std::unique_ptr<projection>> start_state_topic(const kafka_config& cfg, std::string_view ns,
                                                        projection_options opts = {}) {
  return start_state_topic(cfg, ns, make_ops<A>(), std::move(opts));
}

/// Decodes a state topic's record into aggregate A's state (nullopt for a tombstone).
template <class A>
expected<typename A::state> decode_state_record(const record& r, const aggregate_ops& ops) {
  auto s = decode_snapshot(r);
  if (!s)
    return std::move(s).error();
  auto st = ops.decode_state(s->state_type, s->state_version, s->state);
  if (!st)
    return std::move(st).error();
  return std::any_cast<typename A::state>(std::move(*st));
}

} // namespace cafes
