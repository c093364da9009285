// Topic provisioning through the admin API (or the mock's own call in embedded mode).
#include "cafes/persistence/topics.hpp"

#include <chrono>
#include <map>
#include <thread>

#include <librdkafka/rdkafka.h>

#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/logger.hpp"
#include "kafka_common.hpp"

namespace cafes {

namespace {

struct found_topic {
  std::int32_t partitions = 0;
  std::int16_t replication = 0;
  bool leaders = false; // every partition has a leader
};

using found_map = std::map<std::string, found_topic>;

expected<found_map> describe(rd_kafka_t* rk, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms);
  if (err)
    return detail::from_kafka(static_cast<RdKafka::ErrorCode>(err), "metadata request");
  found_map out;
  for (int i = 0; i < md->topic_cnt; ++i) {
    auto& t = md->topics[i];
    if (t.err)
      continue;
    found_topic f;
    f.partitions = t.partition_cnt;
    f.replication = t.partition_cnt > 0 ? static_cast<std::int16_t>(t.partitions[0].replica_cnt) : 0;
    f.leaders = true;
    for (int p = 0; p < t.partition_cnt; ++p)
      if (t.partitions[p].leader < 0 || t.partitions[p].err)
        f.leaders = false;
    out.emplace(t.topic, f);
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

/// Waits for one admin result event on `q`.
expected<rd_kafka_event_t*> wait_result(rd_kafka_queue_t* q, int timeout_ms, const char* what) {
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
  if (!ev)
    return error{errc::timeout, std::string{what} + " got no answer"};
  if (rd_kafka_event_error(ev)) {
    error e = detail::from_kafka(static_cast<RdKafka::ErrorCode>(rd_kafka_event_error(ev)),
                                 std::string{what} + ": " + rd_kafka_event_error_string(ev));
    rd_kafka_event_destroy(ev);
    return e;
  }
  return ev;
}

/// Returns the value of topic config `key` of `topic` as one broker describes it ("" if none).
expected<std::string> topic_config_once(rd_kafka_t* rk, const std::string& topic, std::string_view key,
                                        int timeout_ms) {
  auto* q = rd_kafka_queue_new(rk);
  auto* res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  auto* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, nullptr, 0);
  rd_kafka_DescribeConfigs(rk, &res, 1, opts, q);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_ConfigResource_destroy(res);
  auto ev = wait_result(q, timeout_ms, "describe configs");
  if (!ev) {
    rd_kafka_queue_destroy(q);
    return std::move(ev).error();
  }
  std::string value;
  std::optional<error> err;
  size_t n = 0;
  auto* result = rd_kafka_event_DescribeConfigs_result(*ev);
  auto** resources = rd_kafka_DescribeConfigs_result_resources(result, &n);
  for (size_t i = 0; i < n; ++i) {
    if (auto e = rd_kafka_ConfigResource_error(resources[i])) {
      err = detail::from_kafka(static_cast<RdKafka::ErrorCode>(e), "describe configs of " + topic);
      continue;
    }
    size_t cn = 0;
    auto** entries = rd_kafka_ConfigResource_configs(resources[i], &cn);
    for (size_t k = 0; k < cn; ++k)
      if (std::string_view{rd_kafka_ConfigEntry_name(entries[k])} == key && rd_kafka_ConfigEntry_value(entries[k]))
        value = rd_kafka_ConfigEntry_value(entries[k]);
  }
  rd_kafka_event_destroy(*ev);
  rd_kafka_queue_destroy(q);
  if (err)
    return std::move(*err);
  return value;
}

/// Returns the value of topic config `key` of `topic` ("" if none). A topic just created (by
/// this node or another) may be known to the controller before the broker asked: a describe
/// that finds it missing is tried again within the timeout.
expected<std::string> topic_config(rd_kafka_t* rk, const std::string& topic, std::string_view key, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds{timeout_ms};
  auto v = topic_config_once(rk, topic, key, timeout_ms);
  while (!v && v.error() == errc::topic_missing && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // metadata propagation poll
    v = topic_config_once(rk, topic, key, timeout_ms);
  }
  return v;
}

expected<void> create(rd_kafka_t* rk, const std::vector<topic_spec>& specs, int timeout_ms) {
  std::vector<rd_kafka_NewTopic_t*> nts;
  char errstr[512];
  for (auto& s : specs) {
    auto* nt = rd_kafka_NewTopic_new(s.name.c_str(), s.partitions, s.replication, errstr, sizeof errstr);
    if (!nt) {
      for (auto* x : nts)
        rd_kafka_NewTopic_destroy(x);
      return error{errc::invalid_argument, "topic " + s.name + ": " + errstr};
    }
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", s.cleanup_policy.c_str());
    for (auto& [k, v] : s.configs)
      rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    nts.push_back(nt);
  }
  auto* q = rd_kafka_queue_new(rk);
  auto* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, nullptr, 0);
  rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, nullptr, 0);
  rd_kafka_CreateTopics(rk, nts.data(), nts.size(), opts, q);
  rd_kafka_AdminOptions_destroy(opts);
  for (auto* x : nts)
    rd_kafka_NewTopic_destroy(x);
  auto ev = wait_result(q, timeout_ms, "create topics");
  if (!ev) {
    rd_kafka_queue_destroy(q);
    return std::move(ev).error();
  }
  std::optional<error> err;
  size_t n = 0;
  auto** results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(*ev), &n);
  for (size_t i = 0; i < n; ++i) {
    auto e = rd_kafka_topic_result_error(results[i]);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && !err) {
      const char* msg = rd_kafka_topic_result_error_string(results[i]);
      err = detail::from_kafka(static_cast<RdKafka::ErrorCode>(e), std::string{"create topic "} +
                                                                       rd_kafka_topic_result_name(results[i]) +
                                                                       (msg ? std::string{": "} + msg : ""));
    }
  }
  rd_kafka_event_destroy(*ev);
  rd_kafka_queue_destroy(q);
  if (err)
    return std::move(*err);
  return {};
}

