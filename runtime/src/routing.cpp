// Routing between nodes: the gateway, the forwarder and the directory (docs/cluster.md).
#include "routing.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cafes/actors/errc.hpp"
#include "cafes/actors/messages.hpp"
#include "cafes/persistence/logger.hpp"
#include "cafes/persistence/table_topic.hpp"
#include "cafes/persistence/topics.hpp"
#include "cafes/runtime/route_frame.hpp"

namespace cafes::detail {

namespace {

spdlog::logger& routing_log() {
  static const auto log = named_logger("cafes.routing");
  return *log;
}

using clock = std::chrono::steady_clock;

/// Where a node's gateway listens, as its directory entry says.
struct endpoint {
  std::string node;
  std::string host;
  std::uint16_t port = 0;
};

/// The directory as this node has read it: which node owns each (type, partition). The tail
/// thread writes it, the forwarder reads it.
class directory_view {
 public:
  /// Applies one record of the directory topic (nullopt: the node left).
  void apply(const std::string& node, const std::optional<std::string>& value) {
    std::lock_guard guard{mtx_};
    for (auto i = claims_.begin(); i != claims_.end();)
      i = i->second.node == node ? claims_.erase(i) : std::next(i);
    nodes_.erase(node);
    if (!value)
      return;
    endpoint e;
    std::vector<std::tuple<std::string, std::int32_t, std::uint64_t>> owned;
    try {
      auto j = nlohmann::json::parse(*value);
      e.node = j.at("node").get<std::string>();
      e.host = j.at("host").get<std::string>();
      e.port = j.at("port").get<std::uint16_t>();
      for (auto& [type, parts] : j.at("types").items())
        for (auto& p : parts)
          owned.emplace_back(type, p.at("partition").get<std::int32_t>(), p.at("epoch").get<std::uint64_t>());
    } catch (const std::exception& ex) {
      routing_log().warn("directory entry of '{}' is not readable and is ignored: {}", node, ex.what());
      return;
    }
    if (e.node != node) {
      routing_log().warn("directory entry under key '{}' names node '{}' and is ignored", node, e.node);
      return;
    }
    nodes_[node] = e;
    for (auto& [type, p, epoch] : owned) {
      // The latest claim wins, unless it carries an older epoch than the current one (both
      // known): an entry written while a partition recovers has epoch 0.
      auto& c = claims_[{type, p}];
      if (c.node.empty() || epoch == 0 || c.epoch == 0 || epoch >= c.epoch)
        c = claim{node, epoch};
    }
  }

  /// Returns the nodes that own at least one partition (a node that died keeps its entry
  /// until it is removed, but loses its claims to the nodes that took its partitions over).
  std::set<std::string> owning_nodes() const {
    std::lock_guard guard{mtx_};
    std::set<std::string> out;
    for (auto& [key, c] : claims_)
      out.insert(c.node);
    return out;
  }

  /// Returns the node that owns partition p of `type`, if any.
  std::optional<std::string> owner_name(const std::string& type, std::int32_t p) const {
    std::lock_guard guard{mtx_};
    auto i = claims_.find({type, p});
    if (i == claims_.end())
      return std::nullopt;
    return i->second.node;
  }

  /// Returns the gateway of the node that owns partition p of `type`, if any.
  std::optional<endpoint> owner(const std::string& type, std::int32_t p) const {
    std::lock_guard guard{mtx_};
    auto i = claims_.find({type, p});
    if (i == claims_.end())
      return std::nullopt;
    auto n = nodes_.find(i->second.node);
    if (n == nodes_.end())
      return std::nullopt;
    return n->second;
  }

