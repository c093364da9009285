// Reading one aggregate's past: its snapshot, then its events in its journal partition.
#include "history_reader.hpp"

#include "cafes/actors/errc.hpp"
#include "cafes/persistence/partitioner.hpp"

namespace cafes::detail {

namespace {

/// Events read per journal request.
constexpr std::size_t chunk_events = 1000;

std::string name_of(const history_source& src, std::string_view id) {
  return "aggregate '" + std::string{id} + "' of type '" + std::string{src.ops.name()} + "'";
}

std::string at(const journal& j, partition_id p, offset off) {
  return " at " + j.topic() + "/" + std::to_string(p.value()) + "@" + std::to_string(off.value());
}

/// Reads partition `p` from `from` on and calls `f(event, offset)` for each event of `id`
/// until it returns false or the partition ends. The other aggregates' events are skipped.
template <class F>
expected<void> walk(journal& j, partition_id p, offset from, std::string_view id, F f) {
  for (;;) {
    auto c = j.read(p, from, chunk_events);
    if (!c)
      return std::move(c).error();
    for (std::size_t i = 0; i < c->events.size(); ++i)
      if (c->events[i].id.str() == id)
        if (!f(c->events[i], c->offsets[i]))
          return {};
    if (c->end || c->next.value() <= from.value())
      return {};
    from = c->next;
  }
}

/// Checks that `e` follows seq `last` of its aggregate: no gap, no repeat.
expected<void> check_next(const journal& j, partition_id p, const event_envelope& e, offset off,
                          std::uint64_t last) {
  if (e.seq.value() == last + 1)
    return {};
  if (e.seq.value() <= last)
    return cafes::error{errc::sequence_repeat, "aggregate '" + e.id.str() + "' repeats seq " +
                                                   std::to_string(e.seq.value()) + at(j, p, off)};
  return cafes::error{errc::sequence_gap, "aggregate '" + e.id.str() + "' jumps from seq " + std::to_string(last) +
                                              " to " + std::to_string(e.seq.value()) + at(j, p, off)};
}

expected<std::any> decode(const history_source& src, partition_id p, const event_envelope& e, offset off) {
  auto typed = src.ops.decode_event(e);
  if (!typed)
    return cafes::error{typed.error().code, typed.error().message + at(src.events, p, off)};
  return typed;
}

} // namespace

expected<std::any> read_state_at(const history_source& src, std::string_view id_text, std::uint64_t seq,
                                 std::optional<std::int64_t> time_ms) {
  auto id = aggregate_id::make(std::string{id_text});
  if (!id)
    return std::move(id).error();
  if (!time_ms && seq == 0)
    return cafes::error{errc::invalid_argument, "seq 0 names no event: the first event of an aggregate has seq 1"};
  auto& j = src.events;
  const auto p = partition_for(id->str(), j.partitions());
  auto wanted = [&](const event_envelope& e) { return time_ms ? e.time_ms <= *time_ms : e.seq.value() <= seq; };

  // The snapshot, if it is not past what is asked for; else the events from the start.
  std::any state = src.ops.initial_state();
  std::uint64_t cur = 0;
  offset from{0};
  auto snap = src.snapshots.load(*id);
  if (!snap)
    return std::move(snap).error();
  if (*snap && (*snap)->seq.value() > 0) {
    const auto& s = **snap;
    bool usable = !time_ms && s.seq.value() <= seq;
    if (time_ms) { // its event's time decides: read that one event
      auto c = j.read(p, s.journal_offset, 1);
      if (!c)
        return std::move(c).error();
      usable = !c->events.empty() && c->offsets[0] == s.journal_offset && c->events[0].id == *id &&
               c->events[0].seq == s.seq && wanted(c->events[0]);
    }
    if (usable)
      if (auto st = src.ops.decode_state(s.state_type, s.state_version, s.state)) { // else: from the start
        state = std::move(*st);
        cur = s.seq.value();
        from = offset{s.journal_offset.value() + 1};
      }
  }
  if (!time_ms && cur == seq)
    return state;

  std::optional<cafes::error> err;
  bool later = false;         // an event past what is asked for was seen
  const std::uint64_t known = cur; // covered by the snapshot
  auto ok = walk(j, p, from, id->str(), [&](const event_envelope& e, offset off) {
    if (e.seq.value() <= known)
      return true; // skipped, as recovery skips it
    if (auto next = check_next(j, p, e, off, cur); !next) {
      err = std::move(next).error();
      return false;
    }
    if (!wanted(e)) {
      later = true;
      return false;
    }
    auto typed = decode(src, p, e, off);
    if (!typed) {
      err = std::move(typed).error();
      return false;
    }
    try {
      src.ops.apply(state, *typed);
    } catch (const std::exception& ex) {
      err = cafes::error{actor_errc::handler_failed, "apply threw on the event" + at(j, p, off) + ": " + ex.what()};
      return false;
    }
    cur = e.seq.value();
    return time_ms || cur < seq;
  });
  if (!ok)
    return std::move(ok).error();
  if (err)
    return std::move(*err);
  if (cur == 0 && !later)
    return cafes::error{actor_errc::no_history, name_of(src, id_text) + " has no event in " + j.topic()};
  if (time_ms) {
    if (cur == 0)
      return cafes::error{actor_errc::out_of_history, name_of(src, id_text) + " has no event at or before " +
                                                          format_rfc3339(*time_ms) + ": its first is later"};
    return state;
  }
  if (cur < seq)
    return cafes::error{actor_errc::out_of_history, name_of(src, id_text) + " has " + std::to_string(cur) +
                                                        " events: seq " + std::to_string(seq) + " is beyond its last"};
  return state;
}

expected<std::vector<std::pair<event_metadata, std::any>>> read_history(const history_source& src,
                                                                         std::string_view id_text) {
  auto id = aggregate_id::make(std::string{id_text});
  if (!id)
    return std::move(id).error();
  auto& j = src.events;
  const auto p = partition_for(id->str(), j.partitions());
  std::vector<std::pair<event_metadata, std::any>> out;
  std::optional<cafes::error> err;
  std::uint64_t cur = 0;
  auto ok = walk(j, p, offset{0}, id->str(), [&](event_envelope& e, offset off) {
    if (auto next = check_next(j, p, e, off, cur); !next) {
      err = std::move(next).error();
      return false;
    }
    auto typed = decode(src, p, e, off);
    if (!typed) {
      err = std::move(typed).error();
      return false;
    }
    cur = e.seq.value();
    event_metadata m;
    m.seq = e.seq;
    m.type = std::move(e.type);
    m.schema_version = e.schema_version;
    m.time_ms = e.time_ms;
    m.command_id = std::move(e.command_id);
    m.writer_node = std::move(e.writer_node);
    m.epoch = e.writer_epoch;
    m.partition = p;
    m.off = off;
    out.emplace_back(std::move(m), std::move(*typed));
    return true;
  });
  if (!ok)
    return std::move(ok).error();
  if (err)
    return std::move(*err);
  if (out.empty())
    return cafes::error{actor_errc::no_history, name_of(src, id_text) + " has no event in " + j.topic()};
  return out;
}

} // namespace cafes::detail
