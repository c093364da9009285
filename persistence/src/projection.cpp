// Projections: a consumer-group reader that hands batches to a store or a transform and
// commits its offsets with their effects (docs/read-side.md).
#include "cafes/persistence/projection.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cafes/persistence/dead_letter.hpp"
#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/logger.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "kafka_common.hpp"

namespace cafes {

std::string dlq_topic_of(const std::string& events_topic) {
  constexpr std::string_view suffix = ".events";
  if (events_topic.size() > suffix.size() && events_topic.ends_with(suffix))
    return events_topic.substr(0, events_topic.size() - suffix.size()) + ".dlq";
  return events_topic + ".dlq";
}

namespace {

using tp_key = std::pair<std::string, std::int32_t>;

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string describe(const std::vector<RdKafka::TopicPartition*>& parts) {
  std::string s;
  for (auto* tp : parts)
    s += (s.empty() ? "" : ",") + tp->topic() + "/" + std::to_string(tp->partition());
  return s.empty() ? "none" : s;
}

std::vector<topic_partition> to_list(const std::vector<RdKafka::TopicPartition*>& parts) {
  std::vector<topic_partition> out;
  for (auto* tp : parts)
    out.push_back(topic_partition{tp->topic(), partition_id{tp->partition()}});
  return out;
}

/// Frees a librdkafka partition list when it goes out of scope.
struct tp_list {
  std::vector<RdKafka::TopicPartition*> v;
  ~tp_list() { RdKafka::TopicPartition::destroy(v); }
};

/// "category:code" of an error, as error::to_string writes it.
std::string error_name(const error& e) {
  return error{e.code, ""}.to_string();
}

/// Delivery reports of the store flavour's dead-letter producer: each produce waits for its own.
struct sync_reports final : RdKafka::DeliveryReportCb {
  void dr_cb(RdKafka::Message& m) override {
    auto* d = static_cast<std::promise<RdKafka::ErrorCode>*>(m.msg_opaque());
    d->set_value(m.err());
    delete d;
  }
};

/// One record of a batch: where its position lives (the source partition, or the dead-letter
/// partition it is re-driven from) and what it holds.
struct item {
  tp_key at;           // the partition whose position it advances
  std::int64_t off;    // its offset there
  record rec;          // the record to handle (a re-driven letter's original)
  enum kind_t { event, skip, undecodable } kind = event;
  projected_event ev;  // kind == event
  std::optional<error> err; // kind == undecodable
};

} // namespace

struct projection::impl final : RdKafka::RebalanceCb {
  kafka_config cfg;
  projection_options opts;
  std::shared_ptr<projection_store> store; // into_store
  transform_fn transform;                  // exactly_once
  exactly_once_hooks hooks;
  bool eos = false;
  std::map<std::string, projection_source> sources; // by topic
  detail::client_events cev{"projection consumer"};
  detail::client_events pev{"projection producer"};
  sync_reports reports;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  std::unique_ptr<RdKafka::Producer> producer;
  std::map<std::string, std::int32_t> partition_counts; // of output topics

  // Shared with other threads (lag, stats, requests): under mtx.
  mutable std::mutex mtx;
  mutable std::condition_variable cv;
  std::map<tp_key, std::int64_t> positions; // held partitions: the next offset to handle
  std::map<tp_key, std::int64_t> stored;    // into_store: what the store holds (-1: none)
  std::map<tp_key, std::uint64_t> generation; // bumped at each assignment of a partition
  bool joined = false;
  projection_stats st;
  std::optional<error> failed;
  std::deque<std::function<void()>> requests;
  std::atomic<bool> stop{false};
  std::thread thread;

  // ---- set-up ---------------------------------------------------------------------------

  expected<void> open() {
    for (auto& s : opts.sources) {
      if (s.topic.empty())
        return error{errc::invalid_argument, "projection '" + opts.name + "': a source without a topic"};
      auto src = s;
      if (src.dlq_topic.empty())
        src.dlq_topic = dlq_topic_of(src.topic);
      sources[src.topic] = std::move(src);
    }
    const auto session = opts.session_timeout.count();
    auto conf = detail::make_conf(cfg, {
                                         {"group.id", opts.name},
                                         {"partition.assignment.strategy", "cooperative-sticky"},
                                         {"session.timeout.ms", std::to_string(session)},
                                         {"heartbeat.interval.ms", std::to_string(std::max<long>(session / 4, 100))},
                                         {"enable.auto.commit", "false"},
                                         {"enable.auto.offset.store", "false"},
                                         {"auto.offset.reset", "earliest"},
                                         {"isolation.level", "read_committed"},
                                         {"enable.partition.eof", "false"},
                                         {"fetch.wait.max.ms", "50"},
                                       });
    if (!conf)
      return std::move(conf).error();
    std::string err;
    if ((*conf)->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err) != RdKafka::Conf::CONF_OK)
      return error{errc::invalid_argument, err};
    if (auto ok = detail::set_events(**conf, cev); !ok)
      return std::move(ok).error();
    consumer.reset(RdKafka::KafkaConsumer::create(conf->get(), err));
    if (!consumer)
      return error{errc::kafka_error, "projection '" + opts.name + "': cannot create the consumer: " + err};