 private:
  struct claim {
    std::string node;
    std::uint64_t epoch = 0;
  };
  mutable std::mutex mtx_;
  std::map<std::string, endpoint> nodes_;
  std::map<std::pair<std::string, std::int32_t>, claim> claims_;
};

/// One hosted type, as the gateway and the forwarder know it.
struct type_msg {
  std::string name;
  std::shared_ptr<const aggregate_ops> ops;
  caf::actor owner;
};

struct attempt;

/// The forwarder tries a command again after its backoff.
struct retry_msg {
  std::shared_ptr<attempt> a;
};

/// The gateway tells the forwarder of the gateway of a node that connected to it.
struct peer_msg {
  std::string node;
  caf::actor gateway;
};

/// The gateway learns of the forwarder (spawned after it).
struct forwarder_msg {
  caf::actor forwarder;
};

/// After a forwarder connected to another node's gateway, it sends (hello, its node's name,
/// its node's gateway): the other node then reaches this one over the same connection, rather
/// than opening a second connection between the two nodes. CAF's middleman closes such a
/// redundant connection after its handshake, and over CAF's OpenSSL module, replies sent
/// after that were lost. Built-in types only, so a gateway that does not know it drops it.
using hello_atom = caf::atom_constant<caf::atom("cafeshello")>;

} // namespace
} // namespace cafes::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::detail::type_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::detail::retry_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::detail::peer_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cafes::detail::forwarder_msg)

namespace cafes::detail {

namespace {

/// An error of a category this build does not know (another node's rejection of a category
/// no local reject() registered): it keeps the name and the code. Never freed.
class remote_category final : public std::error_category {
 public:
  explicit remote_category(std::string name) : name_(std::move(name)) {}
  const char* name() const noexcept override { return name_.c_str(); }
  std::string message(int v) const override { return "code " + std::to_string(v); }

