// A cafes node: starts the actor system and the Kafka clients, hosts aggregate types.
#include "cafes/runtime/node.hpp"

#include <algorithm>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "cafes/actors/host.hpp"
#include "cafes/actors/messages.hpp"
#include "cafes/persistence/group_member.hpp"
#include "cafes/persistence/logger.hpp"
#include "cafes/runtime/metrics.hpp"
#include "history_reader.hpp"
#include "metrics_families.hpp"
#include "node_settings.hpp"
#include "routing.hpp"
#include "storage_provider.hpp"

namespace cafes {

namespace {

spdlog::logger& runtime_log() {
  static const auto log = named_logger("cafes.runtime");
  return *log;
}

/// A command from plain C++ code, answered through a callback.
struct client_req {
  caf::actor router;
  command_msg msg;
  std::function<void(command_reply)> done;
  std::chrono::milliseconds timeout;
};

/// Calls its callback once: with the reply, or, if the reply never comes (the node stopped and
/// dropped the request), with shutting_down when the last copy of it goes.
struct reply_once {
  std::function<void(command_reply)> f;
  reply_once(std::function<void(command_reply)> g) : f(std::move(g)) {}
  reply_once(const reply_once&) = delete;
  reply_once& operator=(const reply_once&) = delete;
  void operator()(command_reply r) {
    if (auto g = std::exchange(f, nullptr))
      g(std::move(r));
  }
  ~reply_once() {
    if (f)
      f(command_reply{cafes::error{actor_errc::shutting_down, "the node stopped before the command was answered"}, {}});
  }
};

// How a command ended, for the node's metrics.
command_outcome outcome_of(const command_reply& r) {
  if (!r.err)
    return command_outcome::ok;
  if (*r.err == condition::rejected)
    return command_outcome::rejected;
  if (*r.err == actor_errc::overloaded)
    return command_outcome::overloaded;
  if (*r.err == actor_errc::timeout)
    return command_outcome::timeout;
  return command_outcome::failed;
}

} // namespace
} // namespace cafes

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::client_req)

namespace cafes {

namespace {

// Forwards commands of plain C++ callers and turns replies and CAF errors into callbacks.
caf::behavior client_actor(caf::event_based_actor* self) {
  return {
    [=](client_req& r) {
      auto done = std::move(r.done);
      auto timeout = r.timeout;
      self->request(r.router, r.timeout, std::move(r.msg))
        .then([done](command_reply& rep) { done(std::move(rep)); },
              [=](caf::error& err) {
                if (err == caf::sec::request_timeout)
                  done(command_reply{cafes::error{actor_errc::timeout, "no reply within " +
                                                                           std::to_string(timeout.count()) + " ms"},
                                     {}});
                else
                  done(command_reply{cafes::error{actor_errc::shutting_down, self->system().render(err)}, {}});
              });
    },
  };
}

struct system_config : caf::actor_system_config {
  explicit system_config(std::size_t threads) {
    // Work stealing lets idle workers sleep up to 10 ms before they look for work again,
    // which adds that much latency to every hop of a command. The sharing policy wakes a
    // worker at once (docs/design-notes.md).
    set("scheduler.policy", caf::atom("sharing"));
    if (threads > 0)
      set("scheduler.max-threads", static_cast<int>(threads));
  }
};

} // namespace

struct node::impl {
  node_config cfg;
  kafka_config kafka;
  std::unique_ptr<detail::storage_provider> storage; // chosen once, at start
  std::unique_ptr<system_config> sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor client;
  struct type_entry {
    std::shared_ptr<const hosted> h;
    std::shared_ptr<journal> j;
    std::shared_ptr<snapshot_store> s;
    std::int32_t standby_replicas = 0;
  };
  std::map<std::string, type_entry, std::less<>> types;
  std::mutex types_mtx; // guards adding a type against place_standbys
  // Cluster mode: the node's membership in its namespace's group, and the type of each
  // subscribed events topic (read by the member's thread).
  std::unique_ptr<group_member> group;
  std::mutex group_mtx; // guards `group` against its reset while holds() is asked
  std::mutex topics_mtx;
  std::map<std::string, std::string> topic_types;
  // Partitions the group gave this node for a topic whose type is not hosted yet (a static
  // member that restarts gets its old assignment at once, before its host() calls are done):
  // taken over when the type is hosted. follow_mtx serializes that with the group's changes.
  std::mutex follow_mtx;
  std::map<std::string, std::set<std::int32_t>> pending;
  std::mutex listener_mtx;
  std::function<void(std::string_view, std::int32_t, bool)> listener;
  std::unique_ptr<detail::routing> routing; // routing between nodes, if on
  std::shared_ptr<node_metrics> metrics;    // created on first use; detached when the node stops
  std::mutex metrics_mtx;
  bool stopped = false;
  // Commands of plain C++ callers in flight, for shutdown(): counted from send_command to
  // their callback. Draining refuses new ones.
  std::mutex drain_mtx;
  std::condition_variable drained;
  std::size_t in_flight = 0;
  bool draining = false;

