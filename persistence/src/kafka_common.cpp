// Private helpers shared by the Kafka implementations: config, error mapping, producer, reader.
#include "kafka_common.hpp"

#include <array>
#include <atomic>

#include <librdkafka/rdkafka.h>

#include "cafes/persistence/logger.hpp"

namespace cafes::detail {

bool secret_property(std::string_view key) {
  return key.find("password") != std::string_view::npos || key.find("secret") != std::string_view::npos ||
         key.find(".pem") != std::string_view::npos || key.find("jaas") != std::string_view::npos;
}

expected<void> set(RdKafka::Conf& conf, const std::string& key, const std::string& value) {
  std::string err;
  if (auto r = conf.set(key, value, err); r != RdKafka::Conf::CONF_OK) {
    // A secret never goes into an error (which is logged and printed); librdkafka's message
    // may quote the value too. An unknown key may be a secret's, misspelt.
    if (secret_property(key) || r == RdKafka::Conf::CONF_UNKNOWN)
      return error{errc::invalid_argument, "kafka property " + key + " (value hidden): " +
                                               (value.empty() || err.find(value) == std::string::npos
                                                  ? err
                                                  : std::string{"refused by librdkafka"})};
    return error{errc::invalid_argument, "kafka property " + key + "=" + value + ": " + err};
  }
  return {};
}

expected<std::unique_ptr<RdKafka::Conf>> make_conf(const kafka_config& cfg,
                                                   const std::map<std::string, std::string>& overrides) {
  std::unique_ptr<RdKafka::Conf> conf{RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL)};
  // librdkafka's log lines and errors go to the logger "cafes.kafka", at its level (a
  // log_level in the overrides or cfg.extra wins). A client with an event callback
  // (set_events) logs through that instead, to the same logger.
  route_kafka_logs(conf->c_ptr_global());
  auto servers = cfg.servers();
  if (servers.empty())
    return error{errc::invalid_argument, "no bootstrap servers and no embedded cluster"};
  std::map<std::string, std::string> props{
    {"bootstrap.servers", servers},
    {"client.id", cfg.client_id},
    // A request must not outlive the append it serves: in-flight messages cannot time out
    // before their request does.
    {"socket.timeout.ms",
     std::to_string(std::max<long>(std::min(cfg.request_timeout, cfg.delivery_timeout).count(), 10))},
    // Small requests must not wait for the peer's delayed ACK (the Java client sets
    // TCP_NODELAY too).
    {"socket.nagle.disable", "true"},
    // Come back quickly when a broker returns (the default backs off up to 10 s).
    {"reconnect.backoff.max.ms", "1000"},
    {"log.connection.close", "false"},
  };
  // The 2.0.2 mock answers a second pipelined request on a connection about 40 ms late;
  // one request in flight per connection is much faster there (docs/testing.md).
  if (cfg.embedded)
    props["max.in.flight.requests.per.connection"] = "1";
  for (auto& [k, v] : overrides)
    props[k] = v;
  for (auto& [k, v] : cfg.extra)
    props[k] = v;
  for (auto& [k, v] : props)
    if (auto ok = set(*conf, k, v); !ok)
      return std::move(ok).error();
  return conf;
}

void client_events::event_cb(RdKafka::Event& e) {
  switch (e.type()) {
    case RdKafka::Event::EVENT_ERROR:
      if (e.fatal())
        fatal_ = true;
      log_kafka_error(name(), e.err(), e.str(), e.fatal());
      break;
    case RdKafka::Event::EVENT_LOG:
      log_kafka_line(name(), e.severity(), e.fac(), e.str());
      break;
    default:
      break;
  }
}

std::string client_events::name() const {
  std::lock_guard guard{mtx_};
  return client_.empty() ? role_ : client_ + " (" + role_ + ")";
}

expected<void> set_events(RdKafka::Conf& conf, client_events& ev) {
  std::string err;
  if (conf.set("event_cb", &ev, err) != RdKafka::Conf::CONF_OK)
    return error{errc::invalid_argument, "event_cb: " + err};
  std::string id;
  if (conf.get("client.id", id) == RdKafka::Conf::CONF_OK)
    ev.set_client(id);
  return {};
}

