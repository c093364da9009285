// The physical limit: raw librdkafka producing and consuming the same records as cafes.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <librdkafka/rdkafkacpp.h>

#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/partitioner.hpp"

namespace bench {

using clock_type = std::chrono::steady_clock;

/// A closed-loop measurement: operations per second and per-operation latencies (ms).
struct loop_result {
  double ops_per_s = 0;
  std::vector<double> latencies_ms;
  std::uint64_t errors = 0; ///< replies that were errors (not counted in ops_per_s)
};

inline std::unique_ptr<RdKafka::Conf> raw_conf(const std::string& bootstrap,
                                               const std::vector<std::pair<std::string, std::string>>& props) {
  std::unique_ptr<RdKafka::Conf> c{RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL)};
  std::string err;
  c->set("bootstrap.servers", bootstrap, err);
  c->set("socket.nagle.disable", "true", err);
  for (auto& [k, v] : props)
    if (c->set(k, v, err) != RdKafka::Conf::CONF_OK)
      throw std::runtime_error(k + ": " + err);
  return c;
}

/// Encodes one cafes event record for aggregate `id` at `seq` (the bytes cafes writes).
inline cafes::record make_record(const std::string& topic, std::int32_t partitions, const std::string& id,
                                 std::uint64_t seq, const std::string& payload) {
  cafes::event_envelope e;
  e.id = cafes::aggregate_id::make(id).value();
  e.seq = cafes::seq_nr{seq};
  e.type = "bench.bumped";
  e.payload = payload;
  e.writer_node = "bench";
  auto r = cafes::encode_event(e, topic).value();
  r.partition = cafes::partition_for(id, partitions);
  return r;
}

inline RdKafka::ErrorCode produce_record(RdKafka::Producer& p, const cafes::record& r, void* opaque) {
  auto* hs = RdKafka::Headers::create();
  for (auto& h : r.headers)
    hs->add(h.key, h.value.data(), h.value.size());
  auto err = p.produce(r.topic, r.partition.value(), RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(r.value->data()),
                       r.value->size(), r.key.data(), r.key.size(), 0, hs, opaque);
  if (err)
    delete hs;
  return err;
}

/// Raw idempotent producer (acks=all, same settings as cafes) with `k` records in flight,
/// each delivery report sending the next, for `seconds`.
inline loop_result raw_idempotent(const std::string& bootstrap, const std::vector<cafes::record>& recs, int k,
                                  double seconds, double warmup) {
  struct dr_t : RdKafka::DeliveryReportCb {
    RdKafka::Producer* p = nullptr;
    const std::vector<cafes::record>* recs = nullptr;
    std::vector<clock_type::time_point> started;
    std::vector<double> lat;
    std::atomic<std::uint64_t> done{0};
    std::size_t next = 0;
    clock_type::time_point measure_from, end;
    std::atomic<int> outstanding{0};
    void dr_cb(RdKafka::Message& m) override {
      auto slot = reinterpret_cast<std::uintptr_t>(m.msg_opaque());
      auto now = clock_type::now();
      if (m.err() == RdKafka::ERR_NO_ERROR && now >= measure_from) {
        lat.push_back(std::chrono::duration<double, std::milli>(now - started[slot]).count());
        ++done;
      }
      if (now < end) {
        started[slot] = clock_type::now();
        produce_record(*p, (*recs)[next++ % recs->size()], m.msg_opaque());
      } else {
        --outstanding;
      }
    }
  } dr;
  auto conf = raw_conf(bootstrap, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "1"}});
  std::string err;
  conf->set("dr_cb", &dr, err);
  std::unique_ptr<RdKafka::Producer> p{RdKafka::Producer::create(conf.get(), err)};
  dr.p = p.get();
  dr.recs = &recs;
  dr.started.resize(static_cast<std::size_t>(k));
  auto t0 = clock_type::now();
  dr.measure_from = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(warmup));
  dr.end = dr.measure_from + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  dr.outstanding = k;
  for (int i = 0; i < k; ++i) {
    dr.started[static_cast<std::size_t>(i)] = clock_type::now();
    produce_record(*p, recs[dr.next++ % recs.size()], reinterpret_cast<void*>(static_cast<std::uintptr_t>(i)));
  }
  while (dr.outstanding > 0)
    p->poll(10);
  p->flush(10'000);
  loop_result r;
  r.ops_per_s = static_cast<double>(dr.done) / seconds;
  r.latencies_ms = std::move(dr.lat);
  return r;
}

/// Raw transactional producer: begin, `k` records, commit, again, for `seconds`.
inline loop_result raw_transactional(const std::string& bootstrap, const std::vector<cafes::record>& recs, int k,
                                     double seconds, const std::string& txid) {
  auto conf = raw_conf(bootstrap, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "1"},
                                   {"transactional.id", txid}});
  std::string err;
  std::unique_ptr<RdKafka::Producer> p{RdKafka::Producer::create(conf.get(), err)};
  std::unique_ptr<RdKafka::Error> e{p->init_transactions(30'000)};
  if (e)
    throw std::runtime_error("init_transactions: " + e->str());
  loop_result r;
  std::size_t next = 0;
  std::uint64_t done = 0;
  // The first transaction of a new transactional.id takes about a second: keep it out.
  e.reset(p->begin_transaction());
  for (int i = 0; i < k; ++i)
    produce_record(*p, recs[next++ % recs.size()], nullptr);
  e.reset(p->commit_transaction(30'000));
  auto end = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  while (clock_type::now() < end) {
    auto t0 = clock_type::now();
    e.reset(p->begin_transaction());
    for (int i = 0; i < k; ++i)
      produce_record(*p, recs[next++ % recs.size()], nullptr);
    e.reset(p->commit_transaction(30'000));
    if (e)
      throw std::runtime_error("commit_transaction: " + e->str());
    auto ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    for (int i = 0; i < k; ++i)
      r.latencies_ms.push_back(ms);
    done += static_cast<std::uint64_t>(k);
  }
  r.ops_per_s = static_cast<double>(done) / seconds;
  return r;
}

/// Raw consumer: reads partition `p` of `topic` from the start to its end; returns records/s.
inline std::pair<double, std::uint64_t> raw_consume(const std::string& bootstrap, const std::string& topic,
                                                    std::int32_t partition) {
  auto conf = raw_conf(bootstrap, {{"enable.partition.eof", "true"}});
  std::string err;
  std::unique_ptr<RdKafka::Consumer> c{RdKafka::Consumer::create(conf.get(), err)};
  std::unique_ptr<RdKafka::Topic> t{RdKafka::Topic::create(c.get(), topic, nullptr, err)};
  // Connected and with the topic's leaders known before the clock starts (a cold consumer
  // spends about a second on that), as cafes's readers are.
  std::int64_t lo = 0, hi = 0;
  c->query_watermark_offsets(topic, partition, &lo, &hi, 10'000);
  auto t0 = clock_type::now();
  c->start(t.get(), partition, RdKafka::Topic::OFFSET_BEGINNING);
  std::uint64_t n = 0;
  for (;;) {
    std::unique_ptr<RdKafka::Message> m{c->consume(t.get(), partition, 1000)};
    if (m->err() == RdKafka::ERR_NO_ERROR)
      ++n;
    else if (m->err() == RdKafka::ERR__PARTITION_EOF)
      break;
    else if (m->err() != RdKafka::ERR__TIMED_OUT)
      throw std::runtime_error("consume: " + m->errstr());
  }
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  c->stop(t.get(), partition);
  return {static_cast<double>(n) / secs, n};
}

} // namespace bench
