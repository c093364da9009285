// The Kafka snapshot store on a compacted topic; the last record per key wins.
#include <future>
#include <map>

#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "cafes/persistence/topics.hpp"
#include "kafka_common.hpp"

namespace cafes {

namespace {

/// Where the store's records go: an idempotent producer of its own, or the transactional
/// producer of their partition (partition_writer), which fencing reaches.
struct snapshot_sink {
  std::unique_ptr<detail::async_producer> own;
  std::shared_ptr<partition_writer> writer;

  void send(record r, append_callback cb) const {
    std::vector<record> recs;
    const auto p = r.partition;
    recs.push_back(std::move(r));
    if (writer)
      writer->write(p, std::move(recs), std::move(cb));
    else
      own->send(std::move(recs), std::move(cb));
  }
};

class kafka_snapshot_store final : public snapshot_store {
 public:
  kafka_snapshot_store(std::string topic, std::int32_t partitions, codec_limits limits, snapshot_sink sink,
                       std::unique_ptr<detail::partition_reader> r)
    : topic_(std::move(topic)), partitions_(partitions), limits_(limits), sink_(std::move(sink)),
      reader_(std::move(r)) {}

  void save(snapshot s, save_callback cb) override {
    if (auto ok = check_snapshot(s, limits_); !ok)
      return cb(std::move(ok).error());
    auto r = encode_snapshot(s, topic_);
    if (!r)
      return cb(std::move(r).error());
    r->partition = partition_for(r->key, partitions_);
    sink_.send(std::move(*r), [cb = std::move(cb)](append_result res) {
      if (res.err)
        cb(std::move(*res.err));
      else
        cb({});
    });
  }

  expected<std::optional<snapshot>> load(const aggregate_id& id) override {
    auto p = partition_for(id.str(), partitions_);
    std::optional<record> last;
    auto ok = read_partition(p, [&](record&& r) {
      if (r.key == id.str())
        last = std::move(r);
    });
    if (!ok)
      return std::move(ok).error();
    if (!last || !last->value)
      return std::optional<snapshot>{};
    auto s = decode_snapshot(*last);
    if (!s)
      return std::move(s).error();
    return std::optional<snapshot>{std::move(*s)};
  }

  expected<void> scan(partition_id p, const std::function<void(snapshot)>& f,
                      const std::function<void(const record&, const error&)>& bad) override {
    std::map<std::string, record> latest;
    auto ok = read_partition(p, [&](record&& r) {
      if (std::string_view{r.key}.starts_with(reserved_prefix))
        return;
      if (!r.value)
        latest.erase(r.key); // a tombstone deletes the snapshot
      else
        latest.insert_or_assign(r.key, std::move(r));
    });
    if (!ok)
      return ok;
    for (auto& [k, r] : latest) {
      auto s = decode_snapshot(r);
      if (s)
        f(std::move(*s));
      else if (bad)
        bad(r, s.error());
    }
    return {};
  }

  expected<void> save_mark(partition_id p, partition_mark m) override {
    if (p.value() < 0 || p.value() >= partitions_ || m.checkpoint.value() < 0)
      return error{errc::invalid_argument, "bad checkpoint partition or offset"};
    std::promise<expected<std::vector<position>>> done;
    auto f = done.get_future();
    sink_.send(encode_checkpoint(topic_, p, m), [&done](append_result r) { done.set_value(r); });
    auto r = f.get();
    if (!r)
      return std::move(r).error();
    return {};
  }

  expected<std::optional<partition_mark>> load_mark(partition_id p) override {
    std::optional<record> last;
    auto ok = read_partition(p, [&](record&& r) {
      if (r.key == checkpoint_key)
        last = std::move(r);
    });
    if (!ok)
      return std::move(ok).error();
    if (!last)
      return std::optional<partition_mark>{};
    auto m = decode_checkpoint(*last);
    if (!m)
      return std::move(m).error();
    return std::optional<partition_mark>{*m};
  }

  std::int32_t partitions() const noexcept override { return partitions_; }
  codec_limits limits() const noexcept override { return limits_; }

 private:
  expected<void> read_partition(partition_id p, const std::function<void(record&&)>& f) {
    if (p.value() < 0 || p.value() >= partitions_)
      return error{errc::invalid_argument, "partition " + std::to_string(p.value()) + " of " + topic_ +
                                               " does not exist"};
    std::lock_guard guard{read_mtx_};
    return reader_->read_all(topic_, p, f);
  }

  std::string topic_;
  std::int32_t partitions_;
  codec_limits limits_;
  snapshot_sink sink_;
  std::mutex read_mtx_;
  std::unique_ptr<detail::partition_reader> reader_;
};

} // namespace

expected<std::unique_ptr<snapshot_store>> make_kafka_snapshot_store(const kafka_config& cfg, std::string topic,
                                                                    std::int32_t partitions,
                                                                    std::shared_ptr<partition_writer> writer) {
  if (partitions <= 0)
    return error{errc::invalid_argument, "a snapshot store needs at least one partition"};
  auto limits = effective_limits(cfg, {topic});
  if (!limits)
    return std::move(limits).error();
  snapshot_sink sink;
  sink.writer = std::move(writer);
  if (sink.writer)
    sink.writer->also_writes(topic);
  if (!sink.writer) {
    auto producer = detail::async_producer::make(cfg, {topic});
    if (!producer)
      return std::move(producer).error();
    sink.own = std::move(*producer);
  }
  auto reader = detail::partition_reader::make(cfg, cfg.mode == journal_mode::transactional);
  if (!reader)
    return std::move(reader).error();
  (*reader)->warm(topic);
  return std::unique_ptr<snapshot_store>{std::make_unique<kafka_snapshot_store>(
    std::move(topic), partitions, *limits, std::move(sink), std::move(*reader))};
}

} // namespace cafes
