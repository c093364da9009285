// One record of a cafes topic as one JSON object, from the wire format alone.
#include "render.hpp"

#include "cafes/persistence/journal.hpp"

namespace cafes::inspect {

namespace {

/// The fields every object starts with: what it is and where it sits.
json place(std::string_view kind, const record& r) {
  json j{{"kind", kind}, {"topic", r.topic}, {"partition", r.partition.value()}, {"offset", r.off.value()}};
  put_bytes(j, "key", r.key);
  return j;
}

} // namespace

json error_json(const error& e) { return json{{"code", code_of(e)}, {"message", e.message}}; }

json raw_json(const record& r, const error& e) {
  auto j = place("raw", r);
  auto hs = json::array();
  for (auto& h : r.headers) {
    json one;
    put_bytes(one, "key", h.key);
    put_bytes(one, "value", h.value);
    hs.push_back(std::move(one));
  }
  j["headers"] = std::move(hs);
  j["value_base64"] = r.value ? json(base64(*r.value)) : json(nullptr);
  j["error"] = error_json(e);
  return j;
}

json event_json(const record& r, const event_envelope& e, json payload) {
  auto j = place("event", r);
  j["id"] = e.id.str();
  j["seq"] = e.seq.value();
  j["type"] = e.type;
  j["schema"] = e.schema_version;
  j["source"] = e.source;
  j["event_id"] = e.event_id;
  j["time"] = format_rfc3339(e.time_ms);
  j["command_id"] = e.command_id;
  j["node"] = e.writer_node;
  j["epoch"] = e.writer_epoch;
  j["payload"] = std::move(payload);
  return j;
}

json journal_record_json(const record& r) {
  if (r.key == barrier_key)
    return place("barrier", r);
  auto e = decode_event(r);
  if (!e)
    return raw_json(r, e.error());
  auto payload = msgpack_to_json(e->payload);
  if (!payload)
    return raw_json(r, error{payload.error().code, payload.error().message + " (payload at " + where(r) + ")"});
  return event_json(r, *e, std::move(*payload));
}

json snapshot_record_json(const record& r) {
  if (r.key == checkpoint_key) {
    auto m = decode_checkpoint(r);
    if (!m)
      return raw_json(r, m.error());
    auto j = place("checkpoint", r);
    j["checkpoint"] = m->checkpoint.value();
    j["epoch"] = m->epoch;
    return j;
  }
  if (!r.value)
    return place("tombstone", r);
  auto s = decode_snapshot(r);
  if (!s)
    return raw_json(r, s.error());
  auto state = msgpack_to_json(s->state);
  if (!state)
    return raw_json(r, error{state.error().code, state.error().message + " (state at " + where(r) + ")"});
  auto j = place("snapshot", r);
  j["id"] = s->id.str();
  j["seq"] = s->seq.value();
  j["journal_offset"] = s->journal_offset.value();
  j["state_type"] = s->state_type;
  j["state_version"] = s->state_version;
  j["state"] = std::move(*state);
  return j;
}

json dead_letter_json(const record& r) {
  auto d = decode_dead_letter(r);
  if (!d)
    return raw_json(r, d.error());
  auto j = place("dead_letter", r);
  j["letter"] = json{
    {"error", d->error},
    {"message", d->message},
    {"source", json{{"topic", d->original.topic},
                    {"partition", d->original.partition.value()},
                    {"offset", d->original.off.value()}}},
    {"attempts", d->attempts},
    {"projection", d->projection},
    {"time", format_rfc3339(d->time_ms)},
  };
  j["original"] = journal_record_json(d->original);
  return j;
}

std::string line(const json& j) {
  // Every string put in was checked to be UTF-8 (or put as base64); replacing is a backstop.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace cafes::inspect