error from_kafka(RdKafka::ErrorCode code, const std::string& context) {
  auto msg = context + ": " + RdKafka::err2str(code);
  switch (code) {
    case RdKafka::ERR__MSG_TIMED_OUT:
    case RdKafka::ERR__TIMED_OUT:
    case RdKafka::ERR_REQUEST_TIMED_OUT:
      return {errc::timeout, msg};
    case RdKafka::ERR__FENCED:
    case RdKafka::ERR_PRODUCER_FENCED:
    case RdKafka::ERR_INVALID_PRODUCER_EPOCH:
      return {errc::fenced, msg};
    case RdKafka::ERR__ALL_BROKERS_DOWN:
    case RdKafka::ERR__TRANSPORT:
      return {errc::broker_unavailable, msg};
    case RdKafka::ERR_MSG_SIZE_TOO_LARGE:
      return {errc::event_too_large, msg};
    case RdKafka::ERR__QUEUE_FULL:
      return {errc::overloaded, msg};
    case RdKafka::ERR__UNKNOWN_TOPIC:
    case RdKafka::ERR_UNKNOWN_TOPIC_OR_PART:
      return {errc::topic_missing, msg};
    case RdKafka::ERR__PURGE_QUEUE:
    case RdKafka::ERR__PURGE_INFLIGHT:
      return {errc::transaction_aborted, msg};
    case RdKafka::ERR__FATAL:
      return {errc::fatal, msg};
    case RdKafka::ERR__AUTHENTICATION:
    case RdKafka::ERR_SASL_AUTHENTICATION_FAILED:
    case RdKafka::ERR_TOPIC_AUTHORIZATION_FAILED:
    case RdKafka::ERR_GROUP_AUTHORIZATION_FAILED:
    case RdKafka::ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RdKafka::ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
      return {errc::unauthorized, msg};
    case RdKafka::ERR__SSL:
      return {errc::tls_failed, msg};
    default:
      return {errc::kafka_error, msg};
  }
}

error from_kafka(const RdKafka::Error& e, const std::string& context) {
  auto base = from_kafka(e.code(), context);
  if (base.code == errc::fenced || base.code == errc::timeout)
    return base;
  if (e.is_fatal())
    return {errc::fatal, base.message + " (fatal)"};
  if (e.txn_requires_abort())
    return {errc::transaction_aborted, base.message + " (transaction aborted)"};
  return base;
}

record to_record(const rd_kafka_message_t* m) {
  auto v = view_of(m, rd_kafka_topic_name(m->rkt));
  record r;
  r.topic = v.topic;
  r.partition = v.partition;
  r.off = v.off;
  r.key = v.key;
  r.headers.reserve(v.headers.size());
  for (auto& [k, val] : v.headers)
    r.headers.push_back({std::string{k}, std::string{val}});
  if (v.value)
    r.value = std::string{*v.value};
  return r;
}

RdKafka::ErrorCode produce(RdKafka::Producer& p, const record& r, void* opaque) {
  auto* hs = RdKafka::Headers::create();
  for (auto& h : r.headers)
    hs->add(h.key, h.value.data(), h.value.size());
  const std::string empty;
  const std::string& v = r.value ? *r.value : empty;
  auto err = p.produce(r.topic, r.partition.value(), RdKafka::Producer::RK_MSG_COPY,
                       r.value ? const_cast<char*>(v.data()) : nullptr, v.size(), r.key.data(),
                       r.key.size(), 0, hs, opaque);
  if (err != RdKafka::ERR_NO_ERROR)
    delete hs; // ownership passes to librdkafka only on success
  return err;
}

// -- async_producer -----------------------------------------------------------

struct async_producer::batch {
  std::mutex mtx;
  std::size_t remaining = 0;
  append_result res;
  append_callback cb;

  // Records one record's outcome; calls the callback after the last one, outside the lock.
  void done(std::size_t i, std::optional<position> pos, std::optional<error> e, event_outcome o) {
    append_callback fire;
    {
      std::lock_guard guard{mtx};
      if (pos)
        res.positions[i] = *pos;
      res.outcomes[i] = o;
      if (e && !res.err)
        res.err = std::move(e);
      if (--remaining > 0)
        return;
      fire = std::move(cb);
    }
    fire(std::move(res));
  }
};

struct async_producer::item {
  std::shared_ptr<batch> b;
  std::size_t index;
};

