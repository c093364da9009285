// A consumer-group member that only takes part in rebalances (partition ownership).
#include "cafes/persistence/group_member.hpp"

#include <atomic>
#include <thread>

#include "cafes/persistence/logger.hpp"
#include "kafka_common.hpp"

namespace cafes {

namespace {

std::vector<topic_partition> to_list(const std::vector<RdKafka::TopicPartition*>& parts) {
  std::vector<topic_partition> out;
  out.reserve(parts.size());
  for (auto* tp : parts)
    out.push_back(topic_partition{tp->topic(), partition_id{tp->partition()}});
  return out;
}

std::string describe(const std::vector<RdKafka::TopicPartition*>& parts) {
  std::string s;
  for (auto* tp : parts)
    s += (s.empty() ? "" : ",") + tp->topic() + "/" + std::to_string(tp->partition());
  return s.empty() ? "none" : s;
}

} // namespace

struct group_member::impl final : RdKafka::RebalanceCb {
  group_settings settings;
  group_handlers handlers;
  detail::client_events events{"group member"};
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  std::atomic<bool> stop{false};
  std::atomic<bool> joined{false};
  std::atomic<std::uint64_t> rebalances{0};
  std::thread poller;

  void rebalance_cb(RdKafka::KafkaConsumer* c, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& parts) override {
    ++rebalances;
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      persistence_log().info("group {}: {} assigned {}", settings.group_id, settings.instance_id, describe(parts));
      if (std::unique_ptr<RdKafka::Error> e{c->incremental_assign(parts)}; e)
        persistence_log().error("group {}: incremental assign failed: {}", settings.group_id, e->str());
      // The member never reads: its partitions stay paused, so nothing is fetched.
      c->pause(parts);
      if (handlers.assigned && !parts.empty())
        handlers.assigned(to_list(parts));
      joined = true;
    } else if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
      const bool lost = c->assignment_lost();
      persistence_log().info("group {}: {} {} {}", settings.group_id, settings.instance_id,
                             lost ? "lost" : "gives up", describe(parts));
      if (lost)
        joined = false;
      if (handlers.revoked && !parts.empty())
        handlers.revoked(to_list(parts), lost);
      if (std::unique_ptr<RdKafka::Error> e{c->incremental_unassign(parts)}; e)
        persistence_log().error("group {}: incremental unassign failed: {}", settings.group_id, e->str());
    } else {
      persistence_log().error("group {}: rebalance failed: {}", settings.group_id, RdKafka::err2str(err));
      joined = false;
    }
  }

  void run() {
    while (!stop.load(std::memory_order_relaxed)) {
      std::unique_ptr<RdKafka::Message> m{consumer->consume(100)};
      if (!m)
        continue;
      switch (m->err()) {
        case RdKafka::ERR_NO_ERROR:           // fetched before the pause took effect: not ours to read
        case RdKafka::ERR__TIMED_OUT:
        case RdKafka::ERR__PARTITION_EOF:
          break;
        default:
          persistence_log().warn("group {}: {}", settings.group_id, m->errstr());
      }
      if (events.fatal()) {
        // For example another member joined with this instance id: two nodes share a name.
        persistence_log().error("group {}: member {} failed fatally and gives its partitions up; is another "
                                "node running with the name '{}'?",
                                settings.group_id, settings.instance_id, settings.instance_id);
        joined = false;
        std::vector<RdKafka::TopicPartition*> parts;
        if (consumer->assignment(parts) == RdKafka::ERR_NO_ERROR && !parts.empty()) {
          if (handlers.revoked)
            handlers.revoked(to_list(parts), true);
          RdKafka::TopicPartition::destroy(parts);
        }
        return;
      }
    }
    // Revokes the partitions through rebalance_cb; a static member does not leave the group.
    consumer->close();
  }
};

group_member::group_member(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

expected<std::unique_ptr<group_member>> group_member::join(const kafka_config& cfg, group_settings settings,
                                                           group_handlers handlers) {
  if (settings.group_id.empty() || settings.instance_id.empty())
    return error{errc::invalid_argument, "a group member needs a group id and an instance id"};
  const auto session = settings.session_timeout.count();
  if (session < 1000)
    return error{errc::invalid_argument, "the session timeout must be at least 1000 ms"};
  auto d = std::make_unique<impl>();
  d->settings = std::move(settings);
  d->handlers = std::move(handlers);
  auto conf = detail::make_conf(cfg, {
                                       {"group.id", d->settings.group_id},
                                       {"group.instance.id", d->settings.instance_id},
                                       {"partition.assignment.strategy", "cooperative-sticky"},
                                       {"session.timeout.ms", std::to_string(session)},
                                       {"heartbeat.interval.ms", std::to_string(std::max<long>(session / 4, 100))},
                                       {"enable.auto.commit", "false"},
                                       {"enable.auto.offset.store", "false"},
                                       {"auto.offset.reset", "latest"},
                                       {"enable.partition.eof", "false"},
                                     });
  if (!conf)
    return std::move(conf).error();
  std::string err;
  if ((*conf)->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(d.get()), err) != RdKafka::Conf::CONF_OK)
    return error{errc::invalid_argument, err};
  if (auto ok = detail::set_events(**conf, d->events); !ok)
    return std::move(ok).error();
  d->consumer.reset(RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!d->consumer)
    return error{errc::kafka_error, "cannot create the group member: " + err};
  auto* raw = d.get();
  d->poller = std::thread{[raw] { raw->run(); }};
  return std::unique_ptr<group_member>{new group_member(std::move(d))};
}

group_member::~group_member() {
  impl_->stop = true;
  if (impl_->poller.joinable())
    impl_->poller.join();
}

expected<void> group_member::subscribe(std::vector<std::string> topics) {
  if (auto code = impl_->consumer->subscribe(topics); code != RdKafka::ERR_NO_ERROR)
    return detail::from_kafka(code, "cannot subscribe the group member");
  return {};
}

bool group_member::joined() const noexcept { return impl_->joined.load(); }

bool group_member::holds(const topic_partition& tp) {
  auto& d = *impl_;
  if (!d.joined.load() || d.events.fatal())
    return false;
  std::vector<RdKafka::TopicPartition*> assigned;
  if (d.consumer->assignment(assigned) != RdKafka::ERR_NO_ERROR)
    return false;
  bool mine = false;
  for (auto* a : assigned)
    mine = mine || (a->topic() == tp.topic && a->partition() == tp.partition.value());
  RdKafka::TopicPartition::destroy(assigned);
  if (!mine)
    return false;
  // The member never reads, so the committed offset means nothing; the commit's membership
  // and generation check is what counts.
  std::vector<RdKafka::TopicPartition*> offsets{RdKafka::TopicPartition::create(tp.topic, tp.partition.value(), 0)};
  auto code = d.consumer->commitSync(offsets);
  if (code == RdKafka::ERR_NO_ERROR)
    code = offsets.front()->err();
  RdKafka::TopicPartition::destroy(offsets);
  if (code != RdKafka::ERR_NO_ERROR)
    persistence_log().info("group {}: {} does not hold {}/{} (the coordinator says {})", d.settings.group_id,
                           d.settings.instance_id, tp.topic, tp.partition.value(), RdKafka::err2str(code));
  return code == RdKafka::ERR_NO_ERROR;
}

std::uint64_t group_member::rebalances() const noexcept { return impl_->rebalances.load(); }

} // namespace cafes
