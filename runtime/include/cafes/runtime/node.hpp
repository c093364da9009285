// A cafes node: the actor system, the Kafka clients and the hosted aggregate types.
#pragma once

#include <chrono>
#include <concepts>
#include <coroutine>
#include <optional>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "cafes/actors/aggregate.hpp"
#include "cafes/actors/command.hpp"
#include "cafes/actors/host_options.hpp"
#include "cafes/actors/ops.hpp"
#include "cafes/actors/stats.hpp"
#include "cafes/persistence/errc.hpp"
#include "cafes/persistence/kafka_config.hpp"
#include "cafes/runtime/history.hpp"

namespace CLI {
class App;
}

namespace cafes {

struct topic_partition;
class node_metrics;

/// Whether a node is ready for traffic (node::readiness), and if not, why.
struct node_readiness {
  bool ready = false; ///< every owned partition recovered, no journal fatal, in the group
  std::string reason; ///< why not (empty when ready)
};

/// Where a node keeps its journal.
enum class storage_kind {
  kafka,  ///< Kafka: the real broker, or the embedded mock cluster when no bootstrap is set
  memory, ///< in-process memory: nothing durable (tests and tools)
};

/// A node's configuration: from a file plus the command line (node_config::from_args).
struct node_config {
  std::string bootstrap{};            ///< "host:port,…"; empty: the embedded mock cluster
  std::string ns = "cafes";           ///< namespace: prefix of every topic
  /// The node's name, written into every event it journals; unique among the nodes of a
  /// namespace (in cluster mode it is also the node's group.instance.id).
  std::string node_name = "node-1";
  /// How the journal makes appends durable.
  journal_mode mode = journal_mode::idempotent;
  /// Where the node keeps its journal.
  storage_kind storage = storage_kind::kafka;
  int embedded_brokers = 3; ///< brokers of the embedded mock cluster
  std::size_t threads = 0;            ///< CAF scheduler threads; 0: the machine's cores
  /// Bound on one command, from the client's side. On Kafka storage it must be longer than
  /// the delivery timeout (checked at start), so that a command whose events may still land
  /// is answered with its persist's own outcome rather than a client-side timeout. A command
  /// that does time out (it waited behind others) may still have been applied.
  std::chrono::milliseconds command_timeout{15'000};
  /// Bound on one journal append: an event not acknowledged within it fails (outcome unknown).
  std::chrono::milliseconds delivery_timeout{10'000};
  /// Bound on metadata, admin, read and transaction calls.
  std::chrono::milliseconds request_timeout{10'000};
  /// The level of the node's logs: trace, debug, info, warn, error or off.
  std::string log_level = "info";
  /// Whether the node measures durations for its metrics (command, persist, recovery and
  /// hand-off histograms). Its counters always count; off only to measure what timing costs.
  bool metrics = true;
  /// The format of the node's log lines on stderr: "text" (spdlog's pattern) or "json" (one
  /// JSON object a line: time, level, logger, message). It applies to every cafes logger,
  /// librdkafka's ("cafes.kafka") included (docs/getting-started.md, Logging).
  std::string log_format = "text";
  /// Cluster mode: the node joins the consumer group of its namespace, which shares the
  /// partitions of every hosted type among the nodes of the namespace (docs/cluster.md).
  /// It needs a real broker and the transactional journal, which fences a node that lost a
  /// partition; host_options::assign_all is then ignored.
  bool cluster = false;
  /// Cluster mode: a node without a heartbeat for this long loses its partitions to the
  /// others. A restart under the same node name within it moves nothing.
  std::chrono::milliseconds session_timeout{10'000};
  /// Routing between nodes (docs/cluster.md): any node accepts any command and sends it to
  /// the node that owns its partition. On in cluster mode, or with this flag (for example on
  /// the embedded cluster). It needs Kafka storage: the nodes find each other through the
  /// directory topic `<ns>.directory`.
  bool routing = false;
  std::string advertise_host = "127.0.0.1"; ///< where the other nodes reach this node's gateway
  std::string gateway_bind{};               ///< where the gateway listens; empty: advertise_host
  std::uint16_t gateway_port = 0;           ///< the gateway's port; 0: a free one
  std::int16_t directory_replication = 1;   ///< replication factor of the directory topic
  /// Bound on a routed command's frame and on its reply (both ends check it).
  std::size_t max_frame_bytes = default_max_event_bytes;
  /// TLS between nodes (docs/cluster.md, "TLS between nodes"): a PEM file with this node's
  /// certificate, followed by any intermediate CA certificates. Set tls_cert, tls_key and
  /// tls_ca together (or none): then the gateway accepts, and the forwarder makes, only TLS
  /// connections on which both ends present a certificate that chains to tls_ca. Needs
  /// routing. The files are checked at start and read again for each new connection.
  std::string tls_cert{};
  std::string tls_key{}; ///< TLS between nodes: a PEM file with the private key of tls_cert
  /// TLS between nodes: a PEM file with the CA certificates that every node's certificate
  /// (this node's too) must chain to.
  std::string tls_ca{};
  /// TLS between nodes: a file whose first line is the passphrase of an encrypted tls_key;
  /// empty: the key is not encrypted.
  std::string tls_key_passphrase_file{};
  /// Tests: the embedded cluster to run on (shared by several nodes of one process) instead
  /// of starting one, when no bootstrap is set.
  std::shared_ptr<embedded_cluster> embedded{};
  /// librdkafka properties given to every Kafka client of the node (journal, snapshots,
  /// group, directory, projections, tables): security.protocol, ssl.* and sasl.* for TLS and
  /// SASL (docs/security.md). A key librdkafka does not know, or a bad value, fails the
  /// start with invalid_argument naming it; so do the keys cafes sets per client itself
  /// (bootstrap.servers, group.id, transactional.id, enable.idempotence, isolation.level, …).
  std::map<std::string, std::string> kafka_properties{};
  /// A file whose first line is the SASL password (sasl.password), read at start, so that
  /// the secret is on no command line. Empty: none.
  std::string sasl_password_file{};
  /// Whether the node checks at start that a broker answers (with the TLS and SASL settings),
  /// within request_timeout: a refused handshake or no answer fails the start with
  /// unauthorized, tls_failed or broker_unavailable instead of a later timeout.
  bool check_brokers = true;

  /// Adds the node's options (--bootstrap, --namespace, …, --config FILE) to a CLI11 app, so
  /// that an application can extend its own command line with them.
  void add_options(CLI::App& app);

  /// Adds only the Kafka client options (--kafka-property KEY=VALUE, --security-protocol,
  /// --ssl-ca, --ssl-certificate, --ssl-key, --sasl-mechanism, --sasl-username,
  /// --sasl-password-file, --no-broker-check) to a CLI11 app; add_options() includes them.
  void add_kafka_options(CLI::App& app);

  /// Parses the options from argv (and the INI/TOML file given with --config). Never exits
  /// the program: a bad option fails with invalid_argument and a message that names it;
  /// --help fails with help_requested, whose message is the help, headed by `program`.
  /// exit_code() turns either into what main returns.
  static expected<node_config> from_args(int argc, char** argv, std::string_view program = "cafes node");
};

/// What main returns after from_args failed: prints the help to stdout and returns 0 for
/// help_requested; prints the error to stderr and returns 2 otherwise.
int exit_code(const error& e);

/// Per-call options of node::ask and its async forms: `node.ask<A>(id, cmd, {.timeout =
/// std::chrono::seconds{2}, .command_id = "order-17"})`.
struct ask_options {
  /// The command's deadline, from the caller's side; 0: node_config::command_timeout.
  std::chrono::milliseconds timeout{0};
  /// The client's command id, written into every event the command emits (causation); may be
  /// empty.
  std::string command_id{};
};

/// Blocks until the process gets SIGINT or SIGTERM and returns the signal's number. Once it
/// returned, a second such signal ends the process at once. For main: wait, then
/// node.shutdown() to drain:
///
///     cafes::wait_for_shutdown_signal();
///     return node.shutdown() ? 0 : 1;
int wait_for_shutdown_signal();

/// What a node's routing did so far (docs/cluster.md); all zero when routing is off.
struct routing_stats {
  std::uint64_t forwarded = 0; ///< commands this node sent on towards their partition's owner
  std::uint64_t retries = 0;   ///< attempts repeated (no owner known, not_owner, no connection)
  std::uint64_t received = 0;  ///< frames this node's gateway took from other nodes
  std::uint64_t refused = 0;   ///< frames the gateway refused before any owner saw them
};

/// Builds the message of command `c` for aggregate (A, id), for request() from actors.
template <class A, class C>
command_msg make_command(std::string id, C c, std::string command_id = {}) {
  [[maybe_unused]] constexpr bool listed = detail::command_of_check<A, C>::value; // asserts with its message
  return command_msg{std::move(id), std::move(command_id), std::any{std::move(c)}};
}

/// Turns a command_reply into the typed reply of command C to A.
template <class A, class C>
expected<reply_t<A, C>> reply_of(command_reply r) {
  if (r.err)
    return std::move(*r.err);
  if (auto* v = std::any_cast<reply_t<A, C>>(&r.value))
    return std::move(*v);
  return cafes::error{errc::type_mismatch, "reply of an unexpected type"};
}

template <class A, class C>
class ask_awaiter;

/// A running node. Create it, host() the aggregate types, then ask() them. The destructor
/// stops the actors and the Kafka clients.
class node {
 public:
  /// Starts the actor system and (for Kafka storage) the Kafka clients or the embedded
  /// cluster. On a real broker it first checks the Kafka properties and that a broker
  /// answers (node_config::check_brokers). Throws bad_expected_access on failure;
  /// node::start returns the error instead.
  explicit node(node_config cfg);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Starts a node, or returns why it cannot start.
  static expected<std::unique_ptr<node>> start(node_config cfg);

  /// Hosts aggregate type A: provisions its topics, opens its journal and snapshot store,
  /// and starts its partitions (which recover, then serve).
  template <class A>
  expected<void> host(host_options opts = {}) {
    return host_impl(make_ops<A>(), std::move(opts));
  }

  /// Sends command `c` to aggregate (A, id) and waits for the reply (from plain C++ code;
  /// never from inside an actor or from a callback of ask_then/co_ask). Fails with the
  /// handler's rejection, a persistence error, or actor_errc::timeout after the deadline
  /// (options.timeout, or node_config::command_timeout).
  ///
  /// A command that timed out may still be applied: its events may be on their way to the
  /// journal. Its outcome is unknown (condition::unknown_outcome): read the state, or send it
  /// again with a reference the aggregate deduplicates, before repeating it.
  template <class A, class C>
  auto ask(std::string_view id, C c, ask_options options = {}) {
    if constexpr (detail::command_of_check<A, C>::value) // else: a "cafes:" message, not a failed overload
      return ask_async<A>(id, std::move(c), std::move(options)).get();
  }

  /// ask() with `command_id` as the only option. (A template, so that a braced list such as
  /// `{.command_id = "x"}` always means ask_options.)
  template <class A, class C, class S>
    requires std::convertible_to<S, std::string>
  auto ask(std::string_view id, C c, S&& command_id) {
    return ask<A>(id, std::move(c), ask_options{.command_id = std::string(std::forward<S>(command_id))});
  }

  /// Sends command `c` and returns a future of the reply.
  template <class A, class C>
  auto ask_async(std::string_view id, C c, ask_options options = {}) {
    if constexpr (detail::command_of_check<A, C>::value) {
      auto done = std::make_shared<std::promise<expected<reply_t<A, C>>>>();
      auto f = done->get_future();
      ask_then<A>(id, std::move(c), [done](expected<reply_t<A, C>> r) { done->set_value(std::move(r)); },
                  std::move(options));
      return f;
    }
  }

  /// ask_async() with `command_id` as the only option.
  template <class A, class C, class S>
    requires std::convertible_to<S, std::string>
  auto ask_async(std::string_view id, C c, S&& command_id) {
    return ask_async<A>(id, std::move(c), ask_options{.command_id = std::string(std::forward<S>(command_id))});
  }

  /// Sends command `c` and calls `on_reply(expected<reply>)` once, when the reply (or the
  /// error) arrives, without blocking the caller. `on_reply` runs on one of the node's threads:
  /// it must return quickly and never wait for another command.
  template <class A, class C, class F>
  void ask_then(std::string_view id, C c, F on_reply, ask_options options = {}) {
    if constexpr (detail::command_of_check<A, C>::value) {
      static_assert(std::invocable<F&, expected<reply_t<A, C>>>,
                    "cafes: ask_then's function must take the command's cafes::expected<reply> (or auto)");
      send_command(A::name, make_command<A>(std::string{id}, std::move(c), std::move(options.command_id)),
                   options.timeout,
                   [f = std::move(on_reply)](command_reply r) mutable { f(reply_of<A, C>(std::move(r))); });
    }
  }

  /// Sends command `c` from a C++20 coroutine: `auto r = co_await node.co_ask<A>(id, c);`
  /// gives the expected reply. The coroutine resumes on one of the node's threads (as
  /// ask_then's callback runs): hand long or blocking work on to an executor of your own.
  ///
  /// With GCC 12, pass the command (and the options, if any) as named variables, not as
  /// temporaries: GCC before 13 destroys a temporary of a co_await expression twice (a
  /// compiler bug). co_ask takes them by reference so that named ones are safe.
  template <class A, class C>
  auto co_ask(std::string_view id, const C& c) {
    return co_ask<A>(id, c, ask_options{});
  }

  /// co_ask() with per-call options.
  template <class A, class C>
  auto co_ask(std::string_view id, const C& c, const ask_options& options) {
    if constexpr (detail::command_of_check<A, C>::value)
      return ask_awaiter<A, C>{*this, std::string{id}, c, options};
  }

  /// Returns the actor that routes commands of aggregate type A to their partitions
  /// (expected<caf::actor>), for use inside actors: self->request(node.router<A>(), timeout,
  /// make_command<A>(id, cmd)). This header declares the CAF types only (caf/fwd.hpp): such
  /// code includes the CAF headers it uses. (`auto`: caf::actor is complete only there.)
  template <class A>
  auto router() const {
    return router_of(A::name);
  }

  /// Returns the ids of A's aggregates whose durable state satisfies `pred` (for example the
  /// pending transfers to resume after a restart). It visits every aggregate of the node.
  template <class A>
  expected<std::vector<std::string>> query(std::function<bool(const typename A::state&)> pred) {
    return query_impl(A::name, [pred = std::move(pred)](const std::any& s) {
      return pred(std::any_cast<const typename A::state&>(s));
    });
  }

  /// Returns aggregate (A, id) as it was after its event `seq`: its latest snapshot if that
  /// is at or before `seq` (the store keeps only the latest one per aggregate), else the empty
  /// state, then the journal's events up to `seq`, decoded and upcast. It reads the journal
  /// and the snapshot store, never the live aggregate, so it works on any node that hosts A,
  /// whether or not it owns the aggregate's partition; it blocks (never call it from an
  /// actor). It reads the aggregate's partition from the start (or from its snapshot) and
  /// skips the other aggregates' events: its cost grows with the partition, not with the
  /// aggregate. Fails with unknown_aggregate_type (A not hosted), invalid_aggregate_id,
  /// invalid_argument (seq 0), actor_errc::no_history (the id has no event: it was never
  /// created), actor_errc::out_of_history (seq beyond its last event), or a journal, decoding
  /// or sequence error.
  template <class A>
  expected<typename A::state> state_at(std::string_view id, std::uint64_t seq) {
    return typed_state<A>(state_at_impl(A::name, id, seq, std::nullopt));
  }

  /// Returns aggregate (A, id) as it was at `time`: after the last of its events journaled at
  /// or before `time` (ce_time, in milliseconds). It folds the events in order and stops at
  /// the first one later than `time`: exact as long as the writers' clocks did not go back
  /// between two events of the aggregate. As state_at, it uses the snapshot when its event is
  /// not later than `time`. Fails as state_at does, and with actor_errc::out_of_history when
  /// `time` is before the aggregate's first event.
  template <class A>
  expected<typename A::state> state_at_time(std::string_view id, std::chrono::system_clock::time_point time) {
    const auto ms = std::chrono::floor<std::chrono::milliseconds>(time.time_since_epoch()).count();
    return typed_state<A>(state_at_impl(A::name, id, 0, ms));
  }

  /// Returns the audit trail of aggregate (A, id): every event in order, decoded and upcast,
  /// with its metadata (history_entry). Reads the aggregate's whole partition (see state_at);
  /// the live aggregate is untouched. Fails with actor_errc::no_history when the id has no
  /// event (never an empty list), and otherwise as state_at does.
  template <class A>
  expected<std::vector<history_entry<A>>> history(std::string_view id) {
    auto raw = history_impl(A::name, id);
    if (!raw)
      return std::move(raw).error();
    std::vector<history_entry<A>> out;
    out.reserve(raw->size());
    for (auto& [meta, ev] : *raw) {
      history_entry<A> e;
      static_cast<event_metadata&>(e) = std::move(meta);
      if (!detail::any_to_variant(ev, e.event))
        return cafes::error{errc::type_mismatch, "event '" + e.type + "' is none of the events of '" +
                                                     std::string{A::name} + "'"};
      out.push_back(std::move(e));
    }
    return out;
  }

  /// Waits until every partition of every hosted type has recovered or stopped on an error
  /// (bounded by `timeout`); in cluster mode, also until the node has joined its group. A stopped partition answers its commands with recovery_failed
  /// and counts in host_stats::partitions_failed; the others serve.
  expected<void> wait_ready(std::chrono::milliseconds timeout);

  /// Takes partition `p` of aggregate type `type` over: opens its writer (in transactional
  /// mode that fences every older owner and finishes its open transaction), stores the
  /// partition's next ownership epoch, recovers, then serves. Returns once it is taken over;
  /// wait_ready() waits for the recovery.
  expected<void> assign(std::string_view type, std::int32_t p);

  /// Gives partition `p` of `type` up gracefully: its new commands get not_owner at once, its
  /// persists in flight are answered, the aggregates that hold its checkpoint back are
  /// snapshotted, the checkpoint is stored and the writer closed. Returns once released.
  expected<void> revoke(std::string_view type, std::int32_t p);

  /// Returns the partitions of `type` this node owns, with their epochs.
  expected<std::vector<owned_partition>> owned(std::string_view type);

  /// Starts (or with `on` false stops) a hot standby of partition `p` of `type`, which this
  /// node does not own: it reads the partition's snapshots and tails its journal, so that an
  /// assign() later replays only what it has not read. Ignored for an owned partition.
  /// host_options::standby_replicas places standbys by itself; this is the seam under it.
  expected<void> standby(std::string_view type, std::int32_t p, bool on = true);

  /// Returns the partitions of `type` this node keeps a hot standby of.
  expected<std::vector<std::int32_t>> standbys(std::string_view type);

  /// Calls `f` after each change of this node's ownership (assign or revoke, by hand or by
  /// the group), with the type, the partition and whether the node now owns it. It runs on
  /// the thread that changed ownership and must not block (the group waits for it). The bank
  /// resumes the unsettled transfers of a partition it took over this way.
  void on_ownership_change(std::function<void(std::string_view type, std::int32_t partition, bool owned)> f);

  /// Cluster mode: returns whether the node has joined its namespace's group (it received
  /// its first assignment and was not expelled since). Always true outside cluster mode.
  bool joined() const noexcept;

  /// Returns the port of the node's routing gateway, or 0 when routing is off.
  std::uint16_t gateway_port() const noexcept;

  /// Returns the counters of the node's routing.
  routing_stats routing_counters() const noexcept;

  /// Returns the counters of aggregate type `name`, or nullptr.
  std::shared_ptr<const host_stats> stats(std::string_view name) const;

  /// Returns whether the node's journal is durable: false on the embedded mock cluster and on
  /// memory storage, where nothing survives the process.
  bool durable() const noexcept;

  /// Returns false while a journal of the node cannot write (its producer failed fatally and
  /// is not replaced yet, or a partition's writer is lost and not taken over again yet): the
  /// node is then not ready.
  bool healthy() const noexcept;

  /// Returns whether the node is ready for traffic: every partition it owns has recovered
  /// (one that stopped on corruption has not), no journal is unable to write (healthy()),
  /// and, in cluster mode, it is in its group (joined()). A Kubernetes readiness probe.
  node_readiness readiness() const;

  /// Returns each partition of `type` this node owns, in detail: phase, epoch, stored
  /// checkpoint, end offset, resident and cached aggregates (the bank's /stats).
  expected<std::vector<partition_detail>> partitions(std::string_view type);

  /// Returns the node's metrics (docs/operations.md): a prometheus-cpp Collectable for an
  /// exposer of the application's, with text() for an HTTP handler of its own, and a registry
  /// for the application's own metrics. Collecting reads the node's counters; nothing is
  /// measured for it between collections. It may outlive the node (its node part is then empty).
  std::shared_ptr<node_metrics> metrics() const;

  /// Returns the settings of the node's Kafka clients (its brokers, or its embedded cluster),
  /// for the application's own clients on the same cluster, such as projections. Fails with
  /// invalid_argument on memory storage.
  expected<kafka_config> kafka() const;

  /// Returns the node's configuration.
  const node_config& config() const noexcept;
  /// Returns the node's CAF actor system, for actors of the application's own.
  caf::actor_system& system();

  /// Stops every actor and client; pending commands fail with shutting_down.
  void stop();

  /// Stops gracefully: new commands get shutting_down at once, the commands in flight (sent
  /// with ask and its async forms) are answered, for at most `drain`, then the node stops.
  /// Logs what it waits for. Fails with actor_errc::timeout if commands were still in flight
  /// at the bound (they then fail with shutting_down; their outcome is unknown). Commands that
  /// actors send to router() directly are not counted.
  expected<void> shutdown(std::chrono::milliseconds drain = std::chrono::seconds{10});

 private:
  struct impl;
  expected<void> host_impl(std::shared_ptr<const aggregate_ops> ops, host_options opts);
  void send_command(std::string_view type, command_msg m, std::chrono::milliseconds timeout,
                    std::function<void(command_reply)> done);
  expected<caf::actor> router_of(std::string_view type) const;
  /// The owner actor of `type`, for a valid partition `p` of it.
  expected<caf::actor> owner_of(std::string_view type, std::int32_t p) const;
  expected<void> change_ownership(std::string_view type, std::int32_t p, bool take);
  void place_standbys();
  expected<void> share(const std::string& topic, const std::string& type);
  void follow_group(const std::vector<topic_partition>& parts, bool take);
  expected<std::vector<std::string>> query_impl(std::string_view type, std::function<bool(const std::any&)> pred);
  /// The state of (type, id) after event `seq`, or (time_ms set) at that time.
  expected<std::any> state_at_impl(std::string_view type, std::string_view id, std::uint64_t seq,
                                   std::optional<std::int64_t> time_ms);
  /// Every event of (type, id), decoded, with its metadata.
  expected<std::vector<std::pair<event_metadata, std::any>>> history_impl(std::string_view type, std::string_view id);
  template <class A>
  static expected<typename A::state> typed_state(expected<std::any> s) {
    if (!s)
      return std::move(s).error();
    if (auto* v = std::any_cast<typename A::state>(&*s))
      return std::move(*v);
    return cafes::error{errc::type_mismatch, "the state is no state of '" + std::string{A::name} + "'"};
  }
  std::unique_ptr<impl> impl_;
};

/// What node::co_ask returns: an awaitable of the reply to command C of aggregate A.
template <class A, class C>
class ask_awaiter {
 public:
  /// What `co_await` gives: the reply, or the error.
  using result_type = expected<reply_t<A, C>>;
  /// Holds what the command needs until it is sent; node::co_ask builds it.
  ask_awaiter(node& n, std::string id, C c, ask_options options)
      : n_(&n), id_(std::move(id)), c_(std::move(c)), options_(std::move(options)) {}
  /// Always false: the command is sent when the coroutine suspends.
  bool await_ready() const noexcept { return false; }
  /// Sends the command (as ask_then does); the reply resumes the coroutine.
  void await_suspend(std::coroutine_handle<> h) {
    // The reply may resume the coroutine before this returns: nothing is touched after it.
    n_->ask_then<A>(id_, std::move(c_), [this, h](result_type r) {
      result_.emplace(std::move(r));
      h.resume();
    }, std::move(options_));
  }
  /// Returns the reply, or the error.
  result_type await_resume() { return std::move(*result_); }

 private:
  node* n_;
  std::string id_;
  C c_;
  ask_options options_;
  std::optional<result_type> result_;
};

} // namespace cafes
