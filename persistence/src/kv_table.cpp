// A local table of a compacted topic, restored from the start and tailed.
#include "cafes/persistence/kv_table.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "cafes/persistence/logger.hpp"
#include "kafka_common.hpp"

namespace cafes {

struct kv_table::impl {
  kafka_config cfg;
  std::string topic;
  detail::client_events events{"table"};
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  std::int32_t partitions = 0;
  mutable std::mutex mtx;
  std::condition_variable cv;
  std::unordered_map<std::string, record> rows;
  std::map<std::int32_t, std::int64_t> next; // the consumer's position per partition
  std::atomic<bool> stop{false};
  std::thread tail;

  void run() {
    while (!stop.load()) {
      std::unique_ptr<RdKafka::Message> m{consumer->consume(100)};
      if (m && m->err() == RdKafka::ERR_NO_ERROR) {
        auto r = detail::to_record(m->c_ptr());
        std::lock_guard g{mtx};
        if (r.value)
          rows[r.key] = std::move(r);
        else
          rows.erase(r.key);
      } else if (m && m->err() != RdKafka::ERR__TIMED_OUT && m->err() != RdKafka::ERR__PARTITION_EOF) {
        persistence_log().warn("table {}: {}", topic, m->errstr());
      }
      update_positions();
    }
  }

  /// The consumer's positions, past transaction markers too, once what was read is in rows.
  void update_positions() {
    std::vector<RdKafka::TopicPartition*> parts;
    for (std::int32_t p = 0; p < partitions; ++p)
      parts.push_back(RdKafka::TopicPartition::create(topic, p));
    if (consumer->position(parts) == RdKafka::ERR_NO_ERROR) {
      std::lock_guard g{mtx};
      for (auto* tp : parts)
        if (tp->offset() >= 0)
          next[tp->partition()] = tp->offset();
      cv.notify_all();
    }
    RdKafka::TopicPartition::destroy(parts);
  }
};

kv_table::kv_table(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

kv_table::~kv_table() {
  impl_->stop = true;
  if (impl_->tail.joinable())
    impl_->tail.join();
  impl_->consumer->close();
}

expected<std::unique_ptr<kv_table>> kv_table::open(const kafka_config& cfg, std::string topic,
                                                   std::chrono::milliseconds timeout) {
  auto d = std::make_unique<impl>();
  d->cfg = cfg;
  d->topic = std::move(topic);
  // A group id that is never joined: the table assigns its partitions itself and commits nothing.
  auto conf = detail::make_conf(cfg, {
                                       {"group.id", "__cafes.table." + d->topic},
                                       {"enable.auto.commit", "false"},
                                       {"enable.auto.offset.store", "false"},
                                       {"auto.offset.reset", "earliest"},
                                       {"isolation.level", "read_committed"},
                                       {"enable.partition.eof", "false"},
                                       {"fetch.wait.max.ms", "50"},
                                     });
  if (!conf)
    return std::move(conf).error();
  if (auto ok = detail::set_events(**conf, d->events); !ok)
    return std::move(ok).error();
  std::string err;
  d->consumer.reset(RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!d->consumer)
    return error{errc::kafka_error, "cannot create the reader of table " + d->topic + ": " + err};
  auto n = detail::partition_count(*d->consumer, d->topic, cfg.request_timeout);
  if (!n)
    return error{n.error().code, "table: " + n.error().message};
  d->partitions = *n;
  std::vector<RdKafka::TopicPartition*> parts;
  for (std::int32_t p = 0; p < d->partitions; ++p)
    parts.push_back(RdKafka::TopicPartition::create(d->topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  auto code = d->consumer->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  if (code != RdKafka::ERR_NO_ERROR)
    return detail::from_kafka(code, "cannot read table " + d->topic);
  auto* raw = d.get();
  d->tail = std::thread{[raw] { raw->run(); }};
  std::unique_ptr<kv_table> table{new kv_table(std::move(d))};
  if (auto ok = table->sync(timeout); !ok)
    return std::move(ok).error();
  return table;
}

std::optional<record> kv_table::get(const std::string& key) const {
  std::lock_guard g{impl_->mtx};
  auto i = impl_->rows.find(key);
  if (i == impl_->rows.end())
    return std::nullopt;
  return i->second;
}

std::size_t kv_table::size() const {
  std::lock_guard g{impl_->mtx};
  return impl_->rows.size();
}

expected<void> kv_table::sync(std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::map<std::int32_t, std::int64_t> target;
  for (std::int32_t p = 0; p < d.partitions; ++p) {
    auto high = detail::high_watermark_until(*d.consumer, d.topic, p, deadline, "table " + d.topic);
    if (!high)
      return std::move(high).error();
    target[p] = *high;
  }
  std::unique_lock g{d.mtx};
  auto done = [&] {
    for (auto& [p, t] : target) {
      if (t == 0)
        continue;
      auto i = d.next.find(p);
      if (i == d.next.end() || i->second < t)
        return false;
    }
    return true;
  };
  if (!d.cv.wait_until(g, deadline, done))
    return error{errc::timeout, "table " + d.topic + " did not catch up with its topic in time"};
  return {};
}

expected<void> read_partition(const kafka_config& cfg, const std::string& topic, partition_id p,
                              const std::function<void(record&&)>& f) {
  auto reader = detail::partition_reader::make(cfg, true);
  if (!reader)
    return std::move(reader).error();
  return (*reader)->read_all(topic, p, f);
}

} // namespace cafes