    std::map<std::string, std::string> pprops{{"enable.idempotence", "true"},
                                              {"acks", "all"},
                                              {"linger.ms", "5"},
                                              {"message.timeout.ms", std::to_string(cfg.delivery_timeout.count())}};
    if (eos)
      pprops["transactional.id"] = opts.name + "." + opts.instance;
    auto pconf = detail::make_conf(cfg, pprops);
    if (!pconf)
      return std::move(pconf).error();
    if (!eos && (*pconf)->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&reports), err) != RdKafka::Conf::CONF_OK)
      return error{errc::invalid_argument, err};
    if (auto ok = detail::set_events(**pconf, pev); !ok)
      return std::move(ok).error();
    producer.reset(RdKafka::Producer::create(pconf->get(), err));
    if (!producer)
      return error{errc::kafka_error, "projection '" + opts.name + "': cannot create the producer: " + err};
    if (eos) {
      // Fences an older run of this instance and finishes its open transaction.
      std::unique_ptr<RdKafka::Error> e{producer->init_transactions(static_cast<int>(cfg.request_timeout.count()))};
      if (e)
        return detail::from_kafka(*e, "projection '" + opts.name + "': cannot initialize transactions");
    }
    std::vector<std::string> topics;
    for (auto& [t, src] : sources) {
      topics.push_back(t);
      for (const std::string* name : std::initializer_list<const std::string*>{&t, &src.dlq_topic})
        if (auto n = partitions_of(*name); !n)
          return std::move(n).error();
    }
    for (auto& t : opts.outputs)
      if (auto n = partitions_of(t); !n)
        return std::move(n).error();
    if (auto code = consumer->subscribe(topics); code != RdKafka::ERR_NO_ERROR)
      return detail::from_kafka(code, "projection '" + opts.name + "': cannot subscribe");
    return {};
  }

  // ---- rebalances -----------------------------------------------------------------------

  void rebalance_cb(RdKafka::KafkaConsumer* c, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& parts) override {
    {
      std::lock_guard g{mtx};
      ++st.rebalances;
    }
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      persistence_log().info("projection {}/{}: assigned {}", opts.name, opts.instance, describe(parts));
      auto ok = assigned(parts);
      if (!ok) {
        fail(std::move(ok).error());
        return;
      }
      if (std::unique_ptr<RdKafka::Error> e{c->incremental_assign(parts)}; e)
        fail(detail::from_kafka(*e, "projection '" + opts.name + "': cannot take its partitions"));
    } else if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
      persistence_log().info("projection {}/{}: {} {}", opts.name, opts.instance,
                             c->assignment_lost() ? "lost" : "releases", describe(parts));
      {
        std::lock_guard g{mtx};
        for (auto* tp : parts) {
          positions.erase({tp->topic(), tp->partition()});
          stored.erase({tp->topic(), tp->partition()});
        }
      }
      if (hooks.revoked && !parts.empty())
        hooks.revoked(to_list(parts));
      if (std::unique_ptr<RdKafka::Error> e{c->incremental_unassign(parts)}; e)
        persistence_log().error("projection {}: unassign failed: {}", opts.name, e->str());
    } else {
      persistence_log().error("projection {}: rebalance failed: {}", opts.name, RdKafka::err2str(err));
    }
  }

  /// Learns where each newly assigned partition starts and sets it on `parts`.
  expected<void> assigned(std::vector<RdKafka::TopicPartition*>& parts) {
    std::map<tp_key, std::int64_t> start, from;
    if (eos) {
      // The group's committed offsets; read_committed consumers ask for stable ones (an
      // offset commit of an open transaction is waited for).
      if (auto code = consumer->committed(parts, static_cast<int>(cfg.request_timeout.count()));
          code != RdKafka::ERR_NO_ERROR)
        return detail::from_kafka(code, "projection '" + opts.name + "': cannot read its committed offsets");
      for (auto* tp : parts)
        start[{tp->topic(), tp->partition()}] = tp->offset() >= 0 ? tp->offset() : 0;
    } else {
      for (auto* tp : parts) {
        auto p = store->position(tp->topic(), partition_id{tp->partition()});
        if (!p)
          return std::move(p).error();
        from[{tp->topic(), tp->partition()}] = *p ? (*p)->value() : -1;
        start[{tp->topic(), tp->partition()}] = *p ? (*p)->value() : 0;
        tp->set_offset(*p ? (*p)->value() : RdKafka::Topic::OFFSET_BEGINNING);
      }
    }
    if (eos && hooks.assigned && !parts.empty())
      if (auto ok = hooks.assigned(to_list(parts)); !ok)
        return ok;
    std::lock_guard g{mtx};
    for (auto& [k, v] : start) {
      positions[k] = v;
      ++generation[k];
    }
    for (auto& [k, v] : from)
      stored[k] = v;
    joined = true;
    cv.notify_all();
    return {};
  }

  void fail(error e) {
    persistence_log().error("projection {}/{} stops: {}", opts.name, opts.instance, e.to_string());
    std::lock_guard g{mtx};
    if (!failed)
      failed = std::move(e);
    stop = true;
    cv.notify_all();
  }

  // ---- the loop -------------------------------------------------------------------------

  void run() {
    while (!stop.load()) {
      run_requests();
      auto batch = poll_batch();
      if (!batch.empty())
        process(std::move(batch));
      sync_positions();
      if (cev.fatal() || pev.fatal())
        fail(error{errc::fatal, "projection '" + opts.name + "': a Kafka client failed fatally"});
    }
    consumer->close(); // leaves the group: the partitions move at once
    std::lock_guard g{mtx};
    for (auto& r : requests)
      r(); // each answers that the projection stopped
    requests.clear();
  }

  void run_requests() {
    std::deque<std::function<void()>> todo;
    {
      std::lock_guard g{mtx};
      todo.swap(requests);
    }
    for (auto& r : todo)
      r();
  }

  /// Collects up to max_batch records; drops those of partitions revoked meanwhile.
  std::vector<item> poll_batch() {
    std::vector<item> out;
    std::vector<std::uint64_t> gens;
    auto gen_of = [&](const tp_key& k) {
      std::lock_guard g{mtx};
      auto i = generation.find(k);
      return positions.count(k) && i != generation.end() ? i->second : 0;
    };
    int wait = 100;
    while (out.size() < opts.max_batch && !stop.load()) {
      std::unique_ptr<RdKafka::Message> m{consumer->consume(wait)};
      if (!m)
        break;
      if (m->err() == RdKafka::ERR__TIMED_OUT)
        break;
      if (m->err() != RdKafka::ERR_NO_ERROR) {
        persistence_log().warn("projection {}: {}", opts.name, m->errstr());
        break;
      }
      wait = 0; // more only if already fetched
      item it;
      it.at = {m->topic_name(), m->partition()};
      it.off = m->offset();
      it.rec = detail::to_record(m->c_ptr());
      gens.push_back(gen_of(it.at));
      out.push_back(std::move(it));
    }
    // A partition revoked (or revoked and assigned again) while the batch was collected is read
    // again from its committed position by whoever holds it now.
    std::vector<item> kept;
    kept.reserve(out.size());
    for (std::size_t i = 0; i < out.size(); ++i)
      if (gens[i] != 0 && gens[i] == gen_of(out[i].at))
        kept.push_back(std::move(out[i]));
    return kept;
  }

  /// Decodes each item: barrier records are skipped, records that do not decode are dead
  /// letters (attempt 0).
  void decode(std::vector<item>& batch) {
    for (auto& it : batch) {
      if (it.kind == item::skip)
        continue;
      if (it.rec.key == barrier_key) {
        it.kind = item::skip;
        continue;
      }
      auto env = decode_event(it.rec);
      if (!env) {
        it.kind = item::undecodable;
        it.err = std::move(env).error();
        continue;
      }
      it.ev.topic = it.rec.topic;
      it.ev.partition = it.rec.partition;
      it.ev.off = it.rec.off;
      auto src = sources.find(it.rec.topic);
      if (src != sources.end() && src->second.decode) {
        auto v = src->second.decode(*env);
        if (!v) {
          it.kind = item::undecodable;
          it.err = std::move(v).error();
          continue;
        }
        it.ev.value = std::move(*v);
      }
      it.ev.envelope = std::move(*env);
    }
  }

  std::string dlq_of(const std::string& topic) const {
    auto s = sources.find(topic);
    return s != sources.end() ? s->second.dlq_topic : dlq_topic_of(topic);
  }

  record dead_letter_of(const item& it, const error& e, std::uint32_t attempts) {
    dead_letter d;
    d.original = it.rec;
    d.error = error_name(e);
    d.message = e.message;
    d.attempts = attempts;
    d.projection = opts.name;
    d.time_ms = now_ms();
    auto r = encode_dead_letter(d, dlq_of(it.rec.topic));
    r.partition = partition_id{-1}; // placed below, like any output
    persistence_log().warn("projection {}: dead-letters {} after {} attempt(s): {}", opts.name, where(it.rec),
                           attempts, e.to_string());
    return r;
  }

  std::chrono::milliseconds backoff(int attempt) const {
    auto b = opts.backoff;
    for (int i = 1; i < attempt && b < opts.max_backoff; ++i)
      b *= 2;
    return std::min(b, opts.max_backoff);
  }

  /// Sleeps for a backoff, waking early when the projection stops.
  void pause(std::chrono::milliseconds d) {
    std::unique_lock g{mtx};
    cv.wait_for(g, d, [&] { return stop.load(); });
  }

  expected<std::int32_t> partitions_of(const std::string& topic) {
    if (auto i = partition_counts.find(topic); i != partition_counts.end())
      return i->second;
    auto n = detail::partition_count(*producer, topic, cfg.request_timeout);
    if (!n)
      return error{n.error().code, "projection '" + opts.name + "': " + n.error().message};
    return partition_counts[topic] = *n;
  }

  /// Sets the partition of an output record that has none.
  expected<void> place(record& r) {
    auto n = partitions_of(r.topic);
    if (!n)
      return std::move(n).error();
    if (r.partition.value() < 0 || r.partition.value() >= *n)
      r.partition = partition_for(r.key, *n);
    return {};
  }

  /// Produces dead letters through the store flavour's idempotent producer and waits until
  /// every one is acknowledged, retrying the others (a letter must be durable before the
  /// position moves past its record).
  void produce_durably(std::vector<record> letters) {
    for (int attempt = 1; !letters.empty() && !stop.load(); ++attempt) {
      std::vector<std::pair<record*, std::future<RdKafka::ErrorCode>>> sent;
      std::optional<error> err;
      for (auto& r : letters) {
        if (auto ok = place(r); !ok) {
          err = std::move(ok).error();
          continue;
        }
        auto* done = new std::promise<RdKafka::ErrorCode>;
        auto f = done->get_future();
        if (auto code = detail::produce(*producer, r, done); code != RdKafka::ERR_NO_ERROR) {
          delete done;
          err = detail::from_kafka(code, "cannot write a dead letter to " + r.topic);
          continue;
        }
        sent.emplace_back(&r, std::move(f));
      }
      producer->flush(static_cast<int>(cfg.delivery_timeout.count()) + 1000);
      std::vector<record> again;
      for (auto& [r, f] : sent) {
        if (f.wait_for(std::chrono::seconds{1}) != std::future_status::ready)
          err = error{errc::timeout, "a dead letter to " + r->topic + " was not acknowledged in time"};
        else if (auto got = f.get(); got == RdKafka::ERR_NO_ERROR)
          continue;
        else
          err = detail::from_kafka(got, "cannot write a dead letter to " + r->topic);
        again.push_back(std::move(*r));
      }
      if (!err)
        return;
      // Those never sent are retried too.
      for (auto& r : letters)
        if (std::none_of(sent.begin(), sent.end(), [&](auto& s) { return s.first == &r; }))
          again.push_back(std::move(r));
      letters = std::move(again);
      persistence_log().warn("projection {}: {} (attempt {})", opts.name, err->to_string(), attempt);
      pause(backoff(attempt));
    }
  }

  void process(std::vector<item> batch) {
    decode(batch);
    if (eos)
      process_eos(batch);
    else
      process_store(batch, 0, batch.size());
  }

  /// Between batches every record fetched so far is handled (or was rewound to): a
  /// partition's position is then the consumer's, which is also past the transaction markers
  /// the consumer skipped. (It matters for the lag only: commits use the records' offsets.)
  void sync_positions() {
    tp_list parts;
    {
      std::lock_guard g{mtx};
      for (auto& [k, _] : positions)
        parts.v.push_back(RdKafka::TopicPartition::create(k.first, k.second));
    }
    if (parts.v.empty() || consumer->position(parts.v) != RdKafka::ERR_NO_ERROR)
      return;
    std::lock_guard g{mtx};
    for (auto* tp : parts.v)
      if (auto i = positions.find({tp->topic(), tp->partition()}); i != positions.end() && tp->offset() > i->second)
        i->second = tp->offset();
    cv.notify_all();
  }

  // ---- into a store -----------------------------------------------------------------------

  /// The advances of items [first, last): each partition from its stored position to past
  /// its last item.
  std::vector<position_advance> advances_of(const std::vector<item>& b, std::size_t first, std::size_t last) {
    std::map<tp_key, std::int64_t> to;
    for (auto i = first; i < last; ++i)
      to[b[i].at] = std::max(to[b[i].at], b[i].off + 1);
    std::vector<position_advance> out;
    std::lock_guard g{mtx};
    for (auto& [k, t] : to) {
      auto s = stored.find(k);
      out.push_back({k.first, partition_id{k.second}, offset{s != stored.end() ? s->second : -1}, offset{t}});
    }
    return out;
  }

  /// Handles items [first, last) in one store transaction; returns the index of the first
  /// item whose handler failed, or `last`. Sets `commit_err` when the commit failed.
  std::size_t try_unit(const std::vector<item>& b, std::size_t first, std::size_t last,
                       std::optional<error>& handler_err, std::optional<error>& commit_err) {
    if (auto ok = store->begin(); !ok) {
      commit_err = std::move(ok).error();
      return first;
    }
    for (auto i = first; i < last; ++i) {
      if (b[i].kind != item::event)
        continue;
      if (auto ok = store->handle(b[i].ev); !ok) {
        store->rollback();
        handler_err = std::move(ok).error();
        return i;
      }
    }
    if (auto ok = store->commit(advances_of(b, first, last)); !ok) {
      store->rollback();
      commit_err = std::move(ok).error();
      return first;
    }
    committed(b, first, last);
    return last;
  }

  /// Books a committed unit: positions, stored positions and counters.
  void committed(const std::vector<item>& b, std::size_t first, std::size_t last) {
    std::lock_guard g{mtx};
    for (auto i = first; i < last; ++i) {
      auto& k = b[i].at;
      if (!eos)
        stored[k] = std::max(stored.count(k) ? stored[k] : -1, b[i].off + 1);
      if (auto p = positions.find(k); p != positions.end())
        p->second = std::max(p->second, b[i].off + 1);
      if (b[i].kind == item::event)
        ++st.handled;
    }
    ++st.batches;
    cv.notify_all();
  }

  /// A commit that found another position stored: this instance lost the partitions; the
  /// group (or the store) knows where they are. Reads them again from the store.
  void lost_positions(const std::vector<item>& b, std::size_t first) {
    std::set<tp_key> seen;
    for (auto i = first; i < b.size(); ++i)
      seen.insert(b[i].at);
    std::lock_guard g{mtx};
    ++st.aborted;
    for (auto& k : seen) {
      if (!positions.count(k))
        continue;
      auto p = store->position(k.first, partition_id{k.second});
      std::int64_t at = p && *p ? (*p)->value() : 0;
      stored[k] = p && *p ? (*p)->value() : -1;
      positions[k] = at;
      ++generation[k];
      std::unique_ptr<RdKafka::TopicPartition> tp{RdKafka::TopicPartition::create(k.first, k.second, at)};
      consumer->seek(*tp, static_cast<int>(cfg.request_timeout.count()));
    }
  }

  void process_store(std::vector<item>& b, std::size_t first, std::size_t last) {
    int commit_attempt = 0;
    while (first < last && !stop.load()) {
      std::optional<error> handler_err, commit_err;
      // Undecodable records first go to the dead-letter topic (before any position passes them).
      std::vector<record> letters;
      for (auto i = first; i < last; ++i)
        if (b[i].kind == item::undecodable && b[i].err) {
          letters.push_back(dead_letter_of(b[i], *b[i].err, 0));
          b[i].err.reset();
        }
      if (!letters.empty()) {
        const auto n = letters.size();
        produce_durably(std::move(letters));
        std::lock_guard g{mtx};
        st.dead_letters += n;
      }
      auto at = try_unit(b, first, last, handler_err, commit_err);
      if (commit_err) {
        if (commit_err->code == errc::fenced) {
          persistence_log().warn("projection {}: {}; reads its partitions again from the store", opts.name,
                                 commit_err->to_string());
          lost_positions(b, first);
          return;
        }
        ++commit_attempt;
        persistence_log().warn("projection {}: the store failed: {} (attempt {})", opts.name,
                               commit_err->to_string(), commit_attempt);
        pause(backoff(commit_attempt));
        continue;
      }
      commit_attempt = 0;
      if (at == last)
        return;
      // Item `at` failed: commit what came before it, then retry it alone.
      if (at > first) {
        std::optional<error> h2, c2;
        if (try_unit(b, first, at, h2, c2) != at)
          continue; // the prefix failed this time: start over from `first`
        first = at;
      }
      if (!retry_alone(b, at, std::move(*handler_err)))
        return;
      first = at + 1;
    }
  }

  /// Retries item i alone with backoff; after the last attempt dead-letters it and moves its
  /// position past it. Returns false if the projection stopped or lost the partition.
  bool retry_alone(std::vector<item>& b, std::size_t i, error last_err) {
    for (int attempt = 2; attempt <= opts.max_attempts; ++attempt) {
      {
        std::lock_guard g{mtx};
        ++st.retries;
      }
      pause(backoff(attempt - 1));
      if (stop.load())
        return false;
      std::optional<error> h, c;
      if (try_unit(b, i, i + 1, h, c) == i + 1)
        return true;
      if (c && c->code == errc::fenced) {
        lost_positions(b, i);
        return false;
      }
      if (h)
        last_err = std::move(*h);
    }
    produce_durably({dead_letter_of(b[i], last_err, static_cast<std::uint32_t>(opts.max_attempts))});
    {
      std::lock_guard g{mtx};
      ++st.dead_letters;
    }
    b[i].kind = item::skip;
    for (int attempt = 1; !stop.load(); ++attempt) {
      std::optional<error> h, c;
      if (try_unit(b, i, i + 1, h, c) == i + 1)
        return true;
      if (c && c->code == errc::fenced) {
        lost_positions(b, i);
        return false;
      }
      pause(backoff(attempt));
    }
    return false;
  }

  // ---- exactly once into Kafka ----------------------------------------------------------

  /// Runs the transform on one event with retries; returns its records, or a dead letter.
  std::vector<record> transform_one(const item& it) {
    std::optional<error> last;
    for (int attempt = 1; attempt <= opts.max_attempts && !stop.load(); ++attempt) {
      if (attempt > 1) {
        {
          std::lock_guard g{mtx};
          ++st.retries;
        }
        pause(backoff(attempt - 1));
      }
      projection_output out;
      auto ok = transform(it.ev, out);
      if (ok)
        return std::move(out.records);
      last = std::move(ok).error();
    }
    if (stop.load())
      return {};
    {
      std::lock_guard g{mtx};
      ++st.dead_letters;
    }
    return {dead_letter_of(it, *last, static_cast<std::uint32_t>(opts.max_attempts))};
  }

  enum class txn_outcome { ok, abort, fatal };

  /// Runs a call of the transactional API, again after a retriable error (a broker restarting,
  /// a request timed out), up to max_attempts times. A fatal error (this instance was fenced
  /// by a newer run of itself, or the producer failed) stops the projection: a failed
  /// producer is never replaced in place, since a resumed zombie's new producer would fence
  /// the rightful instance. Any other error needs an abort (an abort that fails stops it).
  txn_outcome txn_call(const std::function<RdKafka::Error*()>& call, const char* what, std::optional<error>& err) {
    for (int attempt = 1;; ++attempt) {
      std::unique_ptr<RdKafka::Error> e{call()};
      if (!e)
        return txn_outcome::ok;
      err = detail::from_kafka(*e, "projection '" + opts.name + "': " + what);
      if (e->is_fatal() || pev.fatal())
        return txn_outcome::fatal;
      if (e->txn_requires_abort() || !e->is_retriable() || attempt >= opts.max_attempts || stop.load())
        return txn_outcome::abort;
      persistence_log().warn("projection {}: {} (attempt {}), again", opts.name, err->to_string(), attempt);
      pause(backoff(attempt));
    }
  }

  /// Handles the batch in one transaction with its offsets; on failure aborts and rewinds.
  void process_eos(std::vector<item>& b) {
    const int t = static_cast<int>(cfg.request_timeout.count());
    auto rewind = [&](const error& e) {
      persistence_log().warn("projection {}: batch aborted, read again: {}", opts.name, e.to_string());
      if (hooks.aborted)
        hooks.aborted();
      std::lock_guard g{mtx};
      ++st.aborted;
      std::set<tp_key> seen;
      for (auto& it : b)
        if (positions.count(it.at) && seen.insert(it.at).second) {
          std::unique_ptr<RdKafka::TopicPartition> tp{
            RdKafka::TopicPartition::create(it.at.first, it.at.second, positions[it.at])};
          consumer->seek(*tp, t);
        }
    };
    std::optional<error> failed_here;
    if (txn_call([&] { return producer->begin_transaction(); }, "cannot begin a transaction", failed_here) !=
        txn_outcome::ok) {
      fail(*failed_here);
      return;
    }
    std::uint64_t letters = 0;
    for (auto& it : b) {
      std::vector<record> out;
      if (it.kind == item::undecodable) {
        out.push_back(dead_letter_of(it, *it.err, 0));
        ++letters;
      } else if (it.kind == item::event) {
        out = transform_one(it);
      }
      if (stop.load()) {
        failed_here = error{errc::closed, "the projection stops"};
        break;
      }
      for (auto& r : out) {
        if (auto ok = place(r); !ok) {
          failed_here = std::move(ok).error();
          break;
        }
        if (auto code = detail::produce(*producer, r, nullptr); code != RdKafka::ERR_NO_ERROR) {
          failed_here = detail::from_kafka(code, "cannot write to " + r.topic);
          break;
        }
      }
      if (failed_here)
        break;
    }
    if (!failed_here) {
      std::map<tp_key, std::int64_t> next;
      for (auto& it : b)
        next[it.at] = std::max(next[it.at], it.off + 1);
      tp_list offs;
      for (auto& [k, o] : next)
        offs.v.push_back(RdKafka::TopicPartition::create(k.first, k.second, o));
      std::unique_ptr<RdKafka::ConsumerGroupMetadata> md{consumer->groupMetadata()};
      auto r = txn_call([&] { return producer->send_offsets_to_transaction(offs.v, md.get(), t); },
                        "cannot send the offsets to the transaction", failed_here);
      if (r == txn_outcome::ok)
        r = txn_call([&] { return producer->commit_transaction(t); }, "cannot commit the transaction", failed_here);
      if (r == txn_outcome::ok) {
        {
          std::lock_guard g{mtx};
          st.dead_letters += letters;
        }
        committed(b, 0, b.size());
        if (hooks.committed)
          hooks.committed();
        return;
      }
      if (r == txn_outcome::fatal) {
        fail(*failed_here);
        return;
      }
    }
    std::optional<error> abort_err;
    if (txn_call([&] { return producer->abort_transaction(t); }, "cannot abort the transaction", abort_err) !=
        txn_outcome::ok) {
      fail(*abort_err);
      return;
    }
    rewind(*failed_here);
  }

  // ---- requests from other threads ------------------------------------------------------

  /// Runs `f` on the projection's thread between batches and waits for it.
  template <class T>
  expected<T> on_thread(std::function<expected<T>()> f, std::chrono::milliseconds timeout) {
    auto done = std::make_shared<std::promise<expected<T>>>();
    auto fut = done->get_future();
    {
      std::lock_guard g{mtx};
      if (stop.load())
        return failed ? *failed : error{errc::closed, "the projection stopped"};
      requests.push_back([this, f = std::move(f), done] {
        if (stop.load() && failed)
          done->set_value(*failed);
        else if (stop.load())
          done->set_value(error{errc::closed, "the projection stopped"});
        else
          done->set_value(f());
      });
    }
    if (fut.wait_for(timeout) != std::future_status::ready)
      return error{errc::timeout, "projection '" + opts.name + "': the request was not taken in time"};
    return fut.get();
  }

  expected<void> do_reset() {
    std::vector<topic_partition> held;
    {
      std::lock_guard g{mtx};
      for (auto& [k, _] : positions)
        held.push_back({k.first, partition_id{k.second}});
    }
    // The dead letters so far are the old model's: a later re-drive starts after them.
    auto ends = dlq_ends();
    if (!ends)
      return std::move(ends).error();
    if (!eos) {
      if (auto ok = store->clear(); !ok)
        return ok;
      std::vector<position_advance> adv;
      for (auto& [k, end] : *ends)
        adv.push_back({k.first, partition_id{k.second}, offset{-1}, offset{end}});
      if (auto ok = store->begin(); !ok)
        return ok;
      if (auto ok = store->commit(adv); !ok) {
        store->rollback();
        return ok;
      }
    } else {
      tp_list offs;
      for (auto& [k, end] : *ends)
        offs.v.push_back(RdKafka::TopicPartition::create(k.first, k.second, end));
      if (auto code = consumer->commitSync(offs.v); code != RdKafka::ERR_NO_ERROR)
        return detail::from_kafka(code, "projection '" + opts.name + "': cannot move its re-drive positions");
      if (hooks.reset)
        hooks.reset(held);
    }
    std::lock_guard g{mtx};
    for (auto& tp : held) {
      tp_key k{tp.topic, tp.partition.value()};
      positions[k] = 0;
      stored[k] = -1;
      ++generation[k];
      std::unique_ptr<RdKafka::TopicPartition> p{
        RdKafka::TopicPartition::create(tp.topic, tp.partition.value(), RdKafka::Topic::OFFSET_BEGINNING)};
      consumer->seek(*p, static_cast<int>(cfg.request_timeout.count()));
    }
    persistence_log().info("projection {}/{}: reset {} partition(s) to their start", opts.name, opts.instance,
                           held.size());
    return {};
  }

  /// The end offsets of the sources' dead-letter partitions.
  expected<std::map<tp_key, std::int64_t>> dlq_ends() {
    auto reader = detail::partition_reader::make(cfg, true);
    if (!reader)
      return std::move(reader).error();
    std::map<tp_key, std::int64_t> out;
    for (auto& [_, s] : sources) {
      auto n = partitions_of(s.dlq_topic);
      if (!n)
        return std::move(n).error();
      for (std::int32_t q = 0; q < *n; ++q) {
        auto end = (*reader)->high_watermark(s.dlq_topic, partition_id{q});
        if (!end)
          return std::move(end).error();
        out[{s.dlq_topic, q}] = end->value();
      }
    }
    return out;
  }

  expected<redrive_report> do_redrive() {
    redrive_report rep;
    auto reader = detail::partition_reader::make(cfg, true);
    if (!reader)
      return std::move(reader).error();
    std::set<std::string> dlqs;
    for (auto& [_, s] : sources)
      dlqs.insert(s.dlq_topic);
    for (auto& dlq : dlqs) {
      auto n = partitions_of(dlq);
      if (!n)
        return std::move(n).error();
      for (std::int32_t q = 0; q < *n; ++q) {
        tp_key k{dlq, q};
        std::int64_t from = 0, stored_at = -1;
        if (eos) {
          tp_list parts;
          parts.v.push_back(RdKafka::TopicPartition::create(dlq, q));
          if (auto code = consumer->committed(parts.v, static_cast<int>(cfg.request_timeout.count()));
              code != RdKafka::ERR_NO_ERROR)
            return detail::from_kafka(code, "cannot read the re-drive position of " + dlq);
          from = std::max<std::int64_t>(parts.v[0]->offset(), 0);
        } else {
          auto p = store->position(dlq, partition_id{q});
          if (!p)
            return std::move(p).error();
          stored_at = *p ? (*p)->value() : -1;
          from = std::max<std::int64_t>(stored_at, 0);
        }
        auto end = (*reader)->high_watermark(dlq, partition_id{q});
        if (!end)
          return std::move(end).error();
        // Only the letters present now: those written by this re-drive come after `end`.
        while (from < end->value() && !stop.load()) {
          auto chunk = (*reader)->read(dlq, partition_id{q}, from, opts.max_batch);
          if (!chunk)
            return std::move(chunk).error();
          std::vector<item> b;
          for (auto& r : chunk->records) {
            if (r.off.value() >= end->value())
              break;
            item it;
            it.at = k;
            it.off = r.off.value();
            auto letter = decode_dead_letter(r);
            if (!letter || letter->projection != opts.name) {
              it.kind = item::skip;
              it.rec = std::move(r);
            } else {
              ++rep.letters;
              it.rec = std::move(letter->original);
            }
            b.push_back(std::move(it));
          }
          if (b.empty())
            break;
          decode(b);
          auto before = stats_now();
          {
            std::lock_guard g{mtx};
            stored[k] = stored_at;
            positions[k] = from;
          }
          if (eos)
            process_eos(b);
          else
            process_store(b, 0, b.size());
          auto after = stats_now();
          std::int64_t reached;
          {
            std::lock_guard g{mtx};
            reached = positions[k];
            stored_at = stored[k];
            positions.erase(k); // not a held partition: no lag of its own
            stored.erase(k);
          }
          if (reached <= from)
            return error{errc::transaction_aborted, "the re-drive of " + dlq + " did not commit; try again"};
          rep.failed_again += after.dead_letters - before.dead_letters;
          from = reached;
        }
      }
    }
    rep.redriven = rep.letters - std::min(rep.letters, rep.failed_again);
    persistence_log().info("projection {}: re-drove {} dead letter(s), {} failed again", opts.name, rep.letters,
                           rep.failed_again);
    return rep;
  }

  projection_stats stats_now() const {
    std::lock_guard g{mtx};
    return st;
  }
};