 private:
  std::string name_;
};

const std::error_category& category_named(const std::string& name) {
  if (auto* c = find_error_category(name))
    return *c;
  static std::mutex mtx;
  static std::map<std::string, std::unique_ptr<remote_category>> unknown;
  std::lock_guard guard{mtx};
  auto& c = unknown[name];
  if (!c)
    c = std::make_unique<remote_category>(name);
  return *c;
}

route_reply to_reply(const cafes::error& e) {
  route_reply r;
  r.category = e.code.category().name();
  r.code = e.code.value();
  r.message = e.message;
  return r;
}

cafes::error from_reply(const route_reply& r) {
  return cafes::error{std::error_code{r.code, category_named(r.category)}, r.message};
}

cafes::error too_large(std::string_view what, std::size_t bytes, std::size_t limit) {
  return cafes::error{actor_errc::frame_too_large, std::string{what} + " of " + std::to_string(bytes) +
                                                     " bytes exceeds the routing frame limit of " +
                                                     std::to_string(limit) + " bytes"};
}

// ---- gateway ---------------------------------------------------------------------------

using counters_ptr = std::shared_ptr<routing_counters>;

struct gateway_state {
  static inline const char* name = "cafes.gateway";
  routing_settings s;
  counters_ptr counters;
  std::map<std::string, type_msg, std::less<>> types;
  caf::actor forwarder;
};

// A frame refused before any owner saw it.
route_reply refuse(gateway_state& st, const cafes::error& e) {
  ++st.counters->refused;
  return to_reply(e);
}

caf::behavior gateway_actor(caf::stateful_actor<gateway_state>* self, routing_settings s, counters_ptr counters) {
  self->state.s = std::move(s);
  self->state.counters = std::move(counters);
  // Anything but a frame (another program probing the port) gets unexpected_message.
  self->set_default_handler(caf::drop);
  return {
    [=](type_msg& t) { self->state.types[t.name] = std::move(t); },
    [=](forwarder_msg& m) { self->state.forwarder = std::move(m.forwarder); },
    [=](hello_atom, std::string& node, caf::actor& gw) {
      if (gw && self->state.forwarder && node != self->state.s.node_name)
        self->send(self->state.forwarder, peer_msg{std::move(node), std::move(gw)});
    },
    [=](route_frame& f) -> caf::result<route_reply> {
      auto& st = self->state;
      ++st.counters->received;
      if (f.version != route_frame_version)
        return refuse(st, cafes::error{errc::unsupported_version, "route frame version " + std::to_string(f.version) +
                                                                    " is not supported (this node reads " +
                                                                    std::to_string(route_frame_version) + ")"});
      if (auto n = frame_bytes(f); n > st.s.max_frame_bytes)
        return refuse(st, too_large("a frame", n, st.s.max_frame_bytes));
      auto t = st.types.find(f.type);
      if (t == st.types.end())
        return refuse(st, cafes::error{actor_errc::unknown_aggregate_type,
                                     "node '" + st.s.node_name + "' hosts no aggregate type '" + f.type + "'"});
      auto c = t->second.ops->decode_command(f.command, f.bytes);
      if (!c)
        return refuse(st, c.error());
      auto timeout = std::clamp(std::chrono::milliseconds{f.deadline_ms}, std::chrono::milliseconds{1},
                                st.s.command_timeout);
      auto rp = self->make_response_promise<route_reply>();
      auto ops = t->second.ops;
      auto command = f.command;
      const auto limit = st.s.max_frame_bytes;
      // Marked as routed: if this node does not own the partition, the owner answers
      // not_owner and the sender looks the owner up again (no forwarding loops).
      self->request(t->second.owner, timeout, command_msg{f.id, f.command_id, std::move(*c), true})
        .then(
          [=](command_reply& r) mutable {
            route_reply out;
            if (r.err) {
              out = to_reply(*r.err);
            } else if (auto b = ops->encode_reply(command, r.value); !b) {
              out = to_reply(b.error());
            } else if (b->size() > limit) {
              out = to_reply(too_large("the reply (the command was applied)", b->size(), limit));
            } else {
              out.bytes = std::move(*b);
            }
            rp.deliver(std::move(out));
          },
          [=](caf::error& e) mutable {
            rp.deliver(to_reply(e == caf::sec::request_timeout
                                  ? cafes::error{actor_errc::timeout, "no reply within " +
                                                                          std::to_string(timeout.count()) + " ms"}
                                  : cafes::error{actor_errc::shutting_down, self->system().render(e)}));
          });
      return rp;
    },
  };
}

// ---- forwarder -------------------------------------------------------------------------

/// One command on its way to the owner of its partition.
struct attempt {
  forward_msg m;
  encoded_value enc;
  type_msg t;
  caf::response_promise rp;
  clock::time_point deadline;       ///< the command's own deadline (the frame carries it)
  clock::time_point retry_deadline; ///< no retry starts after it: the caller gets our answer first
  std::chrono::milliseconds backoff{10};
  cafes::error last;
};

using attempt_ptr = std::shared_ptr<attempt>;

struct forwarder_state {
  static inline const char* name = "cafes.forwarder";
  routing_settings s;
  counters_ptr counters;
  std::shared_ptr<const directory_view> dir;
  std::map<std::string, type_msg, std::less<>> types;
  std::map<std::string, caf::actor> gateways; // "host:port" -> the gateway found there
  std::map<std::string, caf::actor> peers;    // node name -> its gateway, from its hello
  caf::actor own_gateway;                     // sent in the hello after each connect
};

using forwarder_ptr = caf::stateful_actor<forwarder_state>*;

std::chrono::milliseconds left(const attempt& a) {
  return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(a.deadline - clock::now()),
                  std::chrono::milliseconds{1});
}

void answer(const attempt_ptr& a, command_reply r) { a->rp.deliver(std::move(r)); }

void try_once(forwarder_ptr self, const attempt_ptr& a);

// Only for a command that was certainly not decided: nobody owned it, the owner refused it
// (not_owner), or its node could not be reached before it was sent.
void retry_later(forwarder_ptr self, const attempt_ptr& a, cafes::error why) {
  a->last = std::move(why);
  if (clock::now() + a->backoff >= a->retry_deadline)
    return answer(a, command_reply{a->last, {}});
  ++self->state.counters->retries;
  self->delayed_send(self, a->backoff, retry_msg{a});
  a->backoff = std::min(a->backoff * 2, std::chrono::milliseconds{500});
}

cafes::error lost(const std::string& key, const std::string& why) {
  return cafes::error{actor_errc::unreachable, "lost the gateway at " + key + " while the command was in flight (" +
                                                 why + "): it may have been applied"};
}

void send_frame(forwarder_ptr self, const attempt_ptr& a, const endpoint& e, const std::string& key,
                const caf::actor& gw) {
  route_frame f;
  f.type = a->m.type;
  f.id = a->m.cmd.id;
  f.command_id = a->m.cmd.command_id;
  f.command = a->enc.type;
  f.bytes = a->enc.bytes;
  f.deadline_ms = left(*a).count();
  f.from = self->state.s.node_name;
  // The gateway answers timeout at the frame's deadline; this bound only covers a reply lost
  // on the way back.
  self->request(gw, left(*a) + self->state.s.request_timeout, std::move(f))
    .then(
      [=](route_reply& r) {
        if (r.category.empty()) {
          auto v = a->t.ops->decode_reply(a->enc.type, r.bytes);
          if (!v)
            return answer(a, command_reply{v.error(), {}});
          return answer(a, command_reply{std::nullopt, std::move(*v)});
        }
        auto err = from_reply(r);
        if (err == actor_errc::not_owner)
          return retry_later(self, a, std::move(err));
        answer(a, command_reply{std::move(err), {}});
      },
      [=](caf::error& err) {
        if (err == caf::sec::request_timeout)
          return answer(a, command_reply{cafes::error{actor_errc::timeout, "no reply from node '" + e.node +
                                                                              "' within the command's deadline"},
                                         {}});
        self->state.gateways.erase(key);
        if (err == caf::sec::no_route_to_receiving_node) // never left this node
          return retry_later(self, a, cafes::error{actor_errc::unreachable, "no route to node '" + e.node + "' at " + key});
        answer(a, command_reply{lost(key, self->system().render(err)), {}});
      });
}

void try_once(forwarder_ptr self, const attempt_ptr& a) {
  auto& st = self->state;
  auto e = st.dir->owner(a->m.type, a->m.partition);
  if (!e)
    return retry_later(self, a,
                       cafes::error{actor_errc::not_owner, "no node owns partition " + std::to_string(a->m.partition) +
                                                             " of '" + a->m.type + "' in the directory"});
  if (e->node == st.s.node_name) {
    // The directory says this node: it has just taken the partition over (or the entry is
    // stale). The local owner takes the command as it is, without encoding.
    auto cmd = a->m.cmd;
    cmd.routed = true;
    self->request(a->t.owner, left(*a), std::move(cmd))
      .then(
        [=](command_reply& r) {
          if (r.err && *r.err == actor_errc::not_owner)
            return retry_later(self, a, std::move(*r.err));
          answer(a, std::move(r));
        },
        [=](caf::error& err) {
          answer(a, command_reply{err == caf::sec::request_timeout
                                    ? cafes::error{actor_errc::timeout, "no reply within the command's deadline"}
                                    : cafes::error{actor_errc::shutting_down, self->system().render(err)},
                                  {}});
        });
    return;
  }
  auto key = e->host + ":" + std::to_string(e->port);
  if (auto i = st.gateways.find(key); i != st.gateways.end())
    return send_frame(self, a, *e, key, i->second);
  if (auto i = st.peers.find(e->node); i != st.peers.end())
    return send_frame(self, a, *e, key, i->second); // over the connection that node made
  auto bound = std::min(left(*a), st.s.request_timeout);
  // Over TLS, CAF's OpenSSL module connects: both ends present their certificates, and each
  // refuses the other's unless it chains to its CA.
  auto mm = st.s.tls ? self->system().openssl_manager().actor_handle() : self->system().middleman().actor_handle();
  self->request(mm, bound, caf::connect_atom::value, e->host, e->port)
    .then(
      [=](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>&) {
        if (!ptr)
          return retry_later(self, a,
                             cafes::error{actor_errc::unreachable, "no gateway of node '" + e->node + "' at " + key});
        auto gw = caf::actor_cast<caf::actor>(ptr);
        self->monitor(gw); // a lost connection forgets it (down_msg)
        self->state.gateways[key] = gw;
        self->send(gw, hello_atom::value, self->state.s.node_name, self->state.own_gateway);
        send_frame(self, a, *e, key, gw);
      },
      [=](caf::error& err) {
        auto why = "cannot reach the gateway of node '" + e->node + "' at " + key + ": " + self->system().render(err);
        if (self->state.s.tls)
          why += " (over TLS: a node whose certificate does not chain to the other's CA, or that does not "
                 "use TLS, is refused)";
        retry_later(self, a, cafes::error{actor_errc::unreachable, std::move(why)});
      });
}

caf::behavior forwarder_actor(forwarder_ptr self, routing_settings s, std::shared_ptr<const directory_view> dir,
                              counters_ptr counters, caf::actor own_gateway) {
  self->state.own_gateway = std::move(own_gateway);
  self->state.s = std::move(s);
  self->state.counters = std::move(counters);
  self->state.dir = std::move(dir);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& gws = self->state.gateways;
    for (auto i = gws.begin(); i != gws.end();)
      i = i->second.address() == dm.source ? gws.erase(i) : std::next(i);
    auto& peers = self->state.peers;
    for (auto i = peers.begin(); i != peers.end();)
      i = i->second.address() == dm.source ? peers.erase(i) : std::next(i);
  });
  return {
    [=](type_msg& t) { self->state.types[t.name] = std::move(t); },
    [=](forward_msg& m) {
      auto& st = self->state;
      ++st.counters->forwarded;
      auto rp = self->make_response_promise();
      auto t = st.types.find(m.type);
      if (t == st.types.end()) {
        rp.deliver(command_reply{cafes::error{actor_errc::unknown_aggregate_type,
                                              "no aggregate type '" + m.type + "' is hosted"},
                                 {}});
        return;
      }
      auto enc = t->second.ops->encode_command(m.cmd.command);
      if (!enc) {
        rp.deliver(command_reply{enc.error(), {}});
        return;
      }
      const auto n = m.type.size() + m.cmd.id.size() + m.cmd.command_id.size() + enc->type.size() +
                     enc->bytes.size() + st.s.node_name.size();
      if (n > st.s.max_frame_bytes) {
        rp.deliver(command_reply{too_large("the frame of command '" + enc->type + "'", n, st.s.max_frame_bytes), {}});
        return;
      }
      auto a = std::make_shared<attempt>();
      a->m = std::move(m);
      a->enc = std::move(*enc);
      a->t = t->second;
      a->rp = std::move(rp);
      const auto now = clock::now();
      a->deadline = now + st.s.command_timeout;
      a->retry_deadline = now + st.s.command_timeout * 9 / 10;
      try_once(self, a);
    },
    [=](retry_msg& r) { try_once(self, r.a); },
    [=](peer_msg& m) {
      self->monitor(m.gateway);
      self->state.peers[m.node] = std::move(m.gateway);
    },
  };
}

} // namespace

