// The snapshot record codec, the store helpers and the in-memory snapshot store.
#include "cafes/persistence/snapshot_store.hpp"

#include <future>
#include <map>
#include <mutex>

#include <msgpack.hpp>

#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/partitioner.hpp"

namespace cafes {

namespace {

// The value of a snapshot record. Field names are on the wire (docs/wire-format.md).
struct snapshot_value {
  std::uint32_t v = 0;
  std::string id;
  std::uint64_t seq = 0;
  std::int64_t offset = -1;
  std::string type;
  std::uint32_t schema = 0;
  msgpack::type::raw_ref state;
  MSGPACK_DEFINE_MAP(v, id, seq, offset, type, schema, state);
};

// The value of a checkpoint record.
struct checkpoint_value {
  std::uint32_t v = 0;
  std::int64_t offset = -1;
  std::uint64_t epoch = 0; // absent in records written before epochs: 0
  MSGPACK_DEFINE_MAP(v, offset, epoch);
};

/// Returns a record of `topic` with `key` and the msgpack of `v` as its value.
template <class T>
record packed_record(std::string topic, std::string key, const T& v) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, v);
  record r;
  r.topic = std::move(topic);
  r.key = std::move(key);
  r.headers = {{std::string{hdr::content_type}, std::string{msgpack_content_type}}};
  r.value = std::string{buf.data(), buf.size()};
  return r;
}

/// Unpacks the value of `r` (what: "snapshot" or "checkpoint") into T, checks its layout
/// version, and calls `f` while the unpacked bytes are alive. Every failure is a typed error
/// naming the record's place.
template <class T, class F>
auto with_unpacked(const record& r, const char* what, F f) -> decltype(f(std::declval<T&>())) {
  if (!r.value)
    return error{errc::malformed_record, std::string{what} + " tombstone at " + where(r)};
  if (auto ok = check_msgpack_map(*r.value); !ok)
    return error{errc::malformed_record, ok.error().message + " at " + where(r)};
  try {
    const auto n = r.value->size();
    msgpack::unpack_limit limit(n, n, n, n, n, 64);
    auto oh = msgpack::unpack(r.value->data(), n, nullptr, nullptr, limit);
    T v;
    oh.get().convert(v);
    if (v.v == 0 || v.v > snapshot_format_version)
      return error{errc::unsupported_version, std::string{what} + " format " + std::to_string(v.v) + " at " + where(r)};
    return f(v);
  } catch (const std::exception& e) {
    return error{errc::malformed_record, std::string{"bad "} + what + " record: " + e.what() + " at " + where(r)};
  }
}

} // namespace

expected<record> encode_snapshot(const snapshot& s, std::string topic) {
  if (auto id = aggregate_id::make(s.id.str()); !id)
    return std::move(id).error();
  if (s.seq.value() == 0)
    return error{errc::invalid_argument, "snapshot of '" + s.id.str() + "' has sequence number 0"};
  if (s.state_type.empty() || s.state_version == 0)
    return error{errc::invalid_argument, "snapshot of '" + s.id.str() + "' needs a state type and version"};
  if (auto ok = check_msgpack_map(s.state); !ok)
    return error{errc::invalid_argument, "snapshot state of '" + s.id.str() + "': " + ok.error().message};
  snapshot_value v{snapshot_format_version, s.id.str(), s.seq.value(), s.journal_offset.value(),
                   s.state_type, s.state_version,
                   msgpack::type::raw_ref{s.state.data(), static_cast<std::uint32_t>(s.state.size())}};
  return packed_record(std::move(topic), s.id.str(), v);
}

std::size_t snapshot_record_bytes(const snapshot& s) {
  // The value without the state's bytes, packed for real (it is small), plus the state and
  // the growth of its bin header beyond the empty one (bin8: 2 bytes, bin16: 3, bin32: 5).
  snapshot_value v{snapshot_format_version, s.id.str(), s.seq.value(), s.journal_offset.value(),
                   s.state_type, s.state_version, msgpack::type::raw_ref{nullptr, 0}};
  msgpack::sbuffer buf;
  msgpack::pack(buf, v);
  const auto n = s.state.size();
  const std::size_t bin_header = n < (1u << 8) ? 2 : n < (1u << 16) ? 3 : 5;
  return s.id.str().size() + hdr::content_type.size() + msgpack_content_type.size() + buf.size() + n +
         (bin_header - 2);
}

expected<void> check_snapshot(const snapshot& s, const codec_limits& limits) {
  const auto size = snapshot_record_bytes(s);
  if (size > limits.max_event_bytes)
    return error{errc::state_too_large, "the snapshot of '" + s.id.str() + "' (state '" + s.state_type + "') takes " +
                                            std::to_string(size) + " bytes; the limit is " +
                                            std::to_string(limits.max_event_bytes)};
  return {};
}