  void finished() {
    std::lock_guard guard{drain_mtx};
    if (--in_flight == 0)
      drained.notify_all();
  }

  // wait_ready() sleeps on this; the partitions (host_config::on_settled) and the group's
  // first assignment wake it.
  std::mutex ready_mtx;
  std::condition_variable ready_cv;
  void notify_ready() {
    { std::lock_guard guard{ready_mtx}; } // orders the change before a waiter's next check
    ready_cv.notify_all();
  }
};

expected<std::unique_ptr<node>> node::start(node_config cfg) {
  try {
    return std::make_unique<node>(std::move(cfg));
  } catch (const bad_expected_access& e) {
    return e.error();
  }
}

node::node(node_config cfg) : impl_(std::make_unique<impl>()) {
  detail::caller_thread_guard unpin; // the node may be stopped on another thread
  auto& d = *impl_;
  d.cfg = std::move(cfg);
  const auto level = spdlog::level::from_str(d.cfg.log_level);
  if (level == spdlog::level::off && d.cfg.log_level != "off")
    throw bad_expected_access(cafes::error{errc::invalid_argument, "log level '" + d.cfg.log_level +
                                                                     "': trace, debug, info, warn, error or off"});
  spdlog::set_level(level);
  auto format = parse_log_format(d.cfg.log_format);
  if (!format)
    throw bad_expected_access(format.error());
  set_log_format(*format);
  if (d.cfg.storage == storage_kind::kafka && d.cfg.command_timeout <= d.cfg.delivery_timeout)
    throw bad_expected_access(cafes::error{
      errc::invalid_argument, "the command timeout (" + std::to_string(d.cfg.command_timeout.count()) +
                                " ms) must be longer than the delivery timeout (" +
                                std::to_string(d.cfg.delivery_timeout.count()) +
                                " ms): otherwise a client sees timeout while its events may still land"});
  if (d.cfg.cluster) {
    // A node that lost a partition (paused, cut off) must be fenced at its next write, or
    // two owners could both acknowledge writes: only the transactional journal on a real
    // broker fences.
    if (d.cfg.storage != storage_kind::kafka || d.cfg.bootstrap.empty())
      throw bad_expected_access(cafes::error{
        errc::invalid_argument, "cluster mode needs a real Kafka broker (--bootstrap): the embedded mock "
                                "cluster and memory storage cannot fence a node that lost its partitions"});
    if (d.cfg.mode != journal_mode::transactional)
      throw bad_expected_access(cafes::error{
        errc::invalid_argument, "cluster mode needs --mode transactional: idempotent producers cannot fence a "
                                "node that lost its partitions, so two nodes could both write one partition"});
  }
  d.kafka.bootstrap = d.cfg.bootstrap;
  d.kafka.mode = d.cfg.mode;
  d.kafka.node_name = d.cfg.node_name;
  d.kafka.client_id = "cafes-" + d.cfg.node_name;
  d.kafka.delivery_timeout = d.cfg.delivery_timeout;
  d.kafka.request_timeout = d.cfg.request_timeout;
  auto props = detail::kafka_properties(d.cfg);
  if (!props)
    throw bad_expected_access(props.error());
  d.kafka.extra = std::move(*props);
  const bool routing = d.cfg.cluster || d.cfg.routing;
  if (routing && d.cfg.storage != storage_kind::kafka)
    throw bad_expected_access(cafes::error{errc::invalid_argument, "routing between nodes needs Kafka storage "
                                                                   "(a broker or the embedded cluster): the nodes "
                                                                   "find each other through the directory topic"});
  auto tls = detail::tls_of(d.cfg, routing);
  if (!tls)
    throw bad_expected_access(tls.error());
  auto storage = detail::choose_storage(d.cfg, d.kafka);
  if (!storage)
    throw bad_expected_access(storage.error());
  d.storage = std::move(*storage);
  if (d.cfg.storage == storage_kind::kafka) {
    // Refused settings and credentials fail here, bounded and typed, rather than as a
    // timeout of the first command.
    if (auto ok = check_properties(d.kafka); !ok)
      throw bad_expected_access(ok.error());
    if (d.cfg.check_brokers && !d.kafka.embedded) {
      if (auto ok = check_brokers(d.kafka); !ok)
        throw bad_expected_access(ok.error());
      auto protocol = d.kafka.extra.find("security.protocol");
      runtime_log().info("Kafka brokers at {} answer (security.protocol {})", d.kafka.bootstrap,
                         protocol == d.kafka.extra.end() ? std::string{"plaintext"} : protocol->second);
    }
  }
  d.sys_cfg = std::make_unique<system_config>(d.cfg.threads);
  if (routing)
    detail::routing::configure(*d.sys_cfg, *tls);
  d.sys = std::make_unique<caf::actor_system>(*d.sys_cfg);
  d.client = d.sys->spawn(client_actor);
  if (routing) {
    auto r = detail::routing::start(*d.sys, d.kafka,
                                    {d.cfg.ns, d.cfg.node_name, d.cfg.advertise_host, d.cfg.gateway_bind,
                                     d.cfg.gateway_port, d.cfg.directory_replication, d.cfg.max_frame_bytes,
                                     d.cfg.command_timeout, d.cfg.request_timeout, tls->has_value()});
    if (!r) {
      caf::anon_send_exit(d.client, caf::exit_reason::user_shutdown);
      throw bad_expected_access(r.error());
    }
    d.routing = std::move(*r);
  }
}

node::~node() { stop(); }

void node::stop() {
  auto& d = *impl_;
  if (d.stopped)
    return;
  // Leaving first releases the owned partitions gracefully (their revoke handler runs), while
  // the actors still serve. A static member stays in the group: a restart within the session
  // timeout gets the same partitions back.
  {
    std::unique_ptr<group_member> g;
    {
      std::lock_guard guard{d.group_mtx};
      g = std::move(d.group);
    }
    g.reset();
  }
  if (d.routing)
    d.routing->stop(); // removes the node's directory entry while Kafka is still there
  {
    std::lock_guard guard{d.metrics_mtx};
    if (d.metrics)
      d.metrics->detach(); // waits for a collection in progress
  }
  d.stopped = true;
  caf::anon_send_exit(d.client, caf::exit_reason::user_shutdown);
  for (auto& [name, t] : d.types) {
    caf::anon_send_exit(t.h->owner, caf::exit_reason::user_shutdown); // stops the partitions too
    caf::anon_send_exit(t.h->journal_actor, caf::exit_reason::user_shutdown);
  }
  d.sys->await_all_actors_done();
  d.sys.reset();
  d.routing.reset();
  d.types.clear();   // closes the journals and snapshot stores (flushing their producers)
  flush_logs();      // the repeated lines still counted, as their summaries
}

expected<void> node::host_impl(std::shared_ptr<const aggregate_ops> ops, host_options opts) {
  detail::caller_thread_guard unpin;
  auto& d = *impl_;
  std::string name{ops->name()};
  if (d.types.count(name))
    return cafes::error{errc::invalid_argument, "aggregate type '" + name + "' is hosted twice"};
  if (opts.partitions <= 0)
    return cafes::error{errc::invalid_argument, "an aggregate type needs at least one partition"};
  if (opts.replication <= 0)
    return cafes::error{errc::invalid_argument, "the replication factor must be at least 1"};
  if (opts.standby_replicas < 0 || opts.standby_replicas > 16)
    return cafes::error{errc::invalid_argument, "standby_replicas must be 0 to 16"};
  if (opts.standby_replicas > 0 && !d.routing)
    return cafes::error{errc::invalid_argument, "standby replicas need routing (cluster mode or --routing): "
                                                "a node learns who owns what from the directory"};
  if (opts.min_insync_replicas < 0 || opts.min_insync_replicas > opts.replication)
    return cafes::error{errc::invalid_argument, "min.insync.replicas must be 1 to the replication factor (" +
                                                    std::to_string(opts.replication) + ")"};
  auto st = d.storage->open(d.cfg.ns, name, opts);
  if (!st)
    return std::move(st).error();
  auto& [j, s] = *st;
  host_config hc{opts};
  hc.ops = ops;
  hc.journal = j;
  hc.snapshots = s;
  hc.stats = std::make_shared<host_stats>();
  hc.stats->timed = d.cfg.metrics;
  hc.node_name = d.cfg.node_name;
  // Events and snapshots are checked against the smaller of the stores' limits, each of
  // which is the smallest of the codec's, the producer's and the topic's.
  hc.limits = j->limits();
  hc.limits.max_event_bytes = std::min(hc.limits.max_event_bytes, s->limits().max_event_bytes);
  hc.assign_all = opts.assign_all && !d.cfg.cluster;
  hc.on_settled = [impl = impl_.get()] { impl->notify_ready(); }; // the actors stop before impl goes
  if (d.routing)
    hc.forwarder = d.routing->forwarder();
  if (d.cfg.cluster)
    hc.still_owned = [this, topic = j->topic()](std::int32_t p) {
      std::lock_guard guard{impl_->group_mtx};
      return impl_->group && impl_->group->holds(topic_partition{topic, partition_id{p}});
    };
  auto h = std::make_shared<const hosted>(spawn_host(*d.sys, std::move(hc)));
  {
    std::lock_guard guard{d.types_mtx}; // place_standbys reads the types on the directory's thread
    d.types.emplace(name, impl::type_entry{h, j, s, opts.standby_replicas});
  }
  if (d.routing) {
    d.routing->add_type(*h);
    if (opts.standby_replicas > 0) {
      d.routing->on_directory_change([this] { place_standbys(); });
      place_standbys();
    }
  }
  if (d.cfg.cluster)
    if (auto ok = share(topic_names::of(d.cfg.ns, name).events, name); !ok)
      return ok;
  runtime_log().info("hosting '{}' on {} partitions ({} journal, snapshot every {}, max replay {})", name,
                     opts.partitions, d.storage->name(), opts.snapshot_every, opts.max_replay);
  return {};
}

void node::send_command(std::string_view type, command_msg m, std::chrono::milliseconds timeout,
                        std::function<void(command_reply)> done) {
  auto& d = *impl_;
  if (timeout.count() < 0)
    return done(command_reply{cafes::error{errc::invalid_argument, "a command's timeout must not be negative"}, {}});
  {
    std::lock_guard guard{d.drain_mtx};
    if (d.draining)
      return done(command_reply{cafes::error{actor_errc::shutting_down, "the node is shutting down"}, {}});
    ++d.in_flight;
  }
  auto r = router_of(type);
  if (!r) {
    impl_->finished();
    return done(command_reply{r.error(), {}});
  }
  auto stats = impl_->types.find(type)->second.h->stats;
  auto once = std::make_shared<reply_once>([this, done = std::move(done), stats, since = stats->start()](command_reply rep) {
    impl_->finished(); // first: a caller woken by `done` sees the command no longer in flight
    stats->command_done(outcome_of(rep), since);
    done(std::move(rep));
  });
  auto counted = [once](command_reply rep) { (*once)(std::move(rep)); };
  caf::anon_send(d.client, client_req{*r, std::move(m), std::move(counted),
                                      timeout.count() > 0 ? timeout : d.cfg.command_timeout});
}

expected<void> node::shutdown(std::chrono::milliseconds drain) {
  auto& d = *impl_;
  std::size_t left = 0;
  {
    std::unique_lock lock{d.drain_mtx};
    d.draining = true;
    if (d.in_flight > 0)
      runtime_log().info("shutting down: draining {} command(s) in flight (at most {} ms)", d.in_flight,
                         drain.count());
    d.drained.wait_for(lock, drain, [&] { return d.in_flight == 0; });
    left = d.in_flight;
  }
  if (left > 0)
    runtime_log().warn("shutting down: {} command(s) still in flight after {} ms fail with shutting_down", left,
                       drain.count());
  stop();
  runtime_log().info("node '{}' stopped", d.cfg.node_name);
  if (left > 0)
    return cafes::error{actor_errc::timeout, std::to_string(left) + " command(s) were still in flight after " +
                                                 std::to_string(drain.count()) + " ms"};
  return {};
}

expected<caf::actor> node::router_of(std::string_view type) const {
  if (impl_->stopped)
    return cafes::error{actor_errc::shutting_down, "the node is stopped"};
  auto i = impl_->types.find(type);
  if (i == impl_->types.end())
    return cafes::error{actor_errc::unknown_aggregate_type, "no aggregate type '" + std::string{type} + "' is hosted"};
  return i->second.h->owner;
}

expected<std::vector<std::string>> node::query_impl(std::string_view type, std::function<bool(const std::any&)> pred) {
  auto i = impl_->types.find(type);
  if (i == impl_->types.end())
    return cafes::error{actor_errc::unknown_aggregate_type, "no aggregate type '" + std::string{type} + "' is hosted"};
  auto p = std::make_shared<const std::function<bool(const std::any&)>>(std::move(pred));
  std::vector<std::string> out;
  std::optional<cafes::error> err;
  detail::caller_thread_guard unpin;
  caf::scoped_actor self{*impl_->sys};
  self->request(i->second.h->owner, impl_->cfg.command_timeout, query_atom::value, p)
    .receive([&](std::vector<std::string>& ids) { out = std::move(ids); },
             [&](caf::error& e) { err = cafes::error{actor_errc::timeout, self->system().render(e)}; });
  if (err)
    return std::move(*err);
  return out;
}

expected<std::any> node::state_at_impl(std::string_view type, std::string_view id, std::uint64_t seq,
                                       std::optional<std::int64_t> time_ms) {
  if (impl_->stopped)
    return cafes::error{actor_errc::shutting_down, "the node is stopped"};
  auto i = impl_->types.find(type);
  if (i == impl_->types.end())
    return cafes::error{actor_errc::unknown_aggregate_type, "no aggregate type '" + std::string{type} + "' is hosted"};
  return detail::read_state_at({*i->second.j, *i->second.s, *i->second.h->ops}, id, seq, time_ms);
}

expected<std::vector<std::pair<event_metadata, std::any>>> node::history_impl(std::string_view type,
                                                                               std::string_view id) {
  if (impl_->stopped)
    return cafes::error{actor_errc::shutting_down, "the node is stopped"};
  auto i = impl_->types.find(type);
  if (i == impl_->types.end())
    return cafes::error{actor_errc::unknown_aggregate_type, "no aggregate type '" + std::string{type} + "' is hosted"};
  return detail::read_history({*i->second.j, *i->second.s, *i->second.h->ops}, id);
}

namespace {

// Asks a type's owner actor and waits for its answer (bounded by the request timeout).
template <class T, class... Ts>
expected<T> ask_owner(caf::actor_system& sys, const caf::actor& owner, std::chrono::milliseconds timeout, Ts... xs) {
  std::optional<expected<T>> out;
  detail::caller_thread_guard unpin;
  caf::scoped_actor self{sys};
  self->request(owner, timeout, xs...)
    .receive([&](T& x) { out = std::move(x); },
             [&](caf::error& e) {
               out = cafes::error{e == caf::sec::request_timeout ? actor_errc::timeout : actor_errc::shutting_down,
                                  sys.render(e)};
             });
  return std::move(*out);
}

} // namespace

expected<caf::actor> node::owner_of(std::string_view type, std::int32_t p) const {
  auto owner = router_of(type);
  if (owner && (p < 0 || p >= impl_->types.find(type)->second.h->partition_count))
    return cafes::error{errc::invalid_argument, "aggregate type '" + std::string{type} + "' has no partition " +
                                                    std::to_string(p)};
  return owner;
}

expected<void> node::change_ownership(std::string_view type, std::int32_t p, bool take) {
  auto owner = owner_of(type, p);
  if (!owner)
    return std::move(owner).error();
  auto& cfg = impl_->cfg;
  auto& stats = *impl_->types.find(type)->second.h->stats;
  const auto since = stats.start();
  // A revoke drains persists in flight (each bounded by the delivery timeout), then waits
  // for snapshots, a checkpoint and a commit.
  auto r = take ? ask_owner<bool>(*impl_->sys, *owner, cfg.request_timeout, assign_atom::value, p)
                : ask_owner<bool>(*impl_->sys, *owner, cfg.command_timeout + cfg.request_timeout * 2,
                                  revoke_atom::value, p);
  if (!r)
    return std::move(r).error();
  stats.handed_off(since);
  if (impl_->routing)
    impl_->routing->publish();
  std::lock_guard guard{impl_->listener_mtx};
  if (impl_->listener)
    impl_->listener(type, p, take);
  return {};
}

void node::on_ownership_change(std::function<void(std::string_view, std::int32_t, bool)> f) {
  std::lock_guard guard{impl_->listener_mtx};
  impl_->listener = std::move(f);
}

expected<void> node::share(const std::string& topic, const std::string& type) {
  auto& d = *impl_;
  std::vector<std::string> topics;
  {
    std::lock_guard follow{d.follow_mtx};
    {
      std::lock_guard guard{d.topics_mtx};
      d.topic_types[topic] = type;
      for (auto& [t, name] : d.topic_types)
        topics.push_back(t);
    }
    if (auto i = d.pending.find(topic); i != d.pending.end()) {
      auto parts = std::move(i->second);
      d.pending.erase(i);
      for (auto p : parts)
        if (auto ok = change_ownership(type, p, true); !ok)
          runtime_log().warn("taking over partition {} of '{}' failed: {}", p, type, ok.error().to_string());
    }
  }
  if (!d.group) {
    group_settings gs;
    gs.group_id = d.cfg.ns + ".nodes";
    gs.instance_id = d.cfg.node_name;
    gs.session_timeout = d.cfg.session_timeout;
    group_handlers gh;
    gh.assigned = [this](const std::vector<topic_partition>& parts) {
      follow_group(parts, true);
      impl_->notify_ready(); // joined() may have turned true
    };
    gh.revoked = [this](const std::vector<topic_partition>& parts, bool) { follow_group(parts, false); };
    auto g = group_member::join(d.kafka, std::move(gs), std::move(gh));
    if (!g)
      return std::move(g).error();
    std::lock_guard guard{d.group_mtx};
    d.group = std::move(*g);
  }
  return d.group->subscribe(std::move(topics));
}

void node::follow_group(const std::vector<topic_partition>& parts, bool take) {
  // Partitions are taken over (or released) side by side; the group waits for all of them,
  // so that a released partition moves on only once its checkpoint is stored.
  std::lock_guard follow{impl_->follow_mtx};
  std::vector<std::future<void>> jobs;
  for (auto& tp : parts) {
    std::string type;
    {
      std::lock_guard guard{impl_->topics_mtx};
      auto i = impl_->topic_types.find(tp.topic);
      if (i == impl_->topic_types.end()) {
        auto& waiting = impl_->pending[tp.topic];
        if (take) {
          waiting.insert(tp.partition.value());
          runtime_log().info("partition {} of {} waits until its aggregate type is hosted", tp.partition.value(),
                             tp.topic);
        } else {
          waiting.erase(tp.partition.value());
        }
        continue;
      }
      type = i->second;
    }
    jobs.push_back(std::async(std::launch::async, [this, type, p = tp.partition.value(), take] {
      if (auto ok = change_ownership(type, p, take); !ok)
        runtime_log().warn("{} partition {} of '{}' failed: {}", take ? "taking over" : "releasing", p, type,
                           ok.error().to_string());
    }));
  }
  for (auto& j : jobs)
    j.wait();
}

bool node::joined() const noexcept { return !impl_->cfg.cluster || (impl_->group && impl_->group->joined()); }

expected<void> node::assign(std::string_view type, std::int32_t p) { return change_ownership(type, p, true); }

expected<void> node::revoke(std::string_view type, std::int32_t p) { return change_ownership(type, p, false); }

expected<std::vector<owned_partition>> node::owned(std::string_view type) {
  auto owner = router_of(type);
  if (!owner)
    return std::move(owner).error();
  auto r = ask_owner<std::vector<owned_partition>>(*impl_->sys, *owner, impl_->cfg.request_timeout, owned_atom::value);
  if (r)
    std::sort(r->begin(), r->end(), [](auto& a, auto& b) { return a.partition < b.partition; });
  return r;
}

namespace {

// A stable hash (FNV-1a), the same on every node: where a standby goes must not depend on
// the standard library's hash.
std::uint64_t stable_hash(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

} // namespace

void node::place_standbys() {
  // Rendezvous hashing: for each partition, the nodes other than its owner are ranked by a
  // hash of (node, type, partition); the first standby_replicas of them keep it warm. Every
  // node ranks alike from the same directory, and a change of nodes moves few standbys.
  auto& d = *impl_;
  if (!d.routing || d.stopped)
    return;
  std::lock_guard guard{d.types_mtx};
  const auto nodes = d.routing->owning_nodes();
  for (auto& [name, t] : d.types) {
    if (t.standby_replicas <= 0)
      continue;
    for (std::int32_t p = 0; p < t.h->partition_count; ++p) {
      auto owner = d.routing->owner_name(name, p);
      bool want = false;
      if (owner && *owner != d.cfg.node_name) {
        std::vector<std::pair<std::uint64_t, std::string>> ranked;
        for (auto& n : nodes)
          if (n != *owner)
            ranked.emplace_back(stable_hash(n + '\0' + name + '\0' + std::to_string(p)), n);
        std::sort(ranked.begin(), ranked.end(), std::greater<>{});
        for (std::size_t i = 0; i < ranked.size() && i < static_cast<std::size_t>(t.standby_replicas); ++i)
          want = want || ranked[i].second == d.cfg.node_name;
      }
      caf::anon_send(t.h->owner, standby_atom::value, p, want); // ignored for an owned partition
    }
  }
}

expected<void> node::standby(std::string_view type, std::int32_t p, bool on) {
  auto owner = owner_of(type, p);
  if (!owner)
    return std::move(owner).error();
  auto r = ask_owner<bool>(*impl_->sys, *owner, impl_->cfg.request_timeout, standby_atom::value, p, on);
  if (!r)
    return std::move(r).error();
  return {};
}

expected<std::vector<std::int32_t>> node::standbys(std::string_view type) {
  auto owner = router_of(type);
  if (!owner)
    return std::move(owner).error();
  return ask_owner<std::vector<std::int32_t>>(*impl_->sys, *owner, impl_->cfg.request_timeout, standby_atom::value);
}

expected<void> node::wait_ready(std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto ready = [&] {
    if (!joined())
      return false;
    for (auto& [name, t] : d.types)
      if (t.h->stats->partitions_ready.load() + t.h->stats->partitions_failed.load() <
          t.h->stats->partitions_owned.load())
        return false;
    return true;
  };
  // Woken by every change that can make it ready (notify_ready); the bounded wait is only a
  // safety net.
  std::unique_lock lock{d.ready_mtx};
  for (;;) {
    if (ready())
      return {};
    const auto now = std::chrono::steady_clock::now();
    if (now > deadline)
      return cafes::error{actor_errc::timeout, "partitions not recovered within " + std::to_string(timeout.count()) +
                                                   " ms"};
    d.ready_cv.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds{100}));
  }
}