/// One librdkafka producer with its callbacks. After a fatal error, its failed messages
/// are all unknown: the producer may have written them before it failed.
struct async_producer::client {
  class dr final : public RdKafka::DeliveryReportCb {
   public:
    explicit dr(const client_events& ev) : ev_(ev) {}
    void dr_cb(RdKafka::Message& m) override;

   private:
    const client_events& ev_;
  };
  client_events ev{"producer"};
  dr reports{ev};
  std::unique_ptr<RdKafka::Producer> p;
  std::vector<std::unique_ptr<RdKafka::Topic>> topics; // known to p from the start (make_client)
};

void async_producer::client::dr::dr_cb(RdKafka::Message& m) {
  std::unique_ptr<item> it{static_cast<item*>(m.msg_opaque())};
  if (!it)
    return;
  if (m.err() == RdKafka::ERR_NO_ERROR) {
    it->b->done(it->index, position{partition_id{m.partition()}, offset{m.offset()}}, std::nullopt,
                event_outcome::durable);
    return;
  }
  // librdkafka knows whether a failed message may have reached the broker: one that never
  // left the client is not written; one that was in flight may still land.
  const auto where = "delivery to " + m.topic_name() + "/" + std::to_string(m.partition());
  if (ev_.fatal())
    return it->b->done(it->index, std::nullopt, error{errc::fatal, where + ": the producer failed fatally"},
                       event_outcome::unknown);
  const auto o = m.status() == RdKafka::Message::MSG_STATUS_NOT_PERSISTED ? event_outcome::not_written
                                                                          : event_outcome::unknown;
  it->b->done(it->index, std::nullopt, from_kafka(m.err(), where), o);
}

expected<std::unique_ptr<async_producer::client>> async_producer::make_client(bool wait_for_leaders) {
  auto c = std::make_unique<client>();
  auto conf = make_conf(cfg_, {
                                {"enable.idempotence", "true"},
                                {"acks", "all"},
                                {"linger.ms", "1"},
                                {"message.timeout.ms", std::to_string(cfg_.delivery_timeout.count())},
                                {"partitioner", "murmur2_random"},
                              });
  if (!conf)
    return std::move(conf).error();
  std::string err;
  if ((*conf)->set("dr_cb", &c->reports, err) != RdKafka::Conf::CONF_OK)
    return error{errc::invalid_argument, err};
  if (auto ok = set_events(**conf, c->ev); !ok)
    return std::move(ok).error();
  c->p.reset(RdKafka::Producer::create(conf->get(), err));
  if (!c->p)
    return error{errc::kafka_error, "cannot create producer: " + err};
  // A topic first named in a produce call is looked up only at librdkafka's next topic scan
  // (once a second), and its first message waits for that. A topic handle asks for the
  // leaders at once (asynchronously); the first producer also waits for the answer.
  for (auto& name : topics_) {
    std::unique_ptr<RdKafka::Topic> t{RdKafka::Topic::create(c->p.get(), name, nullptr, err)};
    if (!t)
      continue;
    RdKafka::Metadata* md = nullptr;
    if (wait_for_leaders &&
        c->p->metadata(false, t.get(), &md, static_cast<int>(cfg_.request_timeout.count())) == RdKafka::ERR_NO_ERROR)
      delete md;
    c->topics.push_back(std::move(t));
  }
  return c;
}

expected<std::unique_ptr<async_producer>> async_producer::make(const kafka_config& cfg,
                                                               std::vector<std::string> topics) {
  std::unique_ptr<async_producer> self{new async_producer};
  self->cfg_ = cfg;
  self->topics_ = std::move(topics);
  auto c = self->make_client(true);
  if (!c)
    return std::move(c).error();
  self->c_ = std::move(*c);
  auto* raw = self.get();
  self->poller_ = std::thread{[raw] {
    while (!raw->stop_.load(std::memory_order_relaxed)) {
      raw->c_->p->poll(20);
      raw->replace_if_fatal();
    }
  }};
  return self;
}