// ---- the component -----------------------------------------------------------------------

struct routing::impl {
  caf::actor_system* sys = nullptr;
  routing_settings s;
  std::shared_ptr<directory_view> dir = std::make_shared<directory_view>();
  // Called after each directory record (on the tail's thread).
  std::shared_ptr<std::mutex> listener_mtx = std::make_shared<std::mutex>();
  std::shared_ptr<std::function<void()>> listener = std::make_shared<std::function<void()>>();
  std::shared_ptr<routing_counters> counters = std::make_shared<routing_counters>();
  std::unique_ptr<table_topic> table;
  caf::actor gateway;
  caf::actor forwarder;
  std::uint16_t port = 0;
  std::mutex types_mtx;
  std::vector<type_msg> types;
  std::mutex publish_mtx; // one entry at a time, each read after the one before was written
  // Republishes while some owned partition has no epoch yet (still recovering).
  std::mutex refresh_mtx;
  std::condition_variable refresh_cv;
  bool refresh = false;
  bool stopping = false;
  std::thread refresher;
};

routing::routing(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

routing::~routing() { stop(); }

void routing::configure(caf::actor_system_config& cfg, const std::optional<tls_settings>& tls) {
  cfg.load<caf::io::middleman>();
  if (tls) {
    // With all of these set, CAF's OpenSSL module authenticates both ends of every connection
    // (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT on both sides). It reads the files
    // again for each new connection.
    cfg.openssl_certificate = tls->cert;
    cfg.openssl_key = tls->key;
    cfg.openssl_passphrase = tls->passphrase;
    cfg.openssl_cafile = tls->ca;
    cfg.load<caf::openssl::manager>();
  }
  cfg.add_message_type<route_frame>("cafes.route_frame");
  cfg.add_message_type<route_reply>("cafes.route_reply");
}

expected<std::unique_ptr<routing>> routing::start(caf::actor_system& sys, const kafka_config& kafka,
                                                  routing_settings s) {
  auto d = std::make_unique<impl>();
  d->sys = &sys;
  d->s = std::move(s);
  const auto topic = d->s.ns + ".directory";
  if (auto ok = ensure_topics(kafka, {topic_spec{topic, 1, d->s.directory_replication, "compact", {}}}); !ok)
    return ok.error();
  auto dir = d->dir;
  auto kc = kafka;
  kc.client_id += "-directory";
  auto table = table_topic::open(kc, topic, [dir, lm = d->listener_mtx, l = d->listener](
                                                const std::string& key, const std::optional<std::string>& value) {
    dir->apply(key, value);
    std::lock_guard guard{*lm};
    if (*l)
      (*l)();
  });
  if (!table)
    return std::move(table).error();
  d->table = std::move(*table);
  d->gateway = sys.spawn(gateway_actor, d->s, d->counters);
  d->forwarder =
    sys.spawn(forwarder_actor, d->s, std::shared_ptr<const directory_view>{d->dir}, d->counters, d->gateway);
  caf::anon_send(d->gateway, forwarder_msg{d->forwarder});
  const auto& bind = d->s.bind_host.empty() ? d->s.advertise_host : d->s.bind_host;
  auto port = d->s.tls ? caf::openssl::publish(d->gateway, d->s.port, bind.c_str(), false)
                       : sys.middleman().publish(d->gateway, d->s.port, bind.c_str(), false);
  if (!port) {
    caf::anon_send_exit(d->gateway, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(d->forwarder, caf::exit_reason::user_shutdown);
    return cafes::error{errc::invalid_argument, "cannot publish the gateway on " + bind + ":" +
                                                    std::to_string(d->s.port) + ": " + sys.render(port.error())};
  }
  d->port = *port;
  routing_log().info("node '{}': gateway on {}:{}{} (advertised as {}), directory {}", d->s.node_name, bind, d->port,
                     d->s.tls ? " over TLS" : "", d->s.advertise_host, topic);
  std::unique_ptr<routing> r{new routing(std::move(d))};
  auto* raw = r.get();
  r->impl_->refresher = std::thread{[raw] {
    auto& i = *raw->impl_;
    std::unique_lock lock{i.refresh_mtx};
    while (!i.stopping) {
      if (i.refresh) {
        i.refresh_cv.wait_for(lock, std::chrono::milliseconds{200}, [&] { return i.stopping; });
        if (i.stopping)
          break;
        lock.unlock();
        raw->publish();
        lock.lock();
      } else {
        i.refresh_cv.wait(lock, [&] { return i.stopping || i.refresh; });
      }
    }
  }};
  return r;
}

caf::actor routing::forwarder() const { return impl_->forwarder; }

const routing_counters& routing::counters() const noexcept { return *impl_->counters; }

void routing::on_directory_change(std::function<void()> f) {
  std::lock_guard guard{*impl_->listener_mtx};
  *impl_->listener = std::move(f);
}

std::optional<std::string> routing::owner_name(const std::string& type, std::int32_t p) const {
  return impl_->dir->owner_name(type, p);
}

std::set<std::string> routing::owning_nodes() const { return impl_->dir->owning_nodes(); }

std::uint16_t routing::port() const noexcept { return impl_->port; }

void routing::add_type(const hosted& h) {
  type_msg t{std::string{h.ops->name()}, h.ops, h.owner};
  caf::anon_send(impl_->gateway, t);
  caf::anon_send(impl_->forwarder, t);
  {
    std::lock_guard guard{impl_->types_mtx};
    impl_->types.push_back(std::move(t));
  }
  publish();
}

void routing::publish() {
  auto& d = *impl_;
  std::lock_guard guard{d.publish_mtx};
  if (!d.table || !d.gateway)
    return;
  std::vector<type_msg> types;
  {
    std::lock_guard g{d.types_mtx};
    types = d.types;
  }
  nlohmann::json entry{{"version", 1}, {"node", d.s.node_name}, {"host", d.s.advertise_host}, {"port", d.port}};
  auto& by_type = entry["types"] = nlohmann::json::object();
  bool recovering = false;
  caller_thread_guard unpin;
  caf::scoped_actor self{*d.sys};
  for (auto& t : types) {
    auto& parts = by_type[t.name] = nlohmann::json::array();
    std::optional<std::vector<owned_partition>> owned;
    self->request(t.owner, d.s.request_timeout, owned_atom::value)
      .receive([&](std::vector<owned_partition>& ps) { owned = std::move(ps); }, [&](caf::error&) {});
    if (!owned) {
      routing_log().warn("node '{}': the owner of '{}' did not answer; directory entry not written", d.s.node_name,
                         t.name);
      return;
    }
    std::sort(owned->begin(), owned->end(), [](auto& x, auto& y) { return x.partition < y.partition; });
    for (auto& p : *owned) {
      parts.push_back({{"partition", p.partition}, {"epoch", p.epoch}});
      recovering = recovering || (p.epoch == 0 && !p.ready);
    }
  }
  if (auto ok = d.table->put(d.s.node_name, entry.dump()); !ok)
    routing_log().warn("node '{}': cannot write the directory entry: {}", d.s.node_name, ok.error().to_string());
  std::lock_guard g{d.refresh_mtx};
  d.refresh = recovering;
  d.refresh_cv.notify_all();
}

void routing::stop() {
  auto& d = *impl_;
  on_directory_change(nullptr);
  {
    std::lock_guard g{d.refresh_mtx};
    d.stopping = true;
    d.refresh_cv.notify_all();
  }
  if (d.refresher.joinable())
    d.refresher.join();
  std::lock_guard guard{d.publish_mtx};
  if (!d.gateway)
    return;
  if (d.table)
    if (auto ok = d.table->put(d.s.node_name, std::nullopt); !ok)
      routing_log().warn("node '{}': cannot remove the directory entry: {}", d.s.node_name, ok.error().to_string());
  caf::anon_send_exit(d.gateway, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(d.forwarder, caf::exit_reason::user_shutdown);
  d.gateway = nullptr;
  d.forwarder = nullptr;
  {
    std::lock_guard g{d.types_mtx};
    d.types.clear();
  }
  d.table.reset();
}

} // namespace cafes::detail