std::shared_ptr<const host_stats> node::stats(std::string_view name) const {
  auto i = impl_->types.find(name);
  return i == impl_->types.end() ? nullptr : i->second.h->stats;
}

std::uint16_t node::gateway_port() const noexcept { return impl_->routing ? impl_->routing->port() : 0; }

routing_stats node::routing_counters() const noexcept {
  if (!impl_->routing)
    return {};
  auto& c = impl_->routing->counters();
  return {c.forwarded.load(), c.retries.load(), c.received.load(), c.refused.load()};
}

bool node::durable() const noexcept { return impl_->storage->durable(); }

expected<kafka_config> node::kafka() const {
  if (impl_->cfg.storage != storage_kind::kafka)
    return error{errc::invalid_argument, "the node keeps its journal in memory: it has no Kafka cluster"};
  return impl_->kafka;
}

node_readiness node::readiness() const {
  auto& d = *impl_;
  if (d.stopped)
    return {false, "the node is stopped"};
  if (!joined())
    return {false, "the node has not joined its group"};
  for (auto& [name, t] : d.types) {
    if (!t.j->healthy())
      return {false, "the journal of '" + name + "' cannot write (a producer failed fatally or a writer was lost)"};
    auto& st = *t.h->stats;
    const auto owned = st.partitions_owned.load(), ready = st.partitions_ready.load(), failed = st.partitions_failed.load();
    if (failed > 0)
      return {false, std::to_string(failed) + " partition(s) of '" + name + "' stopped on corruption"};
    if (ready < owned)
      return {false, std::to_string(owned - ready) + " partition(s) of '" + name + "' recovering"};
  }
  return {true, {}};
}