// Runs on the poll thread, the only one that swaps the client.
void async_producer::replace_if_fatal() {
  if (!c_->ev.fatal())
    return;
  auto fresh = make_client(false); // on the poll thread: it must not wait for the brokers
  if (!fresh) {
    persistence_log().error("cannot replace the fatal producer: {}", fresh.error().to_string());
    return; // stays unhealthy; the next poll tries again
  }
  std::unique_ptr<client> old;
  {
    std::unique_lock guard{mtx_};
    old = std::exchange(c_, std::move(*fresh));
  }
  // Everything the old producer still holds fails now, as unknown (client::dr).
  old->p->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
  old->p->poll(0);
  persistence_log().warn("replaced the fatal producer");
}

bool async_producer::healthy() const noexcept {
  std::shared_lock guard{mtx_};
  return !c_->ev.fatal();
}

void async_producer::inject_fatal(const std::string& reason) {
  std::shared_lock guard{mtx_};
  rd_kafka_test_fatal_error(c_->p->c_ptr(), RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason.c_str());
}

async_producer::~async_producer() {
  if (c_) {
    c_->p->flush(static_cast<int>(cfg_.delivery_timeout.count()));
    c_->p->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
  }
  stop_ = true;
  {
    // The poll thread's poll returns now, not at its timeout (RdKafka::Handle::yield only
    // affects the calling thread).
    std::shared_lock guard{mtx_};
    if (c_) {
      auto* q = rd_kafka_queue_get_main(c_->p->c_ptr());
      rd_kafka_queue_yield(q);
      rd_kafka_queue_destroy(q);
    }
  }
  if (poller_.joinable())
    poller_.join();
  if (c_)
    c_->p->poll(0); // serve the purge reports so that every callback fires
}

void async_producer::send(std::vector<record> recs, append_callback cb) {
  if (recs.empty())
    return cb(append_result{std::vector<position>{}});
  auto b = std::make_shared<batch>();
  b->remaining = recs.size();
  b->res.positions.resize(recs.size());
  b->res.outcomes.resize(recs.size(), event_outcome::unknown);
  b->cb = std::move(cb);
  std::size_t i = 0;
  auto err = RdKafka::ERR_NO_ERROR;
  {
    std::shared_lock guard{mtx_};
    for (; i < recs.size() && err == RdKafka::ERR_NO_ERROR; ++i) {
      auto* it = new item{b, i};
      err = produce(*c_->p, recs[i], it);
      if (err != RdKafka::ERR_NO_ERROR)
        delete it;
    }
  }
  if (err == RdKafka::ERR_NO_ERROR)
    return;
  // This record and every one after it were never queued; the ones before it were and
  // report their own outcomes.
  auto e = from_kafka(err, "produce to " + recs[i - 1].topic);
  for (std::size_t j = i - 1; j < recs.size(); ++j)
    b->done(j, std::nullopt, e, event_outcome::not_written);
}

// -- partition_reader ---------------------------------------------------------

expected<std::unique_ptr<partition_reader>> partition_reader::make(const kafka_config& cfg, bool read_committed) {
  std::unique_ptr<partition_reader> self{new partition_reader};
  auto conf = make_conf(cfg, {
                               {"enable.partition.eof", "true"},
                               {"auto.offset.reset", "error"},
                               {"isolation.level", read_committed ? "read_committed" : "read_uncommitted"},
                               {"fetch.wait.max.ms", "10"},
                               {"queued.max.messages.kbytes", "16384"},
                             });
  if (!conf)
    return std::move(conf).error();
  std::string err;
  self->c_.reset(RdKafka::Consumer::create(conf->get(), err));
  if (!self->c_)
    return error{errc::kafka_error, "cannot create consumer: " + err};
  self->timeout_ = cfg.request_timeout;
  return self;
}

partition_reader::~partition_reader() { stop_current(); }

void partition_reader::stop_current() {
  if (topic_ && part_ >= 0)
    c_->stop(topic_.get(), part_);
  part_ = -1;
  next_ = -1;
}

