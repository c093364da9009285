// Journal helpers shared by every implementation, and the in-memory journal.
#include "cafes/persistence/journal.hpp"

#include <future>
#include <mutex>

#include "cafes/persistence/partitioner.hpp"

namespace cafes {

event_outcome append_result::outcome_of(std::size_t first, std::size_t count) const {
  if (outcomes.empty())
    return uniform;
  auto o = outcomes.at(first);
  for (std::size_t i = first + 1; i < first + count; ++i)
    if (outcomes.at(i) != o)
      return event_outcome::unknown;
  return o;
}

append_result::operator expected<std::vector<position>>() const {
  if (err)
    return *err;
  return positions;
}

expected<std::vector<position>> journal::append_sync(std::vector<event_envelope> batch) {
  auto done = std::make_shared<std::promise<expected<std::vector<position>>>>();
  auto f = done->get_future();
  append(std::move(batch), [done](append_result r) { done->set_value(r); });
  return f.get();
}

topic_names topic_names::of(std::string_view ns, std::string_view aggregate) {
  std::string base{ns};
  base += '.';
  base += aggregate;
  return {base + ".events", base + ".snapshots", base + ".dlq", base + ".state"};
}

namespace {

/// Keeps encoded records per partition, so that it enforces the same codec rules as Kafka.
class memory_journal final : public journal {
 public:
  memory_journal(std::string topic, std::int32_t partitions, codec_limits limits)
    : topic_(std::move(topic)), limits_(limits), parts_(static_cast<std::size_t>(partitions)) {}

  void append(std::vector<event_envelope> batch, append_callback cb) override {
    auto encoded = encode_batch(batch, topic_, partitions(), limits_);
    if (!encoded)
      return cb(append_result{std::move(encoded).error(), event_outcome::not_written});
    auto& recs = *encoded;
    std::vector<position> out;
    out.reserve(recs.size());
    {
      std::lock_guard guard{mtx_};
      for (auto& r : recs) {
        auto& part = parts_[static_cast<std::size_t>(r.partition.value())];
        r.off = offset{static_cast<std::int64_t>(part.size())};
        out.push_back({r.partition, r.off});
        part.push_back(std::move(r));
      }
    }
    cb(std::move(out));
  }

  expected<read_chunk> read(partition_id p, offset from, std::size_t max_events) override {
    if (auto ok = check(p); !ok)
      return std::move(ok).error();
    if (from.value() < 0)
      return error{errc::invalid_argument, "read from negative offset"};
    read_chunk c;
    std::lock_guard guard{mtx_};
    auto& part = parts_[static_cast<std::size_t>(p.value())];
    auto i = static_cast<std::size_t>(from.value());
    for (; i < part.size() && c.events.size() < max_events; ++i) {
      auto e = decode_event(part[i]);
      if (!e)
        return std::move(e).error();
      c.events.push_back(std::move(*e));
      c.offsets.push_back(part[i].off);
    }
    c.next = offset{static_cast<std::int64_t>(std::max(i, static_cast<std::size_t>(from.value())))};
    c.end = c.next.value() >= static_cast<std::int64_t>(part.size());
    return c;
  }

  expected<offset> end_offset(partition_id p) override {
    if (auto ok = check(p); !ok)
      return std::move(ok).error();
    std::lock_guard guard{mtx_};
    return offset{static_cast<std::int64_t>(parts_[static_cast<std::size_t>(p.value())].size())};
  }

  std::int32_t partitions() const noexcept override { return static_cast<std::int32_t>(parts_.size()); }
  const std::string& topic() const noexcept override { return topic_; }
  codec_limits limits() const noexcept override { return limits_; }

 private:
  expected<void> check(partition_id p) const {
    if (p.value() < 0 || p.value() >= partitions())
      return error{errc::invalid_argument, "partition " + std::to_string(p.value()) + " of " + topic_ +
                                               " does not exist"};
    return {};
  }

  std::string topic_;
  codec_limits limits_;
  std::mutex mtx_;
  std::vector<std::vector<record>> parts_;
};

} // namespace

std::unique_ptr<journal> make_memory_journal(std::string topic, std::int32_t partitions, codec_limits limits) {
  return std::make_unique<memory_journal>(std::move(topic), partitions, limits);
}

} // namespace cafes
