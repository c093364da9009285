// The baseline of the start-up benchmark: raw librdkafka on its in-process mock cluster.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace bench {

struct raw_startup_result {
  double first_ms = 0;  ///< mock cluster + topic + idempotent producer + one message acknowledged
  double second_ms = 0; ///< one more message on the warm producer, acknowledged
};

/// Starts a mock cluster of `brokers` with a topic of `partitions`, and an idempotent producer
/// (acks=all, linger 1 ms, as cafes's journal) that produces one message and flushes it; then
/// one more. Everything is destroyed before it returns.
inline raw_startup_result raw_mock_start(int brokers, int partitions) {
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  char err[512];
  auto set = [&](rd_kafka_conf_t* c, const char* k, const char* v) {
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
      throw std::runtime_error(std::string{k} + ": " + err);
  };
  raw_startup_result r;
  const auto t0 = clock::now();
  auto* hconf = rd_kafka_conf_new();
  set(hconf, "log_level", "3");
  rd_kafka_t* host = rd_kafka_new(RD_KAFKA_PRODUCER, hconf, err, sizeof err);
  if (!host)
    throw std::runtime_error(err);
  auto* mc = rd_kafka_mock_cluster_new(host, brokers);
  rd_kafka_mock_topic_create(mc, "raw-startup", partitions, brokers < 3 ? brokers : 3);
  auto* conf = rd_kafka_conf_new();
  set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mc));
  set(conf, "enable.idempotence", "true");
  set(conf, "acks", "all");
  set(conf, "linger.ms", "1");
  set(conf, "socket.nagle.disable", "true");
  // Delivery reports through a callback that rd_kafka_poll serves as soon as one arrives
  // (rd_kafka_flush would add its own polling interval).
  int delivered = 0;
  rd_kafka_conf_set_opaque(conf, &delivered);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    *static_cast<int*>(opaque) += m->err ? -1000 : 1;
  });
  rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!p)
    throw std::runtime_error(err);
  // An application topic handle: librdkafka asks for its leaders at once (a topic first named
  // in a produce call waits for the next topic scan, up to a second).
  rd_kafka_topic_t* topic = rd_kafka_topic_new(p, "raw-startup", nullptr);
  auto one = [&](const char* key) {
    const int before = delivered;
    if (rd_kafka_producev(p, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key, 1),
                          RD_KAFKA_V_VALUE(const_cast<char*>("x"), 1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw std::runtime_error("raw start-up: produce failed");
    const auto deadline = clock::now() + std::chrono::seconds{30};
    while (delivered == before && clock::now() < deadline)
      rd_kafka_poll(p, 100);
    if (delivered != before + 1)
      throw std::runtime_error("raw start-up: the message was not acknowledged");
  };
  one("a");
  const auto t1 = clock::now();
  one("b");
  const auto t2 = clock::now();
  r.first_ms = ms(t0, t1);
  r.second_ms = ms(t1, t2);
  rd_kafka_topic_destroy(topic);
  rd_kafka_destroy(p);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(host);
  return r;
}

} // namespace bench