expected<void> check_spec(const topic_spec& s) {
  if (s.name.empty() || s.name.size() > 249)
    return error{errc::invalid_argument, "a topic name needs 1 to 249 characters"};
  for (char c : s.name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return error{errc::invalid_argument, "topic name '" + s.name + "' has a character outside [a-zA-Z0-9._-]"};
  if (s.partitions <= 0 || s.replication <= 0)
    return error{errc::invalid_argument, "topic " + s.name + " needs partitions and replication >= 1"};
  if (s.cleanup_policy != "delete" && s.cleanup_policy != "compact" && s.cleanup_policy != "compact,delete")
    return error{errc::invalid_argument, "topic " + s.name + " has an unknown cleanup policy '" +
                                             s.cleanup_policy + "'"};
  return {};
}

error mismatch(const topic_spec& s, const char* what, const std::string& want, const std::string& found) {
  return {errc::topic_mismatch, "topic " + s.name + " exists with " + what + " " + found + " but " + want +
                                    " is required; cafes never uses a mismatched topic"};
}

expected<void> ensure_embedded(embedded_cluster& mc, const std::vector<topic_spec>& specs,
                               const found_map& found) {
  for (auto& s : specs) {
    auto i = found.find(s.name);
    if (i == found.end()) {
      if (auto ok = mc.create_topic(s.name, s.partitions, s.replication, s.cleanup_policy); !ok)
        return ok;
      continue;
    }
    if (i->second.partitions != s.partitions)
      return mismatch(s, "partitions", std::to_string(s.partitions), std::to_string(i->second.partitions));
    auto policy = mc.cleanup_policy(s.name);
    if (!policy.empty() && policy != s.cleanup_policy)
      return mismatch(s, "cleanup.policy", s.cleanup_policy, policy);
  }
  return {};
}

/// Returns a client for admin calls.
expected<std::unique_ptr<RdKafka::Producer>> admin_client(const kafka_config& cfg) {
  auto conf = detail::make_conf(cfg, {});
  if (!conf)
    return std::move(conf).error();
  std::string err;
  std::unique_ptr<RdKafka::Producer> admin{RdKafka::Producer::create(conf->get(), err)};
  if (!admin)
    return error{errc::kafka_error, "cannot create admin client: " + err};
  return admin;
}

/// Returns `limit` less the framing reserve, or invalid_argument if nothing would fit.
expected<std::size_t> less_framing(const std::string& what, const std::string& value) {
  std::size_t limit = 0;
  try {
    limit = std::stoul(value);
  } catch (const std::exception&) {
    return error{errc::invalid_argument, what + " is '" + value + "', not a number"};
  }
  if (limit <= record_framing_bytes)
    return error{errc::invalid_argument, what + " = " + value + " leaves no room for an event"};
  return limit - record_framing_bytes;
}

} // namespace

