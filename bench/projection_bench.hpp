// The projection benchmark's pieces: a store that keeps nothing, a writer of counter events,
// and the raw group consumer it is measured against (docs/benchmarks.md, "Projections").
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "bench_model.hpp"
#include "cafes/actors/projection.hpp"
#include "raw_baseline.hpp"

namespace bench {

namespace proj {

/// A store that keeps nothing but its positions (the cost of the projection alone).
struct null_store final : cafes::projection_store {
  std::mutex mtx;
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> pos;
  std::uint64_t handled = 0;
  cafes::expected<std::optional<cafes::offset>> position(const std::string& t, cafes::partition_id p) override {
    std::lock_guard g{mtx};
    auto i = pos.find({t, p.value()});
    return i == pos.end() ? std::optional<cafes::offset>{} : std::optional<cafes::offset>{cafes::offset{i->second}};
  }
  cafes::expected<void> begin() override { return {}; }
  cafes::expected<void> handle(const cafes::projected_event& e) override {
    handled += e.get<bumped>() != nullptr;
    return {};
  }
  cafes::expected<void> commit(const std::vector<cafes::position_advance>& adv) override {
    std::lock_guard g{mtx};
    for (auto& a : adv)
      pos[{a.topic, a.partition.value()}] = a.to.value();
    return {};
  }
  void rollback() override {}
  cafes::expected<void> clear() override { return {}; }
};

/// Writes `n` counter events over `partitions` partitions; every `poison`-th (0: none) has an
/// unregistered type.
void write(const std::string& bootstrap, const std::string& topic, std::int32_t partitions, int n, int poison) {
  auto conf = raw_conf(bootstrap, {{"enable.idempotence", "true"}, {"linger.ms", "20"}});
  std::string err;
  std::unique_ptr<RdKafka::Producer> p{RdKafka::Producer::create(conf.get(), err)};
  const std::string value = "\x81\xa4" "data\xd9\x5a" + payload();
  for (int i = 0; i < n; ++i) {
    auto r = make_record(topic, partitions, "agg-" + std::to_string(i % 1000), 1 + static_cast<std::uint64_t>(i / 1000), value);
    if (poison > 0 && i % poison == poison - 1)
      for (auto& h : r.headers)
        if (h.key == cafes::hdr::type)
          h.value = "bench.unheard_of";
    while (produce_record(*p, r, nullptr) == RdKafka::ERR__QUEUE_FULL)
      p->poll(10);
    p->poll(0);
  }
  p->flush(120'000);
}

/// A raw group consumer (subscribe, read committed) from start to `n` records; with `decode`,
/// it also decodes each envelope and event as a projection does.
double raw_group(const std::string& bootstrap, const std::string& topic, const std::string& group, int n,
                 bool decode = false) {
  static auto ops = cafes::make_ops<counter>();
  auto conf = raw_conf(bootstrap, {{"group.id", group}, {"auto.offset.reset", "earliest"},
                                   {"enable.auto.commit", "false"}, {"isolation.level", "read_committed"},
                                   {"partition.assignment.strategy", "cooperative-sticky"}});
  std::string err;
  auto t0 = clock_type::now();
  std::unique_ptr<RdKafka::KafkaConsumer> c{RdKafka::KafkaConsumer::create(conf.get(), err)};
  c->subscribe({topic});
  int got = 0;
  while (got < n) {
    std::unique_ptr<RdKafka::Message> m{c->consume(1000)};
    if (m->err() != RdKafka::ERR_NO_ERROR)
      continue;
    ++got;
    if (decode) {
      cafes::record r;
      r.topic = topic;
      r.partition = cafes::partition_id{m->partition()};
      r.off = cafes::offset{m->offset()};
      r.key = *m->key();
      r.value = std::string{static_cast<const char*>(m->payload()), m->len()};
      if (auto* hs = m->headers())
        for (auto& h : hs->get_all())
          r.headers.push_back({h.key(), std::string{static_cast<const char*>(h.value()), h.value_size()}});
      auto e = cafes::decode_event(r).value();
      if (!ops->decode_event(e))
        throw std::runtime_error("an event does not decode");
    }
  }
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  c->close();
  return secs;
}

cafes::kafka_config kafka_of(const std::string& bootstrap) {
  cafes::kafka_config kc;
  kc.bootstrap = bootstrap;
  return kc;
}

cafes::projection_options options_of(const std::string& ns, const std::string& name) {
  cafes::projection_options po;
  po.name = ns + "." + name;
  po.sources.push_back(cafes::source_of<counter>(ns));
  return po;
}

} // namespace proj

} // namespace bench
