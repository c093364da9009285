// The embedded mode: librdkafka's in-process mock cluster, and the kafka_config helpers.
#include <map>
#include <mutex>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cafes/persistence/kafka_config.hpp"
#include "cafes/persistence/logger.hpp"

namespace cafes {

std::string_view to_string(journal_mode m) noexcept {
  return m == journal_mode::idempotent ? "idempotent" : "transactional";
}

expected<journal_mode> parse_journal_mode(std::string_view s) {
  if (s == "idempotent")
    return journal_mode::idempotent;
  if (s == "transactional")
    return journal_mode::transactional;
  return error{errc::invalid_argument, "journal mode '" + std::string{s} + "' is not idempotent or transactional"};
}

std::string kafka_config::servers() const { return embedded ? embedded->bootstrap() : bootstrap; }

struct embedded_cluster::impl {
  rd_kafka_t* host = nullptr;
  rd_kafka_mock_cluster_t* mc = nullptr;
  mutable std::mutex mtx;
  std::map<std::string, std::string> policies;
  ~impl() {
    if (mc)
      rd_kafka_mock_cluster_destroy(mc);
    if (host)
      rd_kafka_destroy(host);
  }
};

embedded_cluster::embedded_cluster(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
embedded_cluster::~embedded_cluster() = default;

expected<std::shared_ptr<embedded_cluster>> embedded_cluster::start(int brokers) {
  if (brokers < 1)
    return error{errc::invalid_argument, "an embedded cluster needs at least one broker"};
  auto p = std::make_unique<impl>();
  char err[256];
  auto* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  p->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!p->host)
    return error{errc::kafka_error, std::string{"cannot create the mock cluster's host: "} + err};
  p->mc = rd_kafka_mock_cluster_new(p->host, brokers);
  if (!p->mc)
    return error{errc::kafka_error, "cannot create the mock cluster"};
  std::shared_ptr<embedded_cluster> self{new embedded_cluster(std::move(p))};
  self->bootstrap_ = rd_kafka_mock_cluster_bootstraps(self->impl_->mc);
  self->brokers_ = brokers;
  return self;
}

expected<void> embedded_cluster::create_topic(const std::string& name, std::int32_t partitions,
                                              std::int16_t replication, const std::string& cleanup_policy) {
  auto err = rd_kafka_mock_topic_create(impl_->mc, name.c_str(), partitions,
                                        std::min<int>(replication, brokers_));
  if (err)
    return error{errc::kafka_error, "mock topic " + name + ": " + rd_kafka_err2str(err)};
  std::lock_guard guard{impl_->mtx};
  impl_->policies[name] = cleanup_policy;
  return {};
}

std::string embedded_cluster::cleanup_policy(const std::string& name) const {
  std::lock_guard guard{impl_->mtx};
  auto i = impl_->policies.find(name);
  return i == impl_->policies.end() ? std::string{} : i->second;
}

void embedded_cluster::push_request_errors(std::int16_t api_key, const std::vector<int>& errors) {
  std::vector<rd_kafka_resp_err_t> errs;
  for (int e : errors)
    errs.push_back(static_cast<rd_kafka_resp_err_t>(e));
  rd_kafka_mock_push_request_errors_array(impl_->mc, api_key, errs.size(), errs.data());
}

void embedded_cluster::set_broker_down(std::int32_t id, bool down) {
  if (down)
    rd_kafka_mock_broker_set_down(impl_->mc, id);
  else
    rd_kafka_mock_broker_set_up(impl_->mc, id);
}

void embedded_cluster::set_all_down(bool down) {
  for (int id = 1; id <= brokers_; ++id)
    set_broker_down(id, down);
}

void embedded_cluster::set_rtt(std::int32_t id, int ms) { rd_kafka_mock_broker_set_rtt(impl_->mc, id, ms); }

} // namespace cafes
