// The embedded mode: librdkafka's in-process mock cluster, and the kafka_config helpers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <cstdlib>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cafes/persistence/kafka_config.hpp"
#include "cafes/persistence/logger.hpp"

namespace cafes {

namespace {

/// The loopback addresses of the mock brokers, from their bootstrap list "host:port,…".
std::vector<sockaddr_in> broker_addresses(const std::string& bootstrap) {
  std::vector<sockaddr_in> out;
  std::size_t at = 0;
  while (at < bootstrap.size()) {
    auto end = bootstrap.find(',', at);
    if (end == std::string::npos)
      end = bootstrap.size();
    const auto item = bootstrap.substr(at, end - at);
    at = end + 1;
    const auto colon = item.rfind(':');
    if (colon == std::string::npos)
      continue;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(item.substr(colon + 1))));
    if (inet_pton(AF_INET, item.substr(0, colon).c_str(), &a.sin_addr) == 1)
      out.push_back(a);
  }
  return out;
}

/// Runs `request`, a control call of the mock cluster, and makes sure its thread wakes up.
///
/// librdkafka 2.0.2's mock cluster thread serves these calls from a queue and is woken
/// through a pipe, but it empties the pipe only after it served the queue: a call made in
/// between (such as the next of several calls in a row, each waiting for the one before)
/// loses its wake-up, and the thread sleeps up to a second before it sees the call. Any
/// socket event wakes it as well, so while the call waits, this opens (and at once closes)
/// a connection to each mock broker every millisecond. A call that is not stuck returns
/// before the first of them.
template <class F>
void with_wakeups(const std::vector<sockaddr_in>& brokers, F request) {
  std::mutex mtx;
  std::condition_variable cv;
  bool done = false;
  std::thread waker{[&] {
    std::unique_lock lock{mtx};
    while (!cv.wait_for(lock, std::chrono::milliseconds{1}, [&] { return done; })) {
      lock.unlock();
      for (auto& a : brokers) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
          continue;
        (void)::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a); // loopback: at once
        ::close(fd);
      }
      lock.lock();
    }
  }};
  request();
  {
    std::lock_guard guard{mtx};
    done = true;
  }
  cv.notify_one();
  waker.join();
}

} // namespace

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
  std::vector<sockaddr_in> brokers; // where with_wakeups connects
  mutable std::mutex mtx;
  std::map<std::string, std::string> policies;
  ~impl() {
    if (mc)
      with_wakeups(brokers, [this] { rd_kafka_mock_cluster_destroy(mc); });
    if (host)
      rd_kafka_destroy(host);
  }
};

namespace {

/// Destroys mock clusters on a thread of its own. librdkafka 2.0.2 destroys a mock cluster's
/// internal broker thread racily: when that thread sees its terminate request before the
/// cluster drops its reference (often), it sleeps a second more before it notices, and the
/// destroy waits for it. A stopping node need not wait for that: the cluster holds nothing
/// durable, and its clients are gone by then. The reaper is never destroyed, so that a
/// destroy still under way when the process exits is simply cut short.
class reaper {
 public:
  static reaper& instance() {
    static auto* r = new reaper; // never destroyed (see above)
    return *r;
  }

  void add(std::shared_ptr<void> cluster) {
    {
      std::lock_guard guard{mtx_};
      pending_.push_back(std::move(cluster));
      if (!started_) {
        started_ = true;
        std::thread{[this] { run(); }}.detach();
#if defined(__SANITIZE_ADDRESS__)
        // Under AddressSanitizer the process waits at exit for the destroys under way, so
        // that the leak checker (which runs after this) does not report a cluster cut short.
        std::atexit([] { reaper::instance().drain(std::chrono::seconds{10}); });
#endif
      }
    }
    cv_.notify_all();
  }

  /// Waits until every cluster handed over is destroyed, or `bound` passed.
  void drain(std::chrono::milliseconds bound) {
    std::unique_lock lock{mtx_};
    cv_.wait_for(lock, bound, [this] { return pending_.empty() && !busy_; });
  }

 private:
  void run() {
    for (;;) {
      std::shared_ptr<void> next;
      {
        std::unique_lock lock{mtx_};
        cv_.wait(lock, [this] { return !pending_.empty(); });
        next = std::move(pending_.front());
        pending_.erase(pending_.begin());
        busy_ = true;
      }
      next.reset(); // destroys the mock cluster, then its host handle
      {
        std::lock_guard guard{mtx_};
        busy_ = false;
      }
      cv_.notify_all();
    }
  }

  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<void>> pending_;
  bool started_ = false;
  bool busy_ = false; // a destroy is under way
};

} // namespace

embedded_cluster::embedded_cluster(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

embedded_cluster::~embedded_cluster() {
  if (impl_)
    reaper::instance().add(std::shared_ptr<impl>{std::move(impl_)});
}

expected<std::shared_ptr<embedded_cluster>> embedded_cluster::start(int brokers) {
  if (brokers < 1)
    return error{errc::invalid_argument, "an embedded cluster needs at least one broker"};
  auto p = std::make_unique<impl>();
  char err[256];
  auto* conf = rd_kafka_conf_new();
  // The mock brokers log through their host, to "cafes.kafka": its warnings and errors (its
  // notices are noise, such as the host's own lack of bootstrap servers).
  route_kafka_logs(conf);
  rd_kafka_conf_set(conf, "client.id", "cafes-embedded-cluster", err, sizeof err);
  rd_kafka_conf_set(conf, "log_level", std::to_string(std::min(kafka_syslog_level(), 4)).c_str(), err, sizeof err);
  p->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!p->host)
    return error{errc::kafka_error, std::string{"cannot create the mock cluster's host: "} + err};
  p->mc = rd_kafka_mock_cluster_new(p->host, brokers);
  if (!p->mc)
    return error{errc::kafka_error, "cannot create the mock cluster"};
  std::shared_ptr<embedded_cluster> self{new embedded_cluster(std::move(p))};
  self->bootstrap_ = rd_kafka_mock_cluster_bootstraps(self->impl_->mc);
  self->brokers_ = brokers;
  self->impl_->brokers = broker_addresses(self->bootstrap_);
  return self;
}

expected<void> embedded_cluster::create_topic(const std::string& name, std::int32_t partitions,
                                              std::int16_t replication, const std::string& cleanup_policy) {
  auto err = RD_KAFKA_RESP_ERR_NO_ERROR;
  with_wakeups(impl_->brokers, [&] {
    err = rd_kafka_mock_topic_create(impl_->mc, name.c_str(), partitions, std::min<int>(replication, brokers_));
  });
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
  with_wakeups(impl_->brokers,
               [&] { rd_kafka_mock_push_request_errors_array(impl_->mc, api_key, errs.size(), errs.data()); });
}

void embedded_cluster::set_broker_down(std::int32_t id, bool down) {
  with_wakeups(impl_->brokers, [&] {
    if (down)
      rd_kafka_mock_broker_set_down(impl_->mc, id);
    else
      rd_kafka_mock_broker_set_up(impl_->mc, id);
  });
}

void embedded_cluster::set_all_down(bool down) {
  for (int id = 1; id <= brokers_; ++id)
    set_broker_down(id, down);
}

void embedded_cluster::set_rtt(std::int32_t id, int ms) {
  with_wakeups(impl_->brokers, [&] { rd_kafka_mock_broker_set_rtt(impl_->mc, id, ms); });
}

} // namespace cafes
