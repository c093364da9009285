// One record of a cafes topic as one JSON object, from the wire format alone.
//
// Every object has "kind" (what the record is) and its place: "topic", "partition", "offset"
// and "key" ("key_base64" when the key is not UTF-8). A record that does not decode as what its
// topic holds is never dropped: it comes out raw (kind "raw", its headers, its value in base64)
// with an "error" naming the typed error.
#pragma once

#include "cafes/persistence/dead_letter.hpp"
#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/record.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "msgpack_json.hpp"

namespace cafes::inspect {

/// Returns {"code": "cafes:…", "message": …} of `e`.
json error_json(const error& e);

/// Returns `r` raw, with `e` as its "error": kind "raw", its place, its headers in order
/// ([{"key": …, "value": …}], a value that is not UTF-8 as "value_base64") and its value
/// in base64 ("value_base64", null for a tombstone).
json raw_json(const record& r, const error& e);

/// Returns a decoded event's object: its place, every envelope field ("id", "seq", "type",
/// "schema", "source", "event_id", "time" in RFC 3339, "command_id", "node", "epoch") and its
/// "payload" converted from msgpack.
json event_json(const record& r, const event_envelope& e, json payload);

/// Returns a record of an events topic: an event, a barrier (kind "barrier"), or raw with the
/// decoding error (the envelope's or the payload's).
json journal_record_json(const record& r);

/// Returns a record of a snapshot topic: a snapshot (its fields and its "state" converted
/// from msgpack), a checkpoint (kind "checkpoint", "checkpoint" and "epoch"), a tombstone
/// (kind "tombstone"), or raw with the decoding error.
json snapshot_record_json(const record& r);

/// Returns a record of a dead-letter topic: kind "dead_letter", the letter's reasons under
/// "letter" (error, message, source topic/partition/offset, attempts, projection, time) and
/// the record the projection gave up on under "original", as journal_record_json shows it;
/// or raw with the decoding error.
json dead_letter_json(const record& r);

/// Returns `j` as one line of text. Objects are sorted by key, so equal records print alike.
std::string line(const json& j);

} // namespace cafes::inspect
