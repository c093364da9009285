// The Kafka journal: idempotent (acks=all) or transactional (one transactional.id per partition).
#include "cafes/persistence/kafka_journal.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <set>

#include "cafes/persistence/logger.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/persistence/topics.hpp"
#include "kafka_common.hpp"

namespace cafes {

namespace {

using detail::from_kafka;

bool is_barrier(const rd_kafka_message_t* m) {
  return m->key && std::string_view{static_cast<const char*>(m->key), m->key_len} == barrier_key;
}

/// Reading is the same in both modes; only the isolation level differs.
class kafka_journal_base : public journal {
 public:
  kafka_journal_base(std::string topic, std::int32_t partitions, codec_limits limits,
                     std::unique_ptr<detail::partition_reader> reader)
    : topic_(std::move(topic)), partitions_(partitions), limits_(limits), reader_(std::move(reader)) {}

  expected<read_chunk> read(partition_id p, offset from, std::size_t max_events) override {
    if (p.value() < 0 || p.value() >= partitions_)
      return error{errc::invalid_argument, "partition " + std::to_string(p.value()) + " of " + topic_ +
                                               " does not exist"};
    if (from.value() < 0)
      return error{errc::invalid_argument, "read from negative offset"};
    std::lock_guard guard{read_mtx_};
    read_chunk c;
    auto pos = reader_->read_messages(topic_, p, from.value(), max_events,
                                      [&](const rd_kafka_message_t* m) -> expected<void> {
                                        if (is_barrier(m))
                                          return {}; // no event: see barrier()
                                        auto e = decode_event(detail::view_of(m, topic_));
                                        if (!e)
                                          return std::move(e).error();
                                        c.events.push_back(std::move(*e));
                                        c.offsets.push_back(offset{m->offset});
                                        return {};
                                      });
    if (!pos)
      return std::move(pos).error();
    c.next = pos->next;
    c.end = pos->end;
    return c;
  }

  expected<offset> end_offset(partition_id p) override {
    if (p.value() < 0 || p.value() >= partitions_)
      return error{errc::invalid_argument, "partition " + std::to_string(p.value()) + " does not exist"};
    std::lock_guard guard{read_mtx_};
    return reader_->high_watermark(topic_, p);
  }

  std::int32_t partitions() const noexcept override { return partitions_; }
  const std::string& topic() const noexcept override { return topic_; }
  codec_limits limits() const noexcept override { return limits_; }

  /// Raises a fabricated fatal error in the producers (tests).
  virtual expected<void> inject_fatal(const std::string& reason) = 0;

 protected:
  std::string topic_;
  std::int32_t partitions_;
  codec_limits limits_;
  std::mutex read_mtx_;
  std::unique_ptr<detail::partition_reader> reader_;
};

class idempotent_journal final : public kafka_journal_base {
 public:
  idempotent_journal(std::string topic, std::int32_t partitions, codec_limits limits,
                     std::unique_ptr<detail::partition_reader> reader,
                     std::unique_ptr<detail::async_producer> producer)
    : kafka_journal_base(std::move(topic), partitions, limits, std::move(reader)),
      producer_(std::move(producer)) {}

  void append(std::vector<event_envelope> batch, append_callback cb) override {
    auto recs = encode_batch(batch, topic_, partitions_, limits_);
    if (!recs)
      return cb(append_result{std::move(recs).error(), event_outcome::not_written});
    producer_->send(std::move(*recs), std::move(cb));
  }

  // A record written to `p` through the same producer, after everything sent before it. Its
  // acknowledgement means that every earlier message to `p` is resolved: librdkafka reports a
  // partition's messages in order. And if earlier messages timed out in flight, librdkafka
  // has bumped the producer's epoch before sending it (it drains, then bumps): once this
  // record is written, the broker refuses any late request of the old epoch for `p`, so
  // nothing of a failed append can land after it.
  expected<offset> barrier(partition_id p) override {
    if (p.value() < 0 || p.value() >= partitions_)
      return error{errc::invalid_argument, "partition " + std::to_string(p.value()) + " does not exist"};
    record r;
    r.topic = topic_;
    r.partition = p;
    r.key = std::string{barrier_key};
    r.headers.push_back({"ce_type", "cafes.barrier"});
    auto done = std::make_shared<std::promise<append_result>>();
    auto f = done->get_future();
    producer_->send({std::move(r)}, [done](append_result res) { done->set_value(std::move(res)); });
    auto res = f.get(); // bounded by the delivery timeout (message.timeout.ms)
    if (res.err)
      return *res.err;
    return offset{res.positions.at(0).off.value() + 1};
  }

