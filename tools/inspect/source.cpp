// The Kafka side of cafes-inspect: topic metadata, watermarks and ranges of records.
#include "source.hpp"

#include <thread>

#include "kafka_common.hpp"

namespace cafes::inspect {

struct source::impl {
  source_options opts;
  kafka_config cfg;
  // A consumer without group for metadata and watermarks; the reader for the records.
  std::unique_ptr<RdKafka::Consumer> meta;
  std::unique_ptr<detail::partition_reader> reader;
};

source::source(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
source::~source() = default;

expected<std::unique_ptr<source>> source::open(const source_options& opts) {
  auto p = std::make_unique<impl>();
  p->opts = opts;
  p->cfg.bootstrap = opts.bootstrap;
  p->cfg.client_id = "cafes-inspect";
  p->cfg.request_timeout = opts.timeout;
  p->cfg.delivery_timeout = opts.timeout;
  // librdkafka logs every failed connection attempt on stderr; the error we return says it
  // once. --verbose keeps its log.
  p->cfg.extra["log_level"] = opts.verbose ? "6" : "2";
  // An inspector never creates topics, not even on a broker that allows it.
  p->cfg.extra["allow.auto.create.topics"] = "false";
  for (auto& [k, v] : opts.properties)
    p->cfg.extra[k] = v;
  auto conf = detail::make_conf(p->cfg, {});
  if (!conf)
    return std::move(conf).error();
  std::string err;
  p->meta.reset(RdKafka::Consumer::create(conf->get(), err));
  if (!p->meta)
    return error{errc::kafka_error, "cannot create a consumer: " + err};
  // Does any broker answer, with the TLS and SASL settings? A refused handshake fails at
  // once (unauthorized, tls_failed), no answer after the timeout.
  if (auto ok = check_brokers(p->cfg); !ok) {
    if (ok.error() != errc::broker_unavailable)
      return ok.error();
    return error{errc::broker_unavailable, "no broker answered at " + opts.bootstrap + " within " +
                                               std::to_string(opts.timeout.count()) + " ms (--timeout-ms): " +
                                               ok.error().message};
  }
  auto reader = detail::partition_reader::make(p->cfg, !opts.read_uncommitted);
  if (!reader)
    return std::move(reader).error();
  p->reader = std::move(*reader);
  return std::unique_ptr<source>{new source(std::move(p))};
}

expected<std::int32_t> source::partitions(const std::string& topic) {
  // The metadata of all topics: a request naming the topic could create it on a cluster that
  // creates topics on first use (the mock cluster does, whatever the client asks).
  // Right after a topic is created its leaders may be unknown for a moment: ask again until
  // the bound, but take "unknown topic" at once.
  const auto deadline = std::chrono::steady_clock::now() + impl_->opts.timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    RdKafka::Metadata* raw = nullptr;
    auto code = impl_->meta->metadata(true, nullptr, &raw, static_cast<int>(std::max<long>(left.count(), 1)));
    std::unique_ptr<RdKafka::Metadata> md{raw};
    if (code == RdKafka::ERR_NO_ERROR && md) {
      code = RdKafka::ERR_UNKNOWN_TOPIC_OR_PART;
      for (auto* tm : *md->topics()) {
        if (tm->topic() != topic)
          continue;
        code = tm->err();
        if (code == RdKafka::ERR_NO_ERROR && !tm->partitions()->empty())
          return static_cast<std::int32_t>(tm->partitions()->size());
        if (code == RdKafka::ERR_NO_ERROR)
          code = RdKafka::ERR_LEADER_NOT_AVAILABLE; // no partitions yet
      }
    }
    if (code == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART || code == RdKafka::ERR__UNKNOWN_TOPIC)
      return error{errc::topic_missing, "topic " + topic + " does not exist at " + impl_->opts.bootstrap};
    if (std::chrono::steady_clock::now() >= deadline)
      return detail::from_kafka(code, "metadata of topic " + topic);
    std::this_thread::sleep_for(std::chrono::milliseconds{20}); // metadata refresh back-off
  }
}

expected<watermarks> source::offsets(const std::string& topic, std::int32_t p) {
  // As for metadata: a leader not known yet is asked again until the bound.
  const auto deadline = std::chrono::steady_clock::now() + impl_->opts.timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    std::int64_t lo = 0, hi = 0;
    const auto code =
      impl_->meta->query_watermark_offsets(topic, p, &lo, &hi, static_cast<int>(std::max<long>(left.count(), 1)));
    if (code == RdKafka::ERR_NO_ERROR)
      return watermarks{lo, hi};
    const bool retriable = code == RdKafka::ERR_LEADER_NOT_AVAILABLE || code == RdKafka::ERR_NOT_LEADER_FOR_PARTITION ||
                           code == RdKafka::ERR__UNKNOWN_PARTITION || code == RdKafka::ERR__TRANSPORT;
    if (!retriable || std::chrono::steady_clock::now() >= deadline)
      return detail::from_kafka(code, "offsets of " + topic + "/" + std::to_string(p));
    std::this_thread::sleep_for(std::chrono::milliseconds{20}); // metadata refresh back-off
  }
}

expected<void> source::read(const std::string& topic, std::int32_t p, std::int64_t from, std::int64_t to,
                            const std::function<void(record&&)>& f) {
  while (from < to) {
    const auto want = static_cast<std::size_t>(std::min<std::int64_t>(to - from, 1024));
    auto c = impl_->reader->read(topic, partition_id{p}, from, want);
    if (!c)
      return std::move(c).error();
    for (auto& r : c->records) {
      if (r.off.value() >= to)
        return {};
      f(std::move(r));
    }
    if (c->end || c->next.value() <= from)
      return {};
    from = c->next.value();
  }
  return {};
}

int exit_code_of(const error& e) {
  if (e == errc::invalid_argument || e == errc::help_requested)
    return exit_bad_input;
  if (e == errc::topic_missing)
    return exit_no_topic;
  if (e == errc::broker_unavailable || e == errc::timeout)
    return exit_no_broker;
  if (e.code.category() == persistence_category())
    return exit_kafka;
  return exit_failed;
}

} // namespace cafes::inspect