std::vector<topic_spec> aggregate_topics(std::string_view ns, std::string_view aggregate, std::int32_t partitions,
                                         std::int16_t replication) {
  auto names = topic_names::of(ns, aggregate);
  return {
    {names.events, partitions, replication, "delete", {{"retention.ms", "-1"}, {"retention.bytes", "-1"}}},
    {names.snapshots, partitions, replication, "compact", {}},
    {names.dlq, partitions, replication, "delete", {}},
  };
}

topic_spec state_topic_spec(std::string_view ns, std::string_view aggregate, std::int32_t partitions,
                            std::int16_t replication) {
  return {topic_names::of(ns, aggregate).state, partitions, replication, "compact", {}};
}

expected<codec_limits> effective_limits(const kafka_config& cfg, const std::vector<std::string>& topics) {
  auto conf = detail::make_conf(cfg, {});
  if (!conf)
    return std::move(conf).error();
  codec_limits out = cfg.limits;
  std::string producer_max;
  if ((*conf)->get("message.max.bytes", producer_max) != RdKafka::Conf::CONF_OK)
    return error{errc::kafka_error, "the producer has no message.max.bytes"};
  auto by_producer = less_framing("the producer's message.max.bytes", producer_max);
  if (!by_producer)
    return std::move(by_producer).error();
  out.max_event_bytes = std::min(out.max_event_bytes, *by_producer);
  if (cfg.embedded || topics.empty() || !cfg.describe_topic_limits)
    return out; // the mock cluster describes no topic configs
  auto admin = admin_client(cfg);
  if (!admin)
    return std::move(admin).error();
  for (auto& t : topics) {
    auto v = topic_config((*admin)->c_ptr(), t, "max.message.bytes", static_cast<int>(cfg.request_timeout.count()));
    if (!v)
      return std::move(v).error();
    if (v->empty())
      continue;
    auto by_topic = less_framing("max.message.bytes of " + t, *v);
    if (!by_topic)
      return std::move(by_topic).error();
    out.max_event_bytes = std::min(out.max_event_bytes, *by_topic);
  }
  return out;
}

expected<void> ensure_topics(const kafka_config& cfg, const std::vector<topic_spec>& specs) {
  for (auto& s : specs)
    if (auto ok = check_spec(s); !ok)
      return ok;
  auto admin = admin_client(cfg);
  if (!admin)
    return std::move(admin).error();
  rd_kafka_t* rk = (*admin)->c_ptr();
  const int tmo = static_cast<int>(cfg.request_timeout.count());
  auto found = describe(rk, tmo);
  if (!found)
    return std::move(found).error();
  if (cfg.embedded)
    return ensure_embedded(*cfg.embedded, specs, *found);
  std::vector<topic_spec> missing;
  for (auto& s : specs) {
    auto i = found->find(s.name);
    if (i == found->end()) {
      missing.push_back(s);
      continue;
    }
    if (i->second.partitions != s.partitions)
      return mismatch(s, "partitions", std::to_string(s.partitions), std::to_string(i->second.partitions));
    if (i->second.replication != s.replication)
      return mismatch(s, "replication factor", std::to_string(s.replication), std::to_string(i->second.replication));
    auto policy = topic_config(rk, s.name, "cleanup.policy", tmo);
    if (!policy)
      return std::move(policy).error();
    if (*policy != s.cleanup_policy)
      return mismatch(s, "cleanup.policy", s.cleanup_policy, *policy);
  }
  if (missing.empty())
    return {};
  if (auto ok = create(rk, missing, tmo); !ok)
    return ok;
  // A topic created by someone else in between may differ: check the whole list again.
  // Then wait until every partition has a leader, so the first produce does not fail.
  const auto deadline = std::chrono::steady_clock::now() + cfg.request_timeout;
  for (;;) {
    auto now = describe(rk, tmo);
    if (!now)
      return std::move(now).error();
    bool ready = true;
    for (auto& s : missing) {
      auto i = now->find(s.name);
      if (i == now->end() || !i->second.leaders) {
        ready = false;
        break;
      }
      if (i->second.partitions != s.partitions)
        return mismatch(s, "partitions", std::to_string(s.partitions), std::to_string(i->second.partitions));
    }
    if (ready) {
      for (auto& s : missing)
        persistence_log().info("created topic {} ({} partitions, replication {}, cleanup.policy={})", s.name,
                               s.partitions, s.replication, s.cleanup_policy);
      return {};
    }
    if (std::chrono::steady_clock::now() > deadline)
      return error{errc::timeout, "created topics have no leaders yet"};
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // metadata propagation poll
  }
}

} // namespace cafes