expected<read_position> partition_reader::read_messages(const std::string& topic, partition_id p, std::int64_t from,
                                                         std::size_t max, const message_fn& on_message) {
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  const bool same = topic_ && topic_->name() == topic && part_ == p.value() && next_ == from;
  if (!same) {
    stop_current();
    // The end offset first (a round trip): a fetch at the end returns only after the
    // broker's fetch wait, so the read stops at this end instead, and an empty range is not
    // fetched at all. (read_committed: the last stable offset.) An offset beyond the end is
    // left to the fetch, which reports it.
    std::int64_t lo = 0, hi = 0;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const auto qerr = c_->query_watermark_offsets(topic, p.value(), &lo, &hi, static_cast<int>(std::max<long>(left.count(), 1)));
    end_ = qerr == RdKafka::ERR_NO_ERROR ? hi : -1;
    if (end_ >= 0 && (from == end_ || (from == RdKafka::Topic::OFFSET_BEGINNING && lo == end_))) {
      read_position empty;
      empty.next = offset{end_};
      empty.end = true;
      return empty;
    }
    if (!topic_ || topic_->name() != topic) {
      std::string err;
      topic_.reset(RdKafka::Topic::create(c_.get(), topic, nullptr, err));
      if (!topic_)
        return error{errc::kafka_error, "cannot open topic " + topic + ": " + err};
    }
    auto err = c_->start(topic_.get(), p.value(), from);
    if (err != RdKafka::ERR_NO_ERROR)
      return from_kafka(err, "cannot read " + topic + "/" + std::to_string(p.value()));
    part_ = p.value();
    next_ = from;
  }
  read_position out;
  out.next = offset{from};
  std::size_t got = 0;
  while (got < max) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (got == 0)
        return error{errc::timeout, "no data from " + topic + "/" + std::to_string(p.value()) + " within " +
                                        std::to_string(timeout_.count()) + " ms"};
      break;
    }
    // One call takes many messages: per-message consume() costs a lock and a clock read each.
    // It takes what is there without waiting: a batch call waits for a full batch (or its
    // timeout), which would add that wait to every read that reaches the end. Only when
    // nothing is there does a single consume wait, returning with the first message (or the
    // end of the partition).
    std::array<rd_kafka_message_t*, 512> msgs{};
    const auto want = std::min(msgs.size(), max - got);
    auto n = rd_kafka_consume_batch(topic_->c_ptr(), part_, 0, msgs.data(), want);
    if (n == 0)
      if (auto* one = rd_kafka_consume(topic_->c_ptr(), part_, static_cast<int>(std::min<long>(left.count(), 100)))) {
        msgs[0] = one;
        n = 1;
      }
    if (n < 0)
      return from_kafka(static_cast<RdKafka::ErrorCode>(rd_kafka_last_error()), "read " + topic);
    std::optional<expected<read_position>> done;
    for (ssize_t i = 0; i < n; ++i) {
      auto* m = msgs[static_cast<std::size_t>(i)];
      if (!done) {
        switch (static_cast<RdKafka::ErrorCode>(m->err)) {
          case RdKafka::ERR_NO_ERROR:
            if (auto ok = on_message(m); !ok)
              done = std::move(ok).error();
            ++got;
            out.next = offset{m->offset + 1};
            next_ = out.next.value();
            if (!done && end_ >= 0 && next_ >= end_) { // the end asked for at the start
              out.end = true;
              done = out;
            }
            break;
          case RdKafka::ERR__PARTITION_EOF:
            out.next = offset{m->offset};
            out.end = true;
            done = out;
            break;
          case RdKafka::ERR__TIMED_OUT:
          case RdKafka::ERR__TRANSPORT:
          case RdKafka::ERR__ALL_BROKERS_DOWN:
            break; // keep waiting until the deadline
          default:
            done = from_kafka(static_cast<RdKafka::ErrorCode>(m->err),
                              "read " + topic + "/" + std::to_string(p.value()) + " from " + std::to_string(from));
        }
      }
      rd_kafka_message_destroy(m);
    }
    if (done) {
      // Stop fetching: an idle reader must not poll the broker in the background.
      stop_current();
      return std::move(*done);
    }
  }
  return out;
}

expected<raw_chunk> partition_reader::read(const std::string& topic, partition_id p, std::int64_t from,
                                           std::size_t max) {
  raw_chunk out;
  auto pos = read_messages(topic, p, from, max, [&](const rd_kafka_message_t* m) -> expected<void> {
    out.records.push_back(to_record(m));
    return {};
  });
  if (!pos)
    return std::move(pos).error();
  out.next = pos->next;
  out.end = pos->end;
  return out;
}

