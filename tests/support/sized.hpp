// Events and snapshots of an exact encoded size, for tests of the size limits.
#pragma once

#include <string>

#include <msgpack.hpp>

#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "journal_contract.hpp"

namespace cafes::test {

/// Returns what a record takes against the limits: key, value and header bytes.
inline std::size_t record_bytes(const record& r) {
  auto n = r.key.size() + (r.value ? r.value->size() : 0);
  for (auto& h : r.headers)
    n += h.key.size() + h.value.size();
  return n;
}

/// Returns a msgpack map whose note has `n` bytes.
inline std::string payload_with_note(std::size_t n) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, sample_event{1, std::string(n, 'x')});
  return {buf.data(), buf.size()};
}

/// Returns make_event(id, seq) grown to exactly `bytes` as encoded for `topic` (at least
/// 70 KB, so that the note's msgpack header no longer grows with it).
inline event_envelope event_of_size(const std::string& id, std::uint64_t seq, std::size_t bytes,
                                    const std::string& topic) {
  auto e = make_event(id, seq);
  constexpr std::size_t probe = 1 << 16;
  e.payload = payload_with_note(probe);
  const auto base = record_bytes(encode_event(e, topic, {1 << 30}).value());
  e.payload = payload_with_note(probe + bytes - base);
  return e;
}

/// Returns a snapshot of `id` whose record takes exactly `bytes` (at least 70 KB).
inline snapshot snapshot_of_size(const std::string& id, std::size_t bytes) {
  snapshot s{aggregate_id::make(id).value(), seq_nr{3}, offset{30}, "account", 1, payload_with_note(1 << 16)};
  const auto base = snapshot_record_bytes(s);
  s.state = payload_with_note((1 << 16) + bytes - base);
  return s;
}

} // namespace cafes::test