  bool healthy() const noexcept override { return producer_->healthy(); }

  expected<void> inject_fatal(const std::string& reason) override {
    producer_->inject_fatal(reason);
    return {};
  }

 private:
  std::unique_ptr<detail::async_producer> producer_;
};

/// One transactional producer per owned partition. A worker thread of the journal runs the
/// blocking transaction calls, so callers (actors) never block.
class transactional_journal final : public kafka_journal_base, public partition_writer {
  struct part;

 public:
  transactional_journal(const kafka_config& cfg, std::string topic, std::int32_t partitions,
                        std::unique_ptr<detail::partition_reader> reader,
                        std::unique_ptr<detail::partition_reader> uncommitted)
    : kafka_journal_base(std::move(topic), partitions, cfg.limits, std::move(reader)), cfg_(cfg),
      uncommitted_(std::move(uncommitted)) {
    // Every partition has its entry from the start (other threads look entries up); only
    // the owned ones have a producer.
    auto prefix = cfg_.transactional_id_prefix.empty() ? topic_ : cfg_.transactional_id_prefix;
    for (std::int32_t p = 0; p < partitions; ++p)
      parts_[p].txid = prefix + "." + std::to_string(p);
  }

  ~transactional_journal() override {
    {
      std::lock_guard guard{mtx_};
      stop_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable())
      worker_.join();
    for (auto& j : jobs_) { // never produced
      if (j.kind == job::write)
        j.cb(append_result{error{errc::closed, "journal closed"}, event_outcome::not_written});
      else
        j.done(error{errc::closed, "journal closed"});
    }
  }

  /// Creates the producers of the owned partitions and fences older owners.
  expected<void> start(const std::vector<partition_id>& owned) {
    for (auto p : owned)
      if (auto ok = open_producer(parts_.at(p.value())); !ok)
        return ok;
    worker_ = std::thread{[this] { run(); }};
    return {};
  }

  // A new owner's writer: its init_transactions fences every older producer of the
  // partition and finishes (commits or aborts) their pending transaction.
  expected<void> open(partition_id p) override { return on_worker(job::open, p); }

  // Finishes the partition's pending transaction and drops its producer: later writes fail
  // with not_owned until it is opened again.
  expected<void> close(partition_id p) override { return on_worker(job::close, p); }

