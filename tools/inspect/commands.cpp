// The subcommands of cafes-inspect: each reads what it needs and prints JSON lines.
#include "commands.hpp"

#include <algorithm>
#include <map>
#include <vector>

#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "render.hpp"

namespace cafes::inspect {

namespace {

constexpr std::string_view kinds[] = {"events", "snapshots", "dlq"};

/// Offsets [from, to) of one partition to read.
struct span {
  std::int32_t partition;
  std::int64_t from;
  std::int64_t to;
};

/// Returns the spans of `topic` (of `partitions`) that `r` selects, checked against the
/// partitions' offsets: a partition that does not exist, or an offset outside the log, is
/// invalid_argument naming the topic and what it has.
expected<std::vector<span>> plan(source& s, const std::string& topic, std::int32_t partitions, const range_choice& r) {
  if (r.partition && (*r.partition < 0 || *r.partition >= partitions))
    return error{errc::invalid_argument, "partition " + std::to_string(*r.partition) + " is not one of topic " + topic +
                                             "'s " + std::to_string(partitions) + " partitions (0 to " +
                                             std::to_string(partitions - 1) + ")"};
  if ((r.from || r.to) && !r.partition)
    return error{errc::invalid_argument, "--from and --to need --partition"};
  std::vector<span> out;
  for (std::int32_t p = 0; p < partitions; ++p) {
    if (r.partition && p != *r.partition)
      continue;
    auto wm = s.offsets(topic, p);
    if (!wm)
      return std::move(wm).error();
    const auto where = topic + "/" + std::to_string(p);
    span sp{p, r.from.value_or(wm->low), r.to ? *r.to + 1 : wm->end};
    if (r.from && (*r.from < wm->low || *r.from > wm->end))
      return error{errc::invalid_argument, "--from " + std::to_string(*r.from) + " is outside " + where +
                                               ", whose offsets are " + std::to_string(wm->low) + " to " +
                                               std::to_string(wm->end) + " (the end)"};
    if (r.to && *r.to < sp.from)
      return error{errc::invalid_argument, "--to " + std::to_string(*r.to) + " is before --from " + std::to_string(sp.from)};
    sp.to = std::min(sp.to, wm->end);
    out.push_back(sp);
  }
  return out;
}

/// Checks an aggregate id given on the command line.
expected<void> check_id(const std::string& id) {
  if (auto ok = aggregate_id::make(id); !ok)
    return error{errc::invalid_argument, "--id: " + ok.error().to_string()};
  return {};
}

/// Prints one line.
void print(std::ostream& out, const json& j) { out << line(j) << '\n'; }

} // namespace

expected<std::string> topic_choice::resolve(std::string_view kind, bool own) const {
  if (!topic.empty()) {
    if (own)
      return topic;
    for (auto k : kinds) {
      const auto suffix = "." + std::string{k};
      if (topic.size() > suffix.size() && topic.ends_with(suffix))
        return topic.substr(0, topic.size() - suffix.size()) + "." + std::string{kind};
    }
    return error{errc::invalid_argument, "--topic " + topic + " does not end in .events, .snapshots or .dlq: name " +
                                             "the type with --namespace and --type instead"};
  }
  if (ns.empty() || type.empty())
    return error{errc::invalid_argument, "name the topic: --topic, or --namespace and --type"};
  auto names = topic_names::of(ns, type);
  return kind == "events" ? names.events : kind == "snapshots" ? names.snapshots : names.dlq;
}

// -- events ---------------------------------------------------------------------------------

expected<void> run_events(source& s, const events_options& o, std::ostream& out) {
  auto topic = o.t.resolve("events", true);
  if (!topic)
    return std::move(topic).error();
  auto partitions = s.partitions(*topic);
  if (!partitions)
    return std::move(partitions).error();
  auto range = o.range;
  if (!o.id.empty()) {
    if (auto ok = check_id(o.id); !ok)
      return ok;
    range.partition = partition_for(o.id, *partitions).value(); // its partition alone
  }
  auto spans = plan(s, *topic, *partitions, range);
  if (!spans)
    return std::move(spans).error();
  for (auto& sp : *spans) {
    auto ok = s.read(*topic, sp.partition, sp.from, sp.to, [&](record&& r) {
      if (!o.id.empty() && r.key != o.id)
        return;
      if (o.skip_barriers && r.key == barrier_key)
        return;
      print(out, journal_record_json(r));
    });
    if (!ok)
      return ok;
  }
  return {};
}

// -- snapshots ------------------------------------------------------------------------------

expected<void> run_snapshots(source& s, const snapshots_options& o, std::ostream& out) {
  auto topic = o.t.resolve("snapshots", true);
  if (!topic)
    return std::move(topic).error();
  auto partitions = s.partitions(*topic);
  if (!partitions)
    return std::move(partitions).error();
  range_choice range;
  range.partition = o.partition;
  if (!o.id.empty()) {
    if (auto ok = check_id(o.id); !ok)
      return ok;
    range.partition = partition_for(o.id, *partitions).value();
  }
  auto spans = plan(s, *topic, *partitions, range);
  if (!spans)
    return std::move(spans).error();
  for (auto& sp : *spans) {
    // Latest per key, as a reader of the compacted topic keeps it: the last record of each
    // key, a tombstone dropping the key; printed in offset order.
    std::map<std::string, record> latest;
    auto ok = s.read(*topic, sp.partition, sp.from, sp.to, [&](record&& r) {
      if (!o.id.empty() && r.key != o.id)
        return;
      if (o.all)
        return print(out, snapshot_record_json(r));
      if (!r.value && r.key != checkpoint_key)
        latest.erase(r.key);
      else
        latest.insert_or_assign(r.key, std::move(r));
    });
    if (!ok)
      return ok;
    std::vector<const record*> kept;
    for (auto& [k, r] : latest)
      kept.push_back(&r);
    std::sort(kept.begin(), kept.end(), [](auto* a, auto* b) { return a->off < b->off; });
    for (auto* r : kept)
      print(out, snapshot_record_json(*r));
  }
  return {};
}

// -- state ----------------------------------------------------------------------------------

expected<void> run_state(source& s, const state_options& o, std::ostream& out) {
  if (auto ok = check_id(o.id); !ok)
    return ok;
  if (o.at_seq.has_value() == o.at_time.has_value())
    return error{errc::invalid_argument, "give one of --at-seq and --at-time"};
  if (o.at_seq && *o.at_seq < 1)
    return error{errc::invalid_argument,
                 "--at-seq " + std::to_string(*o.at_seq) + ": sequence numbers start at 1"};
  std::optional<std::int64_t> at_ms;
  if (o.at_time) {
    auto t = parse_rfc3339(*o.at_time);
    if (!t)
      return error{errc::invalid_argument,
                   "--at-time '" + *o.at_time + "' is not an RFC 3339 time such as 2026-11-26T06:30:00.123Z"};
    at_ms = *t;
  }
  auto events = o.t.resolve("events", true);
  if (!events)
    return std::move(events).error();
  auto snapshots = o.t.resolve("snapshots", false);
  if (!snapshots)
    return std::move(snapshots).error();
  auto partitions = s.partitions(*events);
  if (!partitions)
    return std::move(partitions).error();
  auto snap_partitions = s.partitions(*snapshots);
  if (!snap_partitions)
    return std::move(snap_partitions).error();

  // The aggregate's records in its partition, in offset order.
  struct item {
    record r;
    std::optional<event_envelope> e; // set if it decodes
  };
  std::vector<item> items;
  const auto p = partition_for(o.id, *partitions).value();
  auto wm = s.offsets(*events, p);
  if (!wm)
    return std::move(wm).error();
  auto ok = s.read(*events, p, wm->low, wm->end, [&](record&& r) {
    if (r.key != o.id)
      return;
    auto e = decode_event(r);
    items.push_back({std::move(r), e ? std::optional{std::move(*e)} : std::nullopt});
  });
  if (!ok)
    return ok;
  std::uint64_t last_seq = 0;
  for (auto& it : items)
    if (it.e)
      last_seq = std::max(last_seq, it.e->seq.value());

  // The point: a sequence number, and the offset of its event (-1: before the first event).
  std::uint64_t target = 0;
  std::int64_t target_off = -1;
  if (o.at_seq) {
    if (last_seq == 0)
      return error{errc::invalid_argument, o.id + " has no events in " + *events};
    if (static_cast<std::uint64_t>(*o.at_seq) > last_seq)
      return error{errc::invalid_argument, "--at-seq " + std::to_string(*o.at_seq) + " is beyond " + o.id +
                                               "'s last event, seq " + std::to_string(last_seq)};
    target = static_cast<std::uint64_t>(*o.at_seq);
    for (auto& it : items)
      if (it.e && it.e->seq.value() <= target)
        target_off = it.r.off.value();
  } else {
    for (auto& it : items)
      if (it.e && it.e->time_ms <= *at_ms) {
        target = it.e->seq.value();
        target_off = it.r.off.value();
      }
  }

  // The nearest snapshot at or before the point (the latest record among equals).
  std::optional<record> snap_rec;
  std::optional<snapshot> snap;
  const auto sp = partition_for(o.id, *snap_partitions).value();
  auto swm = s.offsets(*snapshots, sp);
  if (!swm)
    return std::move(swm).error();
  ok = s.read(*snapshots, sp, swm->low, swm->end, [&](record&& r) {
    if (r.key != o.id || !r.value)
      return;
    auto d = decode_snapshot(r);
    if (!d || d->seq.value() > target || (snap && d->seq < snap->seq))
      return;
    snap = std::move(*d);
    snap_rec = std::move(r);
  });
  if (!ok)
    return ok;

  // What follows it up to the point: its events, and any record of the aggregate between
  // them that does not decode (the runtime would stop there).
  const std::uint64_t from_seq = snap ? snap->seq.value() : 0;
  const std::int64_t from_off = snap ? snap->journal_offset.value() : -1;
  std::vector<const item*> replay;
  for (auto& it : items) {
    const bool in = it.e ? it.e->seq.value() > from_seq && it.e->seq.value() <= target
                         : it.r.off.value() > from_off && it.r.off.value() < target_off;
    if (in)
      replay.push_back(&it);
  }

  json head{{"kind", "state"},           {"topic", *events},
            {"partition", p},            {"id", o.id},
            {"at_seq", target},          {"last_seq", last_seq},
            {"snapshot_seq", nullptr},   {"replay", replay.size()}};
  if (o.at_time)
    head["at_time"] = *o.at_time;
  if (snap)
    head["snapshot_seq"] = snap->seq.value();
  print(out, head);
  if (snap_rec)
    print(out, snapshot_record_json(*snap_rec));
  for (auto* it : replay)
    print(out, journal_record_json(it->r));
  return {};
}

// -- partition ------------------------------------------------------------------------------

namespace {

/// Returns the last event of topic/p (its offset, id, seq, node, epoch and time), or null if
/// the partition holds none. Reads backwards in growing windows from the end: the last
/// records may be barriers or records that do not decode.
expected<json> last_writer(source& s, const std::string& topic, std::int32_t p, const watermarks& wm) {
  std::int64_t hi = wm.end;
  std::int64_t window = 16;
  while (hi > wm.low) {
    const auto from = std::max(wm.low, hi - window);
    json found = nullptr;
    auto ok = s.read(topic, p, from, hi, [&](record&& r) {
      if (r.key == barrier_key)
        return;
      if (auto e = decode_event(r))
        found = json{{"offset", r.off.value()},   {"id", e->id.str()},  {"seq", e->seq.value()},
                     {"node", e->writer_node},    {"epoch", e->writer_epoch},
                     {"time", format_rfc3339(e->time_ms)}};
    });
    if (!ok)
      return std::move(ok).error();
    if (!found.is_null())
      return found;
    hi = from;
    window *= 4;
  }
  return json(nullptr);
}

} // namespace

expected<void> run_partition(source& s, const partition_options& o, std::ostream& out) {
  auto events = o.t.resolve("events", true);
  if (!events)
    return std::move(events).error();
  auto snapshots = o.t.resolve("snapshots", false);
  if (!snapshots)
    return std::move(snapshots).error();
  auto partitions = s.partitions(*events);
  if (!partitions)
    return std::move(partitions).error();
  auto snap_partitions = s.partitions(*snapshots);
  if (!snap_partitions)
    return std::move(snap_partitions).error();
  range_choice range;
  range.partition = o.partition;
  auto spans = plan(s, *events, *partitions, range);
  if (!spans)
    return std::move(spans).error();
  for (auto& sp : *spans) {
    const auto p = sp.partition;
    auto wm = s.offsets(*events, p);
    if (!wm)
      return std::move(wm).error();
    json j{{"kind", "partition"}, {"topic", *events},   {"partition", p},       {"low", wm->low},
           {"end", wm->end},      {"checkpoint", nullptr}, {"epoch", nullptr}, {"lag", wm->end - wm->low}};
    // The mark: the last checkpoint record of partition p of the snapshot topic.
    if (p < *snap_partitions) {
      auto swm = s.offsets(*snapshots, p);
      if (!swm)
        return std::move(swm).error();
      std::optional<record> mark;
      auto ok = s.read(*snapshots, p, swm->low, swm->end, [&](record&& r) {
        if (r.key == checkpoint_key)
          mark = std::move(r);
      });
      if (!ok)
        return ok;
      if (mark) {
        if (auto m = decode_checkpoint(*mark)) {
          j["checkpoint"] = m->checkpoint.value();
          j["epoch"] = m->epoch;
          j["lag"] = wm->end - m->checkpoint.value();
        } else {
          j["checkpoint_error"] = error_json(m.error());
        }
      }
    }
    auto writer = last_writer(s, *events, p, *wm);
    if (!writer)
      return std::move(writer).error();
    j["last_writer"] = std::move(*writer);
    print(out, j);
  }
  return {};
}

// -- dlq ------------------------------------------------------------------------------------

expected<void> run_dlq(source& s, const dlq_options& o, std::ostream& out) {
  auto topic = o.t.resolve("dlq", true);
  if (!topic)
    return std::move(topic).error();
  auto partitions = s.partitions(*topic);
  if (!partitions)
    return std::move(partitions).error();
  auto spans = plan(s, *topic, *partitions, o.range);
  if (!spans)
    return std::move(spans).error();
  for (auto& sp : *spans) {
    auto ok = s.read(*topic, sp.partition, sp.from, sp.to, [&](record&& r) { print(out, dead_letter_json(r)); });
    if (!ok)
      return ok;
  }
  return {};
}

} // namespace cafes::inspect