expected<std::int32_t> partition_count(RdKafka::Handle& h, const std::string& topic, std::chrono::milliseconds timeout) {
  std::string err;
  std::unique_ptr<RdKafka::Topic> t{RdKafka::Topic::create(&h, topic, nullptr, err)};
  RdKafka::Metadata* md = nullptr;
  auto code = h.metadata(false, t.get(), &md, static_cast<int>(timeout.count()));
  std::unique_ptr<RdKafka::Metadata> hold{md};
  if (code != RdKafka::ERR_NO_ERROR)
    return from_kafka(code, "no metadata of " + topic);
  for (auto* tm : *md->topics())
    if (tm->topic() == topic && tm->err() == RdKafka::ERR_NO_ERROR && !tm->partitions()->empty())
      return static_cast<std::int32_t>(tm->partitions()->size());
  return error{errc::topic_missing, "topic " + topic + " does not exist"};
}

expected<std::int64_t> high_watermark_until(RdKafka::Handle& h, const std::string& topic, std::int32_t p,
                                            std::chrono::steady_clock::time_point deadline, const std::string& what) {
  for (;;) {
    std::int64_t low = 0, high = 0;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto code = h.query_watermark_offsets(topic, p, &low, &high, static_cast<int>(std::max<long>(left.count(), 1)));
    if (code == RdKafka::ERR_NO_ERROR)
      return high;
    const bool gone = code == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART || code == RdKafka::ERR__UNKNOWN_TOPIC ||
                      code == RdKafka::ERR__UNKNOWN_PARTITION;
    if (gone || std::chrono::steady_clock::now() + std::chrono::milliseconds{50} >= deadline)
      return from_kafka(code, what + ": cannot read the end of " + topic + "/" + std::to_string(p));
    std::this_thread::sleep_for(std::chrono::milliseconds{50}); // a transient error: a leader moving
  }
}

record_view view_of(const rd_kafka_message_t* m, std::string_view topic) {
  record_view v;
  v.topic = topic;
  v.partition = partition_id{m->partition};
  v.off = offset{m->offset};
  if (m->key)
    v.key = std::string_view{static_cast<const char*>(m->key), m->key_len};
  if (m->payload)
    v.value = std::string_view{static_cast<const char*>(m->payload), m->len};
  rd_kafka_headers_t* hs = nullptr;
  if (rd_kafka_message_headers(m, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR && hs) {
    const char* name = nullptr;
    const void* val = nullptr;
    size_t size = 0;
    v.headers.reserve(rd_kafka_header_cnt(hs));
    for (size_t i = 0; rd_kafka_header_get_all(hs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
      v.headers.emplace_back(name, val ? std::string_view{static_cast<const char*>(val), size} : std::string_view{});
  }
  return v;
}

expected<void> partition_reader::read_all(const std::string& topic, partition_id p,
                                          const std::function<void(record&&)>& f) {
  std::int64_t from = RdKafka::Topic::OFFSET_BEGINNING;
  for (;;) {
    auto c = read(topic, p, from, 1024);
    if (!c)
      return std::move(c).error();
    for (auto& r : c->records)
      f(std::move(r));
    if (c->end)
      return {};
    from = c->next.value();
  }
}

expected<offset> partition_reader::high_watermark(const std::string& topic, partition_id p) {
  // Right after a topic is created, the leader may not be known yet: retry until the bound.
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    int64_t lo = 0, hi = 0;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto err = c_->query_watermark_offsets(topic, p.value(), &lo, &hi, static_cast<int>(std::max<long>(left.count(), 1)));
    if (err == RdKafka::ERR_NO_ERROR)
      return offset{hi};
    const bool retriable = err == RdKafka::ERR_LEADER_NOT_AVAILABLE || err == RdKafka::ERR_NOT_LEADER_FOR_PARTITION ||
                           err == RdKafka::ERR__UNKNOWN_PARTITION || err == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART ||
                           err == RdKafka::ERR__TRANSPORT;
    if (!retriable || std::chrono::steady_clock::now() >= deadline)
      return from_kafka(err, "watermarks of " + topic + "/" + std::to_string(p.value()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20)); // metadata refresh back-off
  }
}

void partition_reader::warm(const std::string& topic) {
  int64_t lo = 0, hi = 0;
  c_->query_watermark_offsets(topic, 0, &lo, &hi, static_cast<int>(std::min<long>(timeout_.count(), 1000)));
}

} // namespace cafes::detail
