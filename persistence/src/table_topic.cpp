// A shared table on one partition of a compacted topic: an acknowledged writer and a tail.
#include "cafes/persistence/table_topic.hpp"

#include <atomic>
#include <mutex>
#include <thread>

#include "cafes/persistence/logger.hpp"
#include "kafka_common.hpp"

namespace cafes {

namespace {

/// Where the delivery report of one put lands.
struct delivery {
  bool done = false;
  RdKafka::ErrorCode err = RdKafka::ERR_NO_ERROR;
};

struct reports final : RdKafka::DeliveryReportCb {
  void dr_cb(RdKafka::Message& m) override {
    // Shared with put(), which may have given up on it (timeout) before it came.
    std::unique_ptr<std::shared_ptr<delivery>> d{static_cast<std::shared_ptr<delivery>*>(m.msg_opaque())};
    (*d)->err = m.err();
    (*d)->done = true;
  }
};

} // namespace

struct table_topic::impl {
  std::string topic;
  on_record f;
  kafka_config cfg;
  reports dr;
  detail::client_events producer_events{"table writer"};
  detail::client_events consumer_events{"table tail"};
  std::mutex put_mtx;
  std::unique_ptr<RdKafka::Producer> producer;
  std::unique_ptr<RdKafka::Consumer> consumer;
  std::unique_ptr<RdKafka::Topic> tail_topic;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> seen{0};
  std::thread tail;

  void run() {
    while (!stop.load(std::memory_order_relaxed)) {
      std::unique_ptr<RdKafka::Message> m{consumer->consume(tail_topic.get(), 0, 100)};
      if (!m)
        continue;
      switch (m->err()) {
        case RdKafka::ERR_NO_ERROR: {
          std::string key = m->key() ? *m->key() : std::string{};
          std::optional<std::string> value;
          if (m->payload())
            value.emplace(static_cast<const char*>(m->payload()), m->len());
          f(key, value);
          ++seen;
          break;
        }
        case RdKafka::ERR__TIMED_OUT:
        case RdKafka::ERR__PARTITION_EOF:
          break;
        default:
          persistence_log().warn("tail of {}: {}", topic, m->errstr());
      }
    }
    consumer->stop(tail_topic.get(), 0);
  }
};

table_topic::table_topic(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

table_topic::~table_topic() {
  impl_->stop = true;
  if (impl_->tail.joinable())
    impl_->tail.join();
  if (impl_->producer)
    impl_->producer->flush(static_cast<int>(impl_->cfg.delivery_timeout.count()));
}

expected<std::unique_ptr<table_topic>> table_topic::open(const kafka_config& cfg, std::string topic, on_record f) {
  auto d = std::make_unique<impl>();
  d->topic = std::move(topic);
  d->f = std::move(f);
  d->cfg = cfg;
  auto pconf = detail::make_conf(cfg, {
                                        {"enable.idempotence", "true"},
                                        {"acks", "all"},
                                        {"linger.ms", "0"},
                                        {"message.timeout.ms", std::to_string(cfg.delivery_timeout.count())},
                                      });
  if (!pconf)
    return std::move(pconf).error();
  std::string err;
  if ((*pconf)->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&d->dr), err) != RdKafka::Conf::CONF_OK)
    return error{errc::invalid_argument, err};
  if (auto ok = detail::set_events(**pconf, d->producer_events); !ok)
    return std::move(ok).error();
  d->producer.reset(RdKafka::Producer::create(pconf->get(), err));
  if (!d->producer)
    return error{errc::kafka_error, "cannot create the writer of " + d->topic + ": " + err};
  auto cconf = detail::make_conf(cfg, {
                                        {"enable.partition.eof", "false"},
                                        {"auto.offset.reset", "earliest"},
                                        {"fetch.wait.max.ms", "50"},
                                      });
  if (!cconf)
    return std::move(cconf).error();
  if (auto ok = detail::set_events(**cconf, d->consumer_events); !ok)
    return std::move(ok).error();
  d->consumer.reset(RdKafka::Consumer::create(cconf->get(), err));
  if (!d->consumer)
    return error{errc::kafka_error, "cannot create the tail of " + d->topic + ": " + err};
  d->tail_topic.reset(RdKafka::Topic::create(d->consumer.get(), d->topic, nullptr, err));
  if (!d->tail_topic)
    return error{errc::kafka_error, "cannot open " + d->topic + ": " + err};
  if (auto code = d->consumer->start(d->tail_topic.get(), 0, RdKafka::Topic::OFFSET_BEGINNING);
      code != RdKafka::ERR_NO_ERROR)
    return detail::from_kafka(code, "cannot tail " + d->topic);
  auto* raw = d.get();
  d->tail = std::thread{[raw] { raw->run(); }};
  return std::unique_ptr<table_topic>{new table_topic(std::move(d))};
}

expected<void> table_topic::put(const std::string& key, const std::optional<std::string>& value) {
  auto& d = *impl_;
  std::lock_guard guard{d.put_mtx}; // one put at a time: flush waits for this put only
  auto result = std::make_shared<delivery>();
  auto* opaque = new std::shared_ptr<delivery>(result);
  auto code = d.producer->produce(d.topic, 0, RdKafka::Producer::RK_MSG_COPY,
                                  value ? const_cast<char*>(value->data()) : nullptr, value ? value->size() : 0,
                                  key.data(), key.size(), 0, opaque);
  if (code != RdKafka::ERR_NO_ERROR) {
    delete opaque;
    return detail::from_kafka(code, "cannot write " + key + " to " + d.topic);
  }
  d.producer->flush(static_cast<int>(d.cfg.delivery_timeout.count()) + 1000);
  if (!result->done)
    return error{errc::timeout, "the write of " + key + " to " + d.topic + " was not acknowledged in time"};
  if (result->err != RdKafka::ERR_NO_ERROR)
    return detail::from_kafka(result->err, "cannot write " + key + " to " + d.topic);
  return {};
}

std::uint64_t table_topic::records_seen() const noexcept { return impl_->seen.load(); }

} // namespace cafes