  // Creates the partition's producer and fences any older one with its transactional.id.
  // init_transactions also finishes an older producer's pending transaction (commits or
  // aborts it), so afterwards nothing of it can change any more.
  expected<void> open_producer(part& pt) {
    auto conf = detail::make_conf(cfg_, {
                                          {"enable.idempotence", "true"},
                                          {"acks", "all"},
                                          {"linger.ms", "1"},
                                          {"transactional.id", pt.txid},
                                          {"transaction.timeout.ms", std::to_string(std::max<long>(
                                                                         60'000, 2 * cfg_.delivery_timeout.count()))},
                                          {"message.timeout.ms", std::to_string(cfg_.delivery_timeout.count())},
                                        });
    if (!conf)
      return std::move(conf).error();
    std::string err;
    if ((*conf)->set("dr_cb", &pt.dr, err) != RdKafka::Conf::CONF_OK)
      return error{errc::invalid_argument, err};
    if (auto ok = detail::set_events(**conf, pt.events); !ok)
      return ok;
    if (pt.producer) // the old one failed fatally: what it still holds is given up
      pt.producer->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
    pt.producer.reset(RdKafka::Producer::create(conf->get(), err));
    if (!pt.producer)
      return error{errc::kafka_error, "cannot create producer: " + err};
    pt.events.reset();
    std::unique_ptr<RdKafka::Error> e{pt.producer->init_transactions(timeout_ms())};
    if (e)
      return from_kafka(*e, "init_transactions of " + pt.txid);
    // A producer's first transaction waits about a second for the leaders of a topic it has
    // not seen; asking for them now takes a round trip (a taken-over partition's epoch claim
    // is the first transaction, on the way to serving).
    for (auto& topic : written_topics()) {
      std::string terr;
      std::unique_ptr<RdKafka::Topic> t{RdKafka::Topic::create(pt.producer.get(), topic, nullptr, terr)};
      RdKafka::Metadata* md = nullptr;
      if (t && pt.producer->metadata(false, t.get(), &md, timeout_ms()) == RdKafka::ERR_NO_ERROR)
        delete md;
    }
    pt.dead.reset();
    pt.lost = false;
    pt.fenced = false;
    pt.commit_pending = false;
    pt.owned = true;
    return {};
  }

  // Settles partition p on the worker thread: finishes a commit that gave up. A partition
  // whose producer failed stays lost until it is opened again (see kill). Afterwards no
  // transaction of p is in doubt.
  expected<void> settle_partition(std::int32_t p) {
    auto& pt = parts_.at(p);
    if (!pt.dead && pt.events.fatal())
      kill(pt, error{errc::fatal, "the producer of " + pt.txid + " failed fatally"});
    if (pt.dead && !pt.fenced)
      kill(pt, *pt.dead); // its fatal cause may have turned out to be fencing since
    if (pt.dead)
      return *pt.dead;
    if (pt.commit_pending)
      return commit_within_deadline(p, pt);
    return {};
  }

  // The end offset, once no transaction of p is in doubt: a commit whose outcome was unknown
  // is finished (or its producer replaced) on the worker thread first, so a catch-up up to
  // here sees every event of it that will ever be visible.
  //
  // A commit returns once the coordinator decided; the markers that make the transaction's
  // records visible (or skipped) reach the partition a moment later, and read_committed
  // readers see nothing past them before. So the barrier is taken as the partition's high
  // watermark right after the settle (no transaction of this owner is open then), and this
  // waits until the last stable offset reached it: a catch-up up to the barrier then sees
  // every committed record.
  expected<offset> barrier(partition_id p) override {
    auto i = parts_.find(p.value());
    if (i == parts_.end() || !i->second.owned.load())
      return end_offset(p);
    auto hw = std::make_shared<std::int64_t>(-1);
    if (auto ok = on_worker(job::barrier, p, hw); !ok)
      return std::move(ok).error();
    const auto deadline = std::chrono::steady_clock::now() + cfg_.request_timeout;
    for (;;) {
      auto stable = end_offset(p);
      if (!stable || stable->value() >= *hw)
        return stable;
      if (std::chrono::steady_clock::now() > deadline)
        return error{errc::timeout, "the transaction markers of partition " + std::to_string(p.value()) + " of " +
                                        topic_ + " did not arrive within " +
                                        std::to_string(cfg_.request_timeout.count()) + " ms"};
      std::this_thread::sleep_for(std::chrono::milliseconds{5}); // the markers' arrival
    }
  }

  void append(std::vector<event_envelope> batch, append_callback cb) override {
    auto recs = encode_batch(batch, topic_, partitions_, limits_);
    if (!recs)
      return cb(append_result{std::move(recs).error(), event_outcome::not_written});
    enqueue(std::move(*recs), std::move(cb));
  }

  void write(partition_id p, std::vector<record> recs, append_callback cb) override {
    for (auto& r : recs)
      if (r.partition != p)
        return cb(append_result{error{errc::invalid_argument, "a record of " + r.topic + " for partition " +
                                                                  std::to_string(p.value()) + " has another partition"},
                                event_outcome::not_written});
    enqueue(std::move(recs), std::move(cb));
  }

  void also_writes(const std::string& topic) override {
    std::lock_guard guard{mtx_};
    also_written_.push_back(topic);
  }

  bool lost(partition_id p) const noexcept override {
    auto i = parts_.find(p.value());
    return i != parts_.end() && i->second.owned.load() && (i->second.lost.load() || i->second.events.fatal());
  }

  bool fenced(partition_id p) const noexcept override {
    auto i = parts_.find(p.value());
    return i != parts_.end() && i->second.owned.load() && i->second.fenced.load();
  }

  bool healthy() const noexcept override {
    for (auto& [p, pt] : parts_)
      if (pt.owned.load() && (pt.lost.load() || pt.events.fatal()) && !pt.fenced.load())
        return false;
    return true;
  }

  // Makes the producer of every open partition fail fatally, as librdkafka's own fatal
  // errors do (the partitions' writers are then lost).
  expected<void> inject_fatal(const std::string& reason) override {
    for (auto& [p, pt] : parts_)
      if (pt.owned.load())
        if (auto ok = on_worker(job::inject, partition_id{p}, {}, reason); !ok)
          return ok;
    return {};
  }

 private:
  void enqueue(std::vector<record> recs, append_callback cb) {
    for (auto& r : recs) {
      auto i = parts_.find(r.partition.value());
      if (i == parts_.end())
        return cb(append_result{error{errc::invalid_argument, "partition " + std::to_string(r.partition.value()) +
                                                                  " of " + topic_ + " does not exist"},
                                event_outcome::not_written});
      if (!i->second.owned.load())
        return cb(append_result{error{errc::not_owned, "partition " + std::to_string(r.partition.value()) + " of " +
                                                           topic_ + " is not open on this node"},
                                event_outcome::not_written});
      if (i->second.fenced.load())
        return cb(append_result{*fenced_error(r.partition.value()), event_outcome::not_written});
    }
    {
      std::lock_guard guard{mtx_};
      if (stop_)
        return cb(append_result{error{errc::closed, "journal closed"}, event_outcome::not_written});
      jobs_.push_back({job::write, -1, std::move(recs), std::move(cb), {}, {}, {}});
    }
    cv_.notify_one();
  }

  std::optional<error> fenced_error(std::int32_t p) const {
    return error{errc::fenced, "partition " + std::to_string(p) + " of " + topic_ + " was fenced by a newer owner"};
  }

  std::vector<std::string> written_topics() {
    std::lock_guard guard{mtx_};
    auto out = also_written_;
    out.push_back(topic_);
    return out;
  }

  bool stopping() {
    std::lock_guard guard{mtx_};
    return stop_;
  }

  struct job {
    enum kind_t { write, settle, barrier, open, close, inject } kind = write;
    std::int32_t p = -1;                   // settle, open, close: the partition
    std::vector<record> recs;              // write
    append_callback cb;                    // write
    std::function<void(expected<void>)> done; // settle, barrier, open, close
    std::shared_ptr<std::int64_t> hw;         // barrier: the high watermark once settled
    std::string reason;                       // inject
  };

  // Runs a partition job on the worker thread, which alone touches the producers, and waits.
  expected<void> on_worker(job::kind_t kind, partition_id p, std::shared_ptr<std::int64_t> hw = {},
                           std::string reason = {}) {
    if (p.value() < 0 || p.value() >= partitions_)
      return error{errc::invalid_argument, "partition " + std::to_string(p.value()) + " of " + topic_ +
                                               " does not exist"};
    auto done = std::make_shared<std::promise<expected<void>>>();
    auto f = done->get_future();
    {
      std::lock_guard guard{mtx_};
      if (stop_)
        return error{errc::closed, "journal closed"};
      jobs_.push_back({kind, p.value(), {}, {}, [done](expected<void> r) { done->set_value(std::move(r)); }, hw,
                       std::move(reason)});
    }
    cv_.notify_one();
    return f.get();
  }

  // Settles p, then reads its high watermark, read_uncommitted (every record of this
  // owner's finished transactions is below it), before any later transaction opens.
  expected<void> high_watermark_settled(std::int32_t p, std::int64_t& hw) {
    if (auto ok = settle_partition(p); !ok)
      return ok;
    auto h = uncommitted_->high_watermark(topic_, partition_id{p});
    if (!h)
      return std::move(h).error();
    hw = h->value();
    return {};
  }

  // Opens the partition's producer unless it is open and sound.
  expected<void> reopen(part& pt) {
    if (pt.owned && !pt.dead)
      return {};
    return open_producer(pt);
  }

  expected<void> close_partition(std::int32_t p) {
    auto& pt = parts_.at(p);
    if (!pt.owned)
      return {};
    auto settled = pt.dead ? expected<void>{} : settle_partition(p);
    pt.owned = false;
    pt.producer.reset(); // flushes what it still holds
    pt.dead.reset();
    pt.lost = false;
    pt.fenced = false;
    pt.commit_pending = false;
    return settled;
  }

  /// Collects the delivery reports of one transaction (served on the worker thread).
  class tx_dr final : public RdKafka::DeliveryReportCb {
   public:
    std::vector<position>* out = nullptr;
    std::optional<error> err;
    void dr_cb(RdKafka::Message& m) override {
      auto idx = reinterpret_cast<std::uintptr_t>(m.msg_opaque());
      if (m.err() != RdKafka::ERR_NO_ERROR) {
        if (!err)
          err = from_kafka(m.err(), "delivery to " + m.topic_name() + "/" + std::to_string(m.partition()));
      } else if (out) {
        (*out)[idx] = position{partition_id{m.partition()}, offset{m.offset()}};
      }
    }
  };

  struct part {
    std::string txid;
    tx_dr dr;
    detail::client_events events{"transactional producer"};
    std::unique_ptr<RdKafka::Producer> producer;
    std::optional<error> dead;        // why the writer is lost: it takes no more writes
    std::atomic<bool> lost{false};    // dead (read by other threads)
    std::atomic<bool> fenced{false};  // dead because fenced (read by other threads)
    std::atomic<bool> owned{false};   // open: it has a producer (read by other threads)
    bool commit_pending = false;      // a commit gave up at its deadline and must be finished
  };

  int timeout_ms() const { return static_cast<int>(cfg_.request_timeout.count()); }

  void run() {
    for (;;) {
      std::vector<job> writes;
      job j;
      {
        std::unique_lock lock{mtx_};
        cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (stop_)
          return;
        // Writes queued behind each other share one transaction per partition (a group
        // commit: a commit costs a round trip to the coordinator, whatever it holds), within
        // a bound on records and bytes.
        std::size_t records = 0, bytes = 0;
        while (!jobs_.empty() && jobs_.front().kind == job::write &&
               (writes.empty() || (records + jobs_.front().recs.size() <= max_group_records &&
                                   bytes + size_of(jobs_.front().recs) <= max_group_bytes))) {
          records += jobs_.front().recs.size();
          bytes += size_of(jobs_.front().recs);
          writes.push_back(std::move(jobs_.front()));
          jobs_.pop_front();
        }
        if (writes.empty()) {
          j = std::move(jobs_.front());
          jobs_.pop_front();
        }
      }
      if (!writes.empty()) {
        commit_group(writes);
        continue;
      }
      switch (j.kind) {
        case job::write: break; // taken above
        case job::settle: j.done(settle_partition(j.p)); break;
        case job::barrier: j.done(high_watermark_settled(j.p, *j.hw)); break;
        case job::open: j.done(reopen(parts_.at(j.p))); break;
        case job::close: j.done(close_partition(j.p)); break;
        case job::inject: {
          auto& pt = parts_.at(j.p);
          if (pt.producer)
            rd_kafka_test_fatal_error(pt.producer->c_ptr(), RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                      j.reason.c_str());
          j.done({});
          break;
        }
      }
    }
  }

  static constexpr std::size_t max_group_records = 8192;
  static constexpr std::size_t max_group_bytes = 8 << 20;

  static std::size_t size_of(const std::vector<record>& recs) {
    std::size_t n = 0;
    for (auto& r : recs)
      n += r.key.size() + (r.value ? r.value->size() : 0);
    return n;
  }

  // Commits the writes together and gives each its own share of the result: its records'
  // positions and outcomes, and the error only if one of its records is not durable.
  void commit_group(std::vector<job>& writes) {
    if (writes.size() == 1) {
      writes.front().cb(commit(writes.front().recs));
      return;
    }
    std::vector<record> all;
    for (auto& w : writes)
      all.insert(all.end(), std::make_move_iterator(w.recs.begin()), std::make_move_iterator(w.recs.end()));
    auto res = commit(all);
    std::size_t at = 0;
    for (auto& w : writes) {
      append_result mine;
      const auto n = w.recs.size();
      mine.positions.assign(res.positions.begin() + static_cast<std::ptrdiff_t>(at),
                            res.positions.begin() + static_cast<std::ptrdiff_t>(at + n));
      mine.outcomes.assign(res.outcomes.begin() + static_cast<std::ptrdiff_t>(at),
                           res.outcomes.begin() + static_cast<std::ptrdiff_t>(at + n));
      for (auto o : mine.outcomes)
        if (o != event_outcome::durable) {
          mine.err = res.err;
          break;
        }
      at += n;
      w.cb(std::move(mine));
    }
  }

  // Writes each partition's share of the batch in one transaction of its producer. All
  // transactions are opened and fed first, so that every partition's records travel to the
  // broker together; then they are committed one after another. Each partition's records
  // share its transaction's outcome, so one partition's failure never fails another's.
  append_result commit(const std::vector<record>& recs) {
    append_result res;
    res.positions.resize(recs.size());
    res.outcomes.assign(recs.size(), event_outcome::unknown);
    std::map<std::int32_t, std::vector<std::size_t>> by_part;
    for (std::size_t i = 0; i < recs.size(); ++i)
      by_part[recs[i].partition.value()].push_back(i);
    auto settle = [&](const std::vector<std::size_t>& idx, expected<void> r, event_outcome failed) {
      for (auto i : idx)
        res.outcomes[i] = r ? event_outcome::durable : failed;
      if (!r && !res.err)
        res.err = std::move(r).error();
    };
    std::vector<std::int32_t> open;
    for (auto& [p, idx] : by_part) {
      auto r = start_partition(p, recs, idx, res.positions);
      if (r)
        open.push_back(p);
      else // nothing was committed, and never will be: the writer is lost (see kill)
        settle(idx, std::move(r), event_outcome::not_written);
    }
    for (auto p : open) {
      // An aborted commit wrote nothing visible; any other failed commit (fenced, fatal, out
      // of time) may have been committed before the error.
      auto r = finish_partition(p);
      const auto failed = !r && r.error().code == errc::transaction_aborted ? event_outcome::not_written
                                                                             : event_outcome::unknown;
      settle(by_part[p], std::move(r), failed);
    }
    return res;
  }

  // Gives up the partition's transaction, and its producer with it: the partition's writer
  // is lost until it is opened again (see kill).
  error abandon(std::int32_t p, part& pt, error e) {
    e = kill(pt, e); // a fatal error caused by fencing is reported as fenced
    persistence_log().error("partition {} of {} lost its writer: {}", p, topic_, e.to_string());
    pt.producer->poll(0);
    pt.dr.out = nullptr;
    return e;
  }

  // Marks the partition's writer lost: it takes no more writes until the partition is closed
  // and opened again, which its owner does as a takeover, recovery included. A producer whose
  // transaction failed is neither aborted in place nor replaced: its abort may bump its epoch
  // (KIP-360), and a resumed zombie's bump, like its replacement's init_transactions, could
  // fence the partition's rightful owner. Its open transaction is aborted by the next
  // producer's init_transactions, or by the coordinator's transaction timeout.
  //
  // A fenced producer reports a fatal error whose cause is ERR__FENCED, or the broker's
  // PRODUCER_FENCED or INVALID_PRODUCER_EPOCH; the partition is then fenced (its owner
  // answers not_owner), whichever call noticed it first.
  error kill(part& pt, error e) {
    std::string reason;
    const auto cause = pt.producer->fatal_error(reason);
    if (e.code == errc::fenced || (cause != RdKafka::ERR_NO_ERROR && detail::from_kafka(cause, "") == errc::fenced)) {
      e.code = make_error_code(errc::fenced);
      pt.fenced = true;
    }
    pt.dead = e;
    pt.lost = true;
    return e;
  }

  expected<void> start_partition(std::int32_t p, const std::vector<record>& recs,
                                 const std::vector<std::size_t>& idx, std::vector<position>& out) {
    auto& pt = parts_.at(p);
    if (auto ok = settle_partition(p); !ok)
      return ok; // this batch was not produced: not written
    pt.dr.out = &out;
    pt.dr.err.reset();
    std::unique_ptr<RdKafka::Error> e{pt.producer->begin_transaction()};
    if (e)
      return abandon(p, pt, from_kafka(*e, "begin_transaction of " + pt.txid));
    for (auto i : idx) {
      auto err = detail::produce(*pt.producer, recs[i], reinterpret_cast<void*>(static_cast<std::uintptr_t>(i)));
      if (err != RdKafka::ERR_NO_ERROR)
        return abandon(p, pt, from_kafka(err, "produce to " + recs[i].topic + "/" + std::to_string(p)));
    }
    return {};
  }

  expected<void> finish_partition(std::int32_t p) {
    auto& pt = parts_.at(p);
    if (cfg_.on_fault)
      cfg_.on_fault("journal.before_commit", p);
    if (auto ok = commit_within_deadline(p, pt); !ok)
      return ok;
    pt.producer->poll(0);
    pt.dr.out = nullptr;
    if (pt.dr.err)
      return *pt.dr.err;
    return {};
  }

  // Commits the open transaction, retrying what may be retried (a commit is idempotent)
  // until the delivery timeout or the journal's shutdown. Giving up leaves the commit
  // pending (its outcome unknown): the partition's next write finishes it first.
  expected<void> commit_within_deadline(std::int32_t p, part& pt) {
    const auto deadline = std::chrono::steady_clock::now() + cfg_.delivery_timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      const auto call = std::clamp<long>(left.count(), 1, timeout_ms());
      std::unique_ptr<RdKafka::Error> e{pt.producer->commit_transaction(static_cast<int>(call))};
      if (!e) {
        pt.commit_pending = false;
        return {};
      }
      if (!e->is_retriable() || e->txn_requires_abort() || e->is_fatal()) {
        pt.commit_pending = false;
        return abandon(p, pt, from_kafka(*e, "commit_transaction of " + pt.txid));
      }
      if (stopping() || std::chrono::steady_clock::now() >= deadline) {
        pt.commit_pending = true;
        pt.dr.out = nullptr;
        return error{errc::timeout, "commit_transaction of " + pt.txid + " did not finish within " +
                                        std::to_string(cfg_.delivery_timeout.count()) + " ms" +
                                        (stopping() ? " (the journal is closing)" : "") + ": " + e->str()};
      }
    }
  }

  kafka_config cfg_;
  std::map<std::int32_t, part> parts_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<job> jobs_;
  std::vector<std::string> also_written_; // guarded by mtx_
  std::unique_ptr<detail::partition_reader> uncommitted_; // the worker thread's alone
  bool stop_ = false;
  std::thread worker_;
};

} // namespace

expected<std::unique_ptr<journal>> make_kafka_journal(const kafka_config& given, std::string topic,
                                                      std::int32_t partitions,
                                                      std::optional<std::vector<partition_id>> owned) {
  if (partitions <= 0)
    return error{errc::invalid_argument, "a journal needs at least one partition"};
  auto limits = effective_limits(given, {topic});
  if (!limits)
    return std::move(limits).error();
  auto cfg = given;
  cfg.limits = *limits;
  const bool tx = cfg.mode == journal_mode::transactional;
  auto reader = detail::partition_reader::make(cfg, tx);
  if (!reader)
    return std::move(reader).error();
  (*reader)->warm(topic);
  if (!tx) {
    auto producer = detail::async_producer::make(cfg, {topic});
    if (!producer)
      return std::move(producer).error();
    return std::unique_ptr<journal>{std::make_unique<idempotent_journal>(std::move(topic), partitions, cfg.limits,
                                                                         std::move(*reader), std::move(*producer))};
  }
  if (!owned) {
    owned.emplace();
    for (std::int32_t p = 0; p < partitions; ++p)
      owned->push_back(partition_id{p});
  }
  for (auto p : *owned)
    if (p.value() < 0 || p.value() >= partitions)
      return error{errc::invalid_argument, "owned partition " + std::to_string(p.value()) + " does not exist"};
  // The high watermark, open transactions included (barrier): read_uncommitted.
  auto uncommitted = detail::partition_reader::make(cfg, false);
  if (!uncommitted)
    return std::move(uncommitted).error();
  (*uncommitted)->warm(topic);
  auto j = std::make_unique<transactional_journal>(cfg, std::move(topic), partitions, std::move(*reader),
                                                   std::move(*uncommitted));
  if (auto ok = j->start(*owned); !ok)
    return std::move(ok).error();
  return std::unique_ptr<journal>{std::move(j)};
}

std::shared_ptr<partition_writer> transactional_writer(const std::shared_ptr<journal>& j) {
  return std::dynamic_pointer_cast<partition_writer>(j);
}

expected<void> inject_fatal_error(journal& j, const std::string& reason) {
  auto* kj = dynamic_cast<kafka_journal_base*>(&j);
  if (!kj)
    return error{errc::invalid_argument, "not a Kafka journal"};
  return kj->inject_fatal(reason);
}

} // namespace cafes
