// The dead-letter codec: the original record plus the headers that say why and whence.
#include "cafes/persistence/dead_letter.hpp"


#include "cafes/persistence/envelope.hpp"
#include "parse.hpp"

namespace cafes {

namespace {

using detail::parse_int;

bool is_dlq_header(std::string_view k) {
  return k.starts_with("cafes_dlq_");
}

} // namespace

record encode_dead_letter(const dead_letter& d, std::string dlq_topic) {
  record r;
  r.topic = std::move(dlq_topic);
  r.partition = d.original.partition;
  r.key = d.original.key;
  r.value = d.original.value;
  r.headers.reserve(d.original.headers.size() + 8);
  for (auto& h : d.original.headers)
    if (!is_dlq_header(h.key)) // a re-driven letter that failed again: the newest reasons win
      r.headers.push_back(h);
  auto add = [&](std::string_view k, std::string v) { r.headers.push_back({std::string{k}, std::move(v)}); };
  add(dlq_hdr::error, d.error);
  add(dlq_hdr::message, d.message);
  add(dlq_hdr::topic, d.original.topic);
  add(dlq_hdr::partition, std::to_string(d.original.partition.value()));
  add(dlq_hdr::offset, std::to_string(d.original.off.value()));
  add(dlq_hdr::attempts, std::to_string(d.attempts));
  add(dlq_hdr::projection, d.projection);
  add(dlq_hdr::time, format_rfc3339(d.time_ms));
  return r;
}

expected<dead_letter> decode_dead_letter(const record& r) {
  auto need = [&](std::string_view k) -> expected<std::string> {
    if (auto* v = r.find_header(k))
      return *v;
    return error{errc::missing_header, "dead letter " + where(r) + " has no header " + std::string{k}};
  };
  auto bad = [&](std::string_view k, const std::string& v) {
    return error{errc::bad_header, "dead letter " + where(r) + ": header " + std::string{k} + " is '" + v + "'"};
  };
  dead_letter d;
  std::string fields[8];
  const std::string_view keys[8] = {dlq_hdr::error,    dlq_hdr::message,  dlq_hdr::topic,      dlq_hdr::partition,
                                    dlq_hdr::offset,   dlq_hdr::attempts, dlq_hdr::projection, dlq_hdr::time};
  for (int i = 0; i < 8; ++i) {
    auto v = need(keys[i]);
    if (!v)
      return std::move(v).error();
    fields[i] = std::move(*v);
  }
  std::int32_t part = 0;
  std::int64_t off = 0;
  if (!parse_int(fields[3], part) || part < 0)
    return bad(dlq_hdr::partition, fields[3]);
  if (!parse_int(fields[4], off) || off < 0)
    return bad(dlq_hdr::offset, fields[4]);
  if (!parse_int(fields[5], d.attempts))
    return bad(dlq_hdr::attempts, fields[5]);
  auto t = parse_rfc3339(fields[7]);
  if (!t)
    return bad(dlq_hdr::time, fields[7]);
  d.error = std::move(fields[0]);
  d.message = std::move(fields[1]);
  d.projection = std::move(fields[6]);
  d.time_ms = *t;
  d.original.topic = std::move(fields[2]);
  d.original.partition = partition_id{part};
  d.original.off = offset{off};
  d.original.key = r.key;
  d.original.value = r.value;
  for (auto& h : r.headers)
    if (!is_dlq_header(h.key))
      d.original.headers.push_back(h);
  return d;
}

} // namespace cafes
