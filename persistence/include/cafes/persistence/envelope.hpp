// The event envelope and its codec to and from Kafka records (CloudEvents Kafka binary binding).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/record.hpp"
#include "cafes/persistence/types.hpp"

namespace cafes {

/// The version of the envelope layout that this build writes (header ce_cafesenvelope).
inline constexpr std::uint32_t envelope_version = 1;
/// The default bound on one encoded event (value plus key plus headers), in bytes.
inline constexpr std::size_t default_max_event_bytes = 1 << 20;

/// The header names of the wire format. docs/wire-format.md describes each one.
namespace hdr {
/// The CloudEvents spec version, cloudevents_specversion.
inline constexpr std::string_view specversion = "ce_specversion";
/// The event's id, unique; cafes writes "<aggregate id>/<seq>".
inline constexpr std::string_view id = "ce_id";
/// The registered event type name (never a C++ type name).
inline constexpr std::string_view type = "ce_type";
/// The event's source, a URI reference.
inline constexpr std::string_view source = "ce_source";
/// The aggregate id; equal to the record key.
inline constexpr std::string_view subject = "ce_subject";
/// RFC 3339 UTC time with milliseconds.
inline constexpr std::string_view time = "ce_time";
/// The payload's content type, msgpack_content_type.
inline constexpr std::string_view content_type = "content-type";
/// The per-aggregate sequence number, decimal, from 1.
inline constexpr std::string_view seq = "ce_cafesseq";
/// The schema version of the event type, decimal.
inline constexpr std::string_view schema = "ce_cafesschema";
/// The envelope layout version, envelope_version.
inline constexpr std::string_view envelope = "ce_cafesenvelope";
/// The client's command id that caused the event; optional.
inline constexpr std::string_view causation = "ce_causationid";
/// The name of the node that wrote the event.
inline constexpr std::string_view node = "ce_cafesnode";
/// The ownership epoch of the partition's writer, decimal.
inline constexpr std::string_view epoch = "ce_cafesepoch";
} // namespace hdr

/// The CloudEvents spec version that cafes writes (header ce_specversion).
inline constexpr std::string_view cloudevents_specversion = "1.0";
/// The content type of every payload (header content-type).
inline constexpr std::string_view msgpack_content_type = "application/msgpack";

/// One journaled event and its metadata.
struct event_envelope {
  aggregate_id id;               ///< record key and ce_subject
  seq_nr seq{0};                 ///< per-aggregate sequence number, from 1, no gaps
  std::string type;              ///< registered event type name (ce_type)
  std::uint32_t schema_version = 1; ///< version of the event type's schema
  std::string source;            ///< ce_source, "/cafes/<namespace>/<aggregate>"
  std::string event_id;          ///< ce_id; "<id>/<seq>" when left empty
  std::int64_t time_ms = 0;      ///< ce_time as milliseconds since the Unix epoch; 0 = now
  std::string command_id;        ///< the command that caused it (causation id), may be empty
  std::string writer_node;       ///< the node that wrote it
  std::uint64_t writer_epoch = 0; ///< the writer's ownership epoch
  std::string payload;           ///< the event itself: a msgpack map

  /// Compares every field.
  friend bool operator==(const event_envelope&, const event_envelope&) = default;
};

/// What Kafka adds to a record's key, value and header bytes on the wire, at most: the
/// record batch header (61 bytes), the record's own varints (36) and two varints per header.
/// A record that fits message.max.bytes (producer) and max.message.bytes (topic) minus this
/// reserve passes both, alone in its batch.
inline constexpr std::size_t record_framing_bytes = 256;

/// Limits that the codec enforces. `max_event_bytes` bounds an event's record (check_event)
/// and a snapshot's record (check_snapshot) alike: key, value and header bytes.
struct codec_limits {
  /// The bound on one record: key, value and header bytes.
  std::size_t max_event_bytes = default_max_event_bytes;
};

/// Checks what encode_event checks (fields, payload, size limit) without building the record.
expected<void> check_event(const event_envelope& e, std::string_view topic, const codec_limits& limits = {});

/// Encodes an envelope into a record for `topic`. Fails with invalid_aggregate_id,
/// reserved_aggregate_id, invalid_argument (seq 0, empty type, payload not a msgpack map)
/// or event_too_large. The partition is left for the caller.
expected<record> encode_event(const event_envelope& e, std::string topic,
                              const codec_limits& limits = {});

/// Encodes a batch of envelopes for `topic`, each in its aggregate's partition of
/// `partitions` (partition_for its id). Fails, for the whole batch, as encode_event does.
expected<std::vector<record>> encode_batch(const std::vector<event_envelope>& batch, const std::string& topic,
                                           std::int32_t partitions, const codec_limits& limits = {});

/// Decodes a record read from a journal topic. Fails with missing_header, bad_header,
/// unsupported_version or malformed_record; the message names topic, partition and offset.
expected<event_envelope> decode_event(const record& r);
/// Decodes a record read in place (the same rules; copies only the envelope's fields).
expected<event_envelope> decode_event(const record_view& r);

/// Formats milliseconds since the epoch as RFC 3339 UTC ("2026-11-26T06:30:00.123Z").
std::string format_rfc3339(std::int64_t ms);
/// Parses an RFC 3339 timestamp with a 'Z' or numeric offset; nullopt-like error on failure.
expected<std::int64_t> parse_rfc3339(std::string_view s);

/// Checks that `bytes` is one complete msgpack map and nothing else, within size limits
/// derived from its length, so that hostile input cannot make the decoder allocate much.
expected<void> check_msgpack_map(std::string_view bytes);

/// Returns "topic/partition@offset" for error messages.
std::string where(const record& r);
/// Returns "topic/partition@offset" for error messages.
std::string where(const record_view& r);

} // namespace cafes