expected<snapshot> decode_snapshot(const record& r) {
  return with_unpacked<snapshot_value>(r, "snapshot", [&](snapshot_value& v) -> expected<snapshot> {
    if (v.id != r.key)
      return error{errc::malformed_record, "snapshot id '" + v.id + "' differs from its key at " + where(r)};
    auto id = aggregate_id::make(v.id);
    if (!id)
      return error{id.error().code, id.error().message + " at " + where(r)};
    if (v.seq == 0 || v.type.empty() || v.schema == 0)
      return error{errc::malformed_record, "snapshot lacks seq, type or schema at " + where(r)};
    snapshot s{std::move(*id), seq_nr{v.seq}, offset{v.offset}, std::move(v.type), v.schema,
               std::string{v.state.ptr, v.state.size}};
    if (auto ok = check_msgpack_map(s.state); !ok)
      return error{errc::malformed_record, "snapshot state: " + ok.error().message + " at " + where(r)};
    return s;
  });
}

expected<void> snapshot_store::save_sync(snapshot s) {
  auto done = std::make_shared<std::promise<expected<void>>>();
  auto f = done->get_future();
  save(std::move(s), [done](expected<void> r) { done->set_value(std::move(r)); });
  return f.get();
}

record encode_checkpoint(std::string topic, partition_id p, partition_mark m) {
  auto r = packed_record(std::move(topic), std::string{checkpoint_key},
                         checkpoint_value{snapshot_format_version, m.checkpoint.value(), m.epoch});
  r.partition = p;
  return r;
}

expected<partition_mark> decode_checkpoint(const record& r) {
  return with_unpacked<checkpoint_value>(r, "checkpoint", [&](checkpoint_value& v) -> expected<partition_mark> {
    if (v.offset < 0)
      return error{errc::malformed_record, "negative checkpoint at " + where(r)};
    return partition_mark{offset{v.offset}, v.epoch};
  });
}

expected<std::optional<offset>> snapshot_store::load_checkpoint(partition_id p) {
  auto m = load_mark(p);
  if (!m)
    return std::move(m).error();
  if (!*m)
    return std::optional<offset>{};
  return std::optional<offset>{(*m)->checkpoint};
}

namespace {

class memory_snapshot_store final : public snapshot_store {
 public:
  memory_snapshot_store(std::int32_t partitions, codec_limits limits)
    : limits_(limits), snaps_(static_cast<std::size_t>(partitions)), checkpoints_(static_cast<std::size_t>(partitions)) {}

  void save(snapshot s, save_callback cb) override {
    if (auto ok = check_snapshot(s, limits_); !ok)
      return cb(std::move(ok).error());
    auto r = encode_snapshot(s, "memory");
    if (!r)
      return cb(std::move(r).error());
    auto p = partition_for(s.id.str(), partitions());
    {
      std::lock_guard guard{mtx_};
      snaps_[static_cast<std::size_t>(p.value())][s.id.str()] = std::move(s);
    }
    cb({});
  }

  expected<std::optional<snapshot>> load(const aggregate_id& id) override {
    auto p = partition_for(id.str(), partitions());
    std::lock_guard guard{mtx_};
    auto& m = snaps_[static_cast<std::size_t>(p.value())];
    auto i = m.find(id.str());
    if (i == m.end())
      return std::optional<snapshot>{};
    return std::optional<snapshot>{i->second};
  }

  expected<void> scan(partition_id p, const std::function<void(snapshot)>& f,
                      const std::function<void(const record&, const error&)>&) override {
    if (p.value() < 0 || p.value() >= partitions())
      return error{errc::invalid_argument, "no partition " + std::to_string(p.value())};
    std::map<std::string, snapshot> copy;
    {
      std::lock_guard guard{mtx_};
      copy = snaps_[static_cast<std::size_t>(p.value())];
    }
    for (auto& [k, s] : copy)
      f(std::move(s));
    return {};
  }

  expected<void> save_mark(partition_id p, partition_mark m) override {
    if (p.value() < 0 || p.value() >= partitions() || m.checkpoint.value() < 0)
      return error{errc::invalid_argument, "bad checkpoint partition or offset"};
    std::lock_guard guard{mtx_};
    checkpoints_[static_cast<std::size_t>(p.value())] = m;
    return {};
  }

  expected<std::optional<partition_mark>> load_mark(partition_id p) override {
    if (p.value() < 0 || p.value() >= partitions())
      return error{errc::invalid_argument, "no partition " + std::to_string(p.value())};
    std::lock_guard guard{mtx_};
    return checkpoints_[static_cast<std::size_t>(p.value())];
  }

  std::int32_t partitions() const noexcept override { return static_cast<std::int32_t>(snaps_.size()); }
  codec_limits limits() const noexcept override { return limits_; }

 private:
  codec_limits limits_;
  std::mutex mtx_;
  std::vector<std::map<std::string, snapshot>> snaps_;
  std::vector<std::optional<partition_mark>> checkpoints_;
};

} // namespace

std::unique_ptr<snapshot_store> make_memory_snapshot_store(std::int32_t partitions, codec_limits limits) {
  return std::make_unique<memory_snapshot_store>(partitions, limits);
}

} // namespace cafes
