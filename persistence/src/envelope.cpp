// The event envelope codec: envelope <-> Kafka record with CloudEvents binary-mode headers.
#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "parse.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

#include <msgpack.hpp>

namespace cafes {

namespace {

using detail::parse_int;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

std::string where(const record& r) {
  return r.topic + "/" + std::to_string(r.partition.value()) + "@" + std::to_string(r.off.value());
}

std::string where(const record_view& r) {
  return std::string{r.topic} + "/" + std::to_string(r.partition.value()) + "@" + std::to_string(r.off.value());
}

std::string format_rfc3339(std::int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  auto millis = static_cast<int>(ms - static_cast<std::int64_t>(secs) * 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

expected<std::int64_t> parse_rfc3339(std::string_view s) {
  auto bad = [&] { return error{errc::bad_header, "not an RFC 3339 time: '" + std::string{s} + "'"}; };
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':')
    return bad();
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!parse_int(s.substr(0, 4), y) || !parse_int(s.substr(5, 2), mo) ||
      !parse_int(s.substr(8, 2), d) || !parse_int(s.substr(11, 2), h) ||
      !parse_int(s.substr(14, 2), mi) || !parse_int(s.substr(17, 2), sec))
    return bad();
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return bad();
  std::size_t i = 19;
  std::int64_t millis = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (digits < 3)
        millis = millis * 10 + (s[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0)
      return bad();
    for (int k = digits; k < 3; ++k)
      millis *= 10;
  }
  std::int64_t offset_min = 0;
  auto rest = s.substr(i);
  if (rest == "Z" || rest == "z") {
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int oh = 0, om = 0;
    if (!parse_int(rest.substr(1, 2), oh) || !parse_int(rest.substr(4, 2), om) || oh > 23 || om > 59)
      return bad();
    offset_min = (oh * 60 + om) * (rest[0] == '+' ? 1 : -1);
  } else {
    return bad();
  }
  std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
  return secs * 1000 + millis;
}

namespace {

// Walks msgpack without building objects (no allocation per element): checks that the top
// is a map and that nesting stays shallow.
struct map_checker : msgpack::null_visitor {
  int depth = 0;
  bool first = true;
  bool top_map = false;
  bool too_deep = false;
  void top(bool is_map) {
    if (first) {
      first = false;
      top_map = is_map;
    }
  }
  bool visit_nil() { return top(false), true; }
  bool visit_boolean(bool) { return top(false), true; }
  bool visit_positive_integer(uint64_t) { return top(false), true; }
  bool visit_negative_integer(int64_t) { return top(false), true; }
  bool visit_float32(float) { return top(false), true; }
  bool visit_float64(double) { return top(false), true; }
  bool visit_str(const char*, uint32_t) { return top(false), true; }
  bool visit_bin(const char*, uint32_t) { return top(false), true; }
  bool visit_ext(const char*, uint32_t) { return top(false), true; }
  bool start_array(uint32_t) {
    top(false);
    return (too_deep = ++depth > 64) == false;
  }
  bool end_array() { return --depth, true; }
  bool start_map(uint32_t) {
    top(true);
    return (too_deep = ++depth > 64) == false;
  }
  bool end_map() { return --depth, true; }
};

} // namespace

expected<void> check_msgpack_map(std::string_view bytes) {
  if (bytes.empty())
    return error{errc::malformed_record, "empty value"};
  map_checker v;
  std::size_t off = 0;
  auto r = msgpack::detail::parse_imp(bytes.data(), bytes.size(), off, v);
  switch (r) {
    case msgpack::PARSE_SUCCESS:
      break;
    case msgpack::PARSE_EXTRA_BYTES:
      return error{errc::malformed_record,
                   "trailing bytes after the msgpack map (" + std::to_string(bytes.size() - off) + ")"};
    case msgpack::PARSE_CONTINUE:
      return error{errc::malformed_record, "truncated msgpack value"};
    case msgpack::PARSE_STOP_VISITOR:
      if (v.too_deep)
        return error{errc::malformed_record, "msgpack value nested deeper than 64"};
      [[fallthrough]];
    default:
      return error{errc::malformed_record, "invalid msgpack"};
  }
  if (!v.top_map)
    return error{errc::malformed_record, "value is not a msgpack map"};
  return {};
}

namespace {

std::size_t digits(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

} // namespace

expected<void> check_event(const event_envelope& e, std::string_view topic, const codec_limits& limits) {
  if (auto id = aggregate_id::make(e.id.str()); !id)
    return std::move(id).error();
  if (e.seq.value() == 0)
    return error{errc::invalid_argument, "event of '" + e.id.str() + "' has sequence number 0"};
  if (e.type.empty())
    return error{errc::invalid_argument, "event of '" + e.id.str() + "' has no type"};
  if (e.schema_version == 0)
    return error{errc::invalid_argument, "event type '" + e.type + "' has schema version 0"};
  if (auto ok = check_msgpack_map(e.payload); !ok)
    return error{errc::invalid_argument, "payload of '" + e.type + "': " + ok.error().message};
  // The size of what encode_event writes: key, value, and every header's name and value.
  constexpr std::size_t time_size = 24; // "2026-11-26T06:30:00.123Z"
  const auto& id = e.id.str();
  std::size_t size = id.size() + e.payload.size();
  size += hdr::specversion.size() + cloudevents_specversion.size();
  size += hdr::id.size() + (e.event_id.empty() ? id.size() + 1 + digits(e.seq.value()) : e.event_id.size());
  size += hdr::type.size() + e.type.size();
  size += hdr::source.size() + (e.source.empty() ? 7 + topic.size() : e.source.size());
  size += hdr::subject.size() + id.size();
  size += hdr::time.size() + time_size;
  size += hdr::content_type.size() + msgpack_content_type.size();
  size += hdr::seq.size() + digits(e.seq.value());
  size += hdr::schema.size() + digits(e.schema_version);
  size += hdr::envelope.size() + digits(envelope_version);
  size += hdr::node.size() + e.writer_node.size();
  size += hdr::epoch.size() + digits(e.writer_epoch);
  if (!e.command_id.empty())
    size += hdr::causation.size() + e.command_id.size();
  if (size > limits.max_event_bytes)
    return error{errc::event_too_large, "event '" + e.type + "' of '" + id + "' takes " + std::to_string(size) +
                                            " bytes; the limit is " + std::to_string(limits.max_event_bytes)};
  return {};
}

expected<record> encode_event(const event_envelope& e, std::string topic, const codec_limits& limits) {
  if (auto ok = check_event(e, topic, limits); !ok)
    return std::move(ok).error();
  record r;
  r.topic = std::move(topic);
  r.key = e.id.str();
  auto seq = std::to_string(e.seq.value());
  r.headers = {
    {std::string{hdr::specversion}, std::string{cloudevents_specversion}},
    {std::string{hdr::id}, e.event_id.empty() ? e.id.str() + "/" + seq : e.event_id},
    {std::string{hdr::type}, e.type},
    {std::string{hdr::source}, e.source.empty() ? "/cafes/" + r.topic : e.source},
    {std::string{hdr::subject}, e.id.str()},
    {std::string{hdr::time}, format_rfc3339(e.time_ms != 0 ? e.time_ms : now_ms())},
    {std::string{hdr::content_type}, std::string{msgpack_content_type}},
    {std::string{hdr::seq}, seq},
    {std::string{hdr::schema}, std::to_string(e.schema_version)},
    {std::string{hdr::envelope}, std::to_string(envelope_version)},
    {std::string{hdr::node}, e.writer_node},
    {std::string{hdr::epoch}, std::to_string(e.writer_epoch)},
  };
  if (!e.command_id.empty())
    r.headers.push_back({std::string{hdr::causation}, e.command_id});
  r.value = e.payload;
  return r;
}

expected<std::vector<record>> encode_batch(const std::vector<event_envelope>& batch, const std::string& topic,
                                           std::int32_t partitions, const codec_limits& limits) {
  std::vector<record> recs;
  recs.reserve(batch.size());
  for (auto& e : batch) {
    auto r = encode_event(e, topic, limits);
    if (!r)
      return std::move(r).error();
    r->partition = partition_for(r->key, partitions);
    recs.push_back(std::move(*r));
  }
  return recs;
}

expected<event_envelope> decode_event(const record& r) { return decode_event(record_view::of(r)); }

expected<event_envelope> decode_event(const record_view& r) {
  auto at = [&] { return " at " + where(r); };
  auto need = [&](std::string_view k) -> expected<std::string_view> {
    if (auto v = r.find_header(k))
      return *v;
    return error{errc::missing_header, "header '" + std::string{k} + "' is missing" + at()};
  };
  auto number = [&](std::string_view k, auto& out) -> expected<void> {
    auto v = need(k);
    if (!v)
      return std::move(v).error();
    if (!parse_int(*v, out))
      return error{errc::bad_header, "header '" + std::string{k} + "' is not a number: '" + std::string{*v} + "'" + at()};
    return {};
  };
  std::uint32_t env_version = 0;
  if (auto ok = number(hdr::envelope, env_version); !ok)
    return std::move(ok).error();
  if (env_version == 0 || env_version > envelope_version)
    return error{errc::unsupported_version,
                 "envelope version " + std::to_string(env_version) + " is not supported" + at()};
  auto spec = need(hdr::specversion);
  if (!spec)
    return std::move(spec).error();
  if (*spec != cloudevents_specversion)
    return error{errc::bad_header, "ce_specversion '" + std::string{*spec} + "' is not 1.0" + at()};
  auto ct = need(hdr::content_type);
  if (!ct)
    return std::move(ct).error();
  if (*ct != msgpack_content_type)
    return error{errc::bad_header, "content-type '" + std::string{*ct} + "' is not application/msgpack" + at()};
  event_envelope e;
  auto id = aggregate_id::make(std::string{r.key});
  if (!id)
    return error{id.error().code, id.error().message + at()};
  e.id = std::move(*id);
  auto subject = need(hdr::subject);
  if (!subject)
    return std::move(subject).error();
  if (*subject != r.key)
    return error{errc::bad_header, "ce_subject '" + std::string{*subject} + "' differs from the key" + at()};
  std::uint64_t seq = 0;
  if (auto ok = number(hdr::seq, seq); !ok)
    return std::move(ok).error();
  if (seq == 0)
    return error{errc::bad_header, "ce_cafesseq is 0" + at()};
  e.seq = seq_nr{seq};
  if (auto ok = number(hdr::schema, e.schema_version); !ok)
    return std::move(ok).error();
  if (e.schema_version == 0)
    return error{errc::bad_header, "ce_cafesschema is 0" + at()};
  if (auto ok = number(hdr::epoch, e.writer_epoch); !ok)
    return std::move(ok).error();
  auto type = need(hdr::type);
  if (!type)
    return std::move(type).error();
  if (type->empty())
    return error{errc::bad_header, "ce_type is empty" + at()};
  e.type = *type;
  auto src = need(hdr::source);
  if (!src)
    return std::move(src).error();
  e.source = *src;
  auto eid = need(hdr::id);
  if (!eid)
    return std::move(eid).error();
  e.event_id = *eid;
  auto t = need(hdr::time);
  if (!t)
    return std::move(t).error();
  auto ms = parse_rfc3339(*t);
  if (!ms)
    return error{errc::bad_header, ms.error().message + at()};
  e.time_ms = *ms;
  auto node = need(hdr::node);
  if (!node)
    return std::move(node).error();
  e.writer_node = *node;
  if (auto c = r.find_header(hdr::causation))
    e.command_id = *c;
  if (!r.value)
    return error{errc::malformed_record, "event record has no value (tombstone)" + at()};
  if (auto ok = check_msgpack_map(*r.value); !ok)
    return error{errc::malformed_record, ok.error().message + at()};
  e.payload = *r.value;
  return e;
}

} // namespace cafes