expected<std::vector<partition_detail>> node::partitions(std::string_view type) {
  auto owner = router_of(type);
  if (!owner)
    return std::move(owner).error();
  auto r = ask_owner<std::vector<partition_detail>>(*impl_->sys, *owner, impl_->cfg.request_timeout,
                                                    owned_atom::value, stats_atom::value);
  if (r)
    std::sort(r->begin(), r->end(), [](auto& a, auto& b) { return a.partition < b.partition; });
  return r;
}

std::shared_ptr<node_metrics> node::metrics() const {
  auto& d = *impl_;
  std::lock_guard guard{d.metrics_mtx};
  if (d.metrics)
    return d.metrics;
  // The node part runs under node_metrics' lock, which stop() takes before the node goes.
  d.metrics = std::make_shared<node_metrics>([this, &d](std::vector<prometheus::MetricFamily>& out) {
    detail::family_builder b{out};
    const detail::labels l{{"namespace", d.cfg.ns}};
    b.gauge("cafes_node_info", "Always 1: the node's name and journal mode in labels",
            {{"namespace", d.cfg.ns}, {"node", d.cfg.node_name}, {"mode", std::string{to_string(d.cfg.mode)}}}, 1);
    b.gauge("cafes_node_ready", "1 when every owned partition recovered, no journal is fatal and the node is in its group",
            l, readiness().ready ? 1 : 0);
    b.gauge("cafes_node_healthy", "1 while every journal of the node can write", l, healthy() ? 1 : 0);
    b.gauge("cafes_node_joined", "1 while the node is in its namespace's group (always 1 outside cluster mode)", l,
            joined() ? 1 : 0);
    const auto ke = kafka_errors();
    b.counter("cafes_kafka_errors_total", "Errors the process's Kafka clients reported (every node of the process)",
              {{"namespace", d.cfg.ns}, {"client", "producer"}}, static_cast<double>(ke.producer));
    b.counter("cafes_kafka_errors_total", "", {{"namespace", d.cfg.ns}, {"client", "consumer"}},
              static_cast<double>(ke.consumer));
    b.counter("cafes_kafka_fatal_errors_total", "Fatal errors of the process's Kafka clients (the client was replaced)",
              l, static_cast<double>(ke.fatal));
    if (d.routing) {
      auto& c = d.routing->counters();
      b.counter("cafes_routing_forwarded_total", "Commands sent on towards their partition's owner", l,
                static_cast<double>(c.forwarded.load()));
      b.counter("cafes_routing_retries_total", "Routing attempts repeated (no owner known, not_owner, no connection)",
                l, static_cast<double>(c.retries.load()));
      b.counter("cafes_routing_received_total", "Frames this node's gateway took from other nodes", l,
                static_cast<double>(c.received.load()));
      b.counter("cafes_routing_refused_total", "Frames the gateway refused before any owner saw them", l,
                static_cast<double>(c.refused.load()));
    }
    std::lock_guard types{d.types_mtx};
    for (auto& [name, t] : d.types)
      detail::collect_host(b, d.cfg.ns, name, *t.h->stats);
  });
  return d.metrics;
}

bool node::healthy() const noexcept {
  for (auto& [name, t] : impl_->types)
    if (!t.j->healthy())
      return false;
  return true;
}

const node_config& node::config() const noexcept { return impl_->cfg; }

caf::actor_system& node::system() { return *impl_->sys; }

} // namespace cafes