projection::projection(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

projection::~projection() {
  impl_->stop = true;
  impl_->cv.notify_all();
  if (impl_->thread.joinable())
    impl_->thread.join();
}

namespace {

expected<void> check(const projection_options& o) {
  if (o.name.empty())
    return error{errc::invalid_argument, "a projection needs a name"};
  if (o.instance.empty())
    return error{errc::invalid_argument, "projection '" + o.name + "': an empty instance name"};
  if (o.sources.empty())
    return error{errc::invalid_argument, "projection '" + o.name + "': no source topics"};
  if (o.max_batch == 0 || o.max_attempts < 1)
    return error{errc::invalid_argument, "projection '" + o.name + "': max_batch and max_attempts must be positive"};
  if (o.session_timeout.count() < 1000)
    return error{errc::invalid_argument, "projection '" + o.name + "': the session timeout must be at least 1000 ms"};
  return {};
}

} // namespace

/// Opens the impl's clients and starts its thread.
expected<std::unique_ptr<projection>> projection::start(std::unique_ptr<impl> d) {
  if (auto ok = d->open(); !ok)
    return std::move(ok).error();
  auto* raw = d.get();
  d->thread = std::thread{[raw] { raw->run(); }};
  return std::unique_ptr<projection>{new projection(std::move(d))};
}

expected<std::unique_ptr<projection>> projection::into_store(const kafka_config& cfg, projection_options opts,
                                                             std::shared_ptr<projection_store> store) {
  if (auto ok = check(opts); !ok)
    return std::move(ok).error();
  if (!store)
    return error{errc::invalid_argument, "projection '" + opts.name + "': no store"};
  auto d = std::make_unique<impl>();
  d->cfg = cfg;
  d->opts = std::move(opts);
  d->store = std::move(store);
  return start(std::move(d));
}

expected<std::unique_ptr<projection>> projection::exactly_once(const kafka_config& cfg, projection_options opts,
                                                               transform_fn transform, exactly_once_hooks hooks) {
  if (auto ok = check(opts); !ok)
    return std::move(ok).error();
  if (!transform)
    return error{errc::invalid_argument, "projection '" + opts.name + "': no transform"};
  auto d = std::make_unique<impl>();
  d->cfg = cfg;
  d->opts = std::move(opts);
  d->transform = std::move(transform);
  d->hooks = std::move(hooks);
  d->eos = true;
  return start(std::move(d));
}

std::vector<partition_lag> projection::lag() const {
  auto& d = *impl_;
  std::vector<partition_lag> out;
  std::map<tp_key, std::int64_t> pos;
  {
    std::lock_guard g{d.mtx};
    pos = d.positions;
  }
  for (auto& [k, p] : pos) {
    std::int64_t low = 0, high = 0;
    d.consumer->get_watermark_offsets(k.first, k.second, &low, &high);
    out.push_back({k.first, partition_id{k.second}, offset{p}, offset{std::max(high, p)}});
  }
  return out;
}

projection_stats projection::stats() const { return impl_->stats_now(); }

std::optional<error> projection::failure() const {
  std::lock_guard g{impl_->mtx};
  return impl_->failed;
}

expected<void> projection::wait_caught_up(std::chrono::milliseconds timeout) const {
  auto& d = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  {
    std::unique_lock g{d.mtx};
    if (!d.cv.wait_until(g, deadline, [&] { return d.joined || d.failed.has_value(); }))
      return error{errc::timeout, "projection '" + d.opts.name + "' has not joined its group"};
    if (d.failed)
      return *d.failed;
  }
  // The end offsets now, then wait for the positions to reach them.
  std::map<tp_key, std::int64_t> target;
  {
    std::lock_guard g{d.mtx};
    for (auto& [k, _] : d.positions)
      target[k] = 0;
  }
  for (auto& [k, t] : target) {
    auto high = detail::high_watermark_until(*d.consumer, k.first, k.second, deadline, "projection '" + d.opts.name + "'");
    if (!high)
      return std::move(high).error();
    t = *high;
  }
  std::unique_lock g{d.mtx};
  auto done = [&] {
    if (d.failed)
      return true;
    for (auto& [k, t] : target)
      if (auto i = d.positions.find(k); i != d.positions.end() && i->second < t)
        return false;
    return true;
  };
  if (!d.cv.wait_until(g, deadline, done))
    return error{errc::timeout, "projection '" + d.opts.name + "' did not catch up in time"};
  if (d.failed)
    return *d.failed;
  return {};
}

expected<void> projection::reset(std::chrono::milliseconds timeout) {
  return impl_->on_thread<void>([this] { return impl_->do_reset(); }, timeout);
}

expected<redrive_report> projection::redrive(std::chrono::milliseconds timeout) {
  return impl_->on_thread<redrive_report>([this] { return impl_->do_redrive(); }, timeout);
}

} // namespace cafes
