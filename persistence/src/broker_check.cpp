// The start-up checks of a Kafka config: its properties, and a first bounded round trip to
// the brokers that turns a refused TLS or SASL handshake into a typed error.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>

#include <librdkafka/rdkafkacpp.h>

#include "cafes/persistence/kafka_config.hpp"
#include "cafes/persistence/logger.hpp"
#include "kafka_common.hpp"

namespace cafes {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

/// The code of a connection error that no retry will cure (the handshake was refused), if
/// it is one. librdkafka reports TLS to a plaintext port as a transport error whose message
/// starts the handshake ("SSL handshake failed: Disconnected: connecting to a PLAINTEXT
/// broker listener?"), or as an SSL error ("unexpected eof while reading").
std::optional<errc> refusal(RdKafka::ErrorCode code, const std::string& msg) {
  switch (code) {
    case RdKafka::ERR__AUTHENTICATION:
    case RdKafka::ERR_SASL_AUTHENTICATION_FAILED:
      return errc::unauthorized;
    case RdKafka::ERR__SSL:
      return errc::tls_failed;
    case RdKafka::ERR__TRANSPORT:
      if (msg.find("SSL handshake failed") != std::string::npos)
        return errc::tls_failed;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

/// Keeps what librdkafka's error callback reported, the first refusal and the last error,
/// and the last connection failure it logged (some, such as a disconnect while asking a TLS
/// port for its API versions in plaintext, are only logged).
class connection_errors final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& e) override {
    if (e.type() == RdKafka::Event::EVENT_LOG) {
      detail::log_kafka_line("broker check", e.severity(), e.fac(), e.str());
      if (e.fac() == "FAIL") {
        auto msg = e.str();
        if (msg.rfind("[thrd:", 0) == 0) // the thread's name, then the broker's
          if (auto end = msg.find("]: "); end != std::string::npos)
            msg.erase(0, end + 3);
        std::lock_guard guard{mtx_};
        failed_ = std::move(msg);
      }
      return;
    }
    if (e.type() != RdKafka::Event::EVENT_ERROR)
      return;
    std::lock_guard guard{mtx_};
    if (auto code = refusal(e.err(), e.str()); code && !refused_)
      refused_ = error{*code, e.str()};
    if (e.err() != RdKafka::ERR__ALL_BROKERS_DOWN || last_.empty())
      last_ = e.str();
  }
  std::optional<error> refused() const {
    std::lock_guard guard{mtx_};
    return refused_;
  }
  std::string last() const {
    std::lock_guard guard{mtx_};
    return failed_.empty() ? last_ : failed_;
  }

 private:
  mutable std::mutex mtx_;
  std::optional<error> refused_;
  std::string last_;
  std::string failed_;
};

bool retryable(RdKafka::ErrorCode code) {
  return code == RdKafka::ERR__TIMED_OUT || code == RdKafka::ERR__TRANSPORT || code == RdKafka::ERR__ALL_BROKERS_DOWN ||
         code == RdKafka::ERR_REQUEST_TIMED_OUT || code == RdKafka::ERR__WAIT_COORD;
}

} // namespace

expected<void> check_properties(const kafka_config& cfg) {
  auto conf = detail::make_conf(cfg, {});
  if (!conf)
    return std::move(conf).error();
  return {};
}

expected<void> check_brokers(const kafka_config& cfg) {
  if (cfg.embedded)
    return {};
  // Connection closes are logged, at info level: a broker that hangs up on a plaintext
  // request (a TLS port) is only logged, with librdkafka's hint at security.protocol. The
  // lines still go to "cafes.kafka" at its own level; the errors come back in the result.
  auto conf = detail::make_conf(cfg, {{"log.connection.close", "true"}, {"log_level", "6"}});
  if (!conf)
    return std::move(conf).error();
  connection_errors seen;
  std::string err;
  if ((*conf)->set("event_cb", static_cast<RdKafka::EventCb*>(&seen), err) != RdKafka::Conf::CONF_OK)
    return error{errc::invalid_argument, "event_cb: " + err};
  std::unique_ptr<RdKafka::Producer> client{RdKafka::Producer::create(conf->get(), err)};
  if (!client)
    return error{errc::invalid_argument, "the Kafka client settings are refused: " + err};
  const auto servers = cfg.servers();
  const auto t0 = steady_clock::now();
  const auto deadline = t0 + cfg.request_timeout;
  // Metadata requests in short slices, so that a refusal reported meanwhile is seen early
  // (the call itself would wait for its whole timeout).
  milliseconds slice{100};
  for (;;) {
    const auto slice_end = std::min(deadline, steady_clock::now() + slice);
    const auto left = std::chrono::duration_cast<milliseconds>(slice_end - steady_clock::now());
    RdKafka::Metadata* md = nullptr;
    const auto code = client->metadata(false, nullptr, &md, static_cast<int>(std::max<long>(left.count(), 1)));
    std::unique_ptr<RdKafka::Metadata> owned{md};
    client->poll(0); // serves the error callback
    if (code == RdKafka::ERR_NO_ERROR) {
      persistence_log().debug("broker check: {} answered in {} ms", servers,
                              std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0).count());
      return {};
    }
    if (auto r = seen.refused())
      return error{r->code, "the Kafka brokers at " + servers + " refused the connection: " + r->message};
    if (!retryable(code))
      return detail::from_kafka(code, "the Kafka brokers at " + servers + " refused a metadata request");
    if (steady_clock::now() >= deadline)
      break;
    // A call that failed before its slice ended: wait for the rest while serving events.
    const auto rest = std::chrono::duration_cast<milliseconds>(slice_end - steady_clock::now());
    if (rest.count() > 0)
      client->poll(static_cast<int>(rest.count()));
    if (auto r = seen.refused())
      return error{r->code, "the Kafka brokers at " + servers + " refused the connection: " + r->message};
    slice = std::min(slice * 2, milliseconds{1'000});
  }
  auto last = seen.last();
  return error{errc::broker_unavailable, "no Kafka broker at " + servers + " answered within " +
                                             std::to_string(cfg.request_timeout.count()) + " ms" +
                                             (last.empty() ? std::string{} : " (last error: " + last + ")")};
}

} // namespace cafes
