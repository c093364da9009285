// The state topic: a projection that folds each aggregate's events into its latest state and
// writes it, exactly once, to `<ns>.<aggregate>.state`.
#include "cafes/actors/projection.hpp"

#include <map>
#include <mutex>

#include "cafes/persistence/kv_table.hpp"
#include "cafes/persistence/logger.hpp"
#include "cafes/persistence/topics.hpp"

namespace cafes {

projection_source source_of(std::string_view ns, std::shared_ptr<const aggregate_ops> ops) {
  projection_source s;
  s.topic = topic_names::of(ns, ops->name()).events;
  s.decode = [ops](const event_envelope& e) { return ops->decode_event(e); };
  return s;
}

namespace {

/// The states of the partitions a state projection holds: committed ones, and those the
/// open transaction changed.
struct fold {
  struct entry {
    std::any state;
    seq_nr seq{0};
  };
  std::shared_ptr<const aggregate_ops> ops;
  std::string topic;
  std::map<std::int32_t, std::map<std::string, entry>> committed; // by partition, then id
  std::map<std::pair<std::int32_t, std::string>, entry> pending;

  expected<void> restore(const kafka_config& cfg, const topic_partition& events) {
    auto& part = committed[events.partition.value()];
    part.clear();
    std::optional<error> bad;
    auto ok = read_partition(cfg, topic, events.partition, [&](record&& r) {
      if (!r.value) {
        part.erase(r.key);
        return;
      }
      auto s = decode_snapshot(r);
      auto st = s ? ops->decode_state(s->state_type, s->state_version, s->state) : expected<std::any>{s.error()};
      if (!st) {
        if (!bad)
          bad = std::move(st).error();
        return;
      }
      part[r.key] = entry{std::move(*st), s->seq};
    });
    if (!ok)
      return ok;
    if (bad)
      return error{bad->code, "cannot restore the state topic " + topic + ": " + bad->message};
    persistence_log().info("state topic {}: partition {} restored, {} aggregate(s)", topic,
                           events.partition.value(), part.size());
    return {};
  }

  expected<void> transform(const projected_event& e, projection_output& out) {
    const auto p = e.partition.value();
    const std::string& id = e.envelope.id.str();
    entry next;
    if (auto i = pending.find({p, id}); i != pending.end())
      next = i->second;
    else if (auto c = committed[p].find(id); c != committed[p].end())
      next = c->second;
    else
      next.state = ops->initial_state();
    if (e.envelope.seq.value() <= next.seq.value())
      return {}; // already in the state (a journal re-read after a reset of a compacted output)
    ops->apply(next.state, e.value);
    next.seq = e.envelope.seq;
    auto enc = ops->encode_state(next.state);
    if (!enc)
      return std::move(enc).error();
    snapshot s{e.envelope.id, e.envelope.seq, e.off, enc->type, enc->version, std::move(enc->bytes)};
    auto r = encode_snapshot(s, topic);
    if (!r)
      return std::move(r).error();
    r->partition = e.partition;
    out.send(std::move(*r));
    pending[{p, id}] = std::move(next);
    return {};
  }

  void commit() {
    for (auto& [k, v] : pending)
      committed[k.first][k.second] = std::move(v);
    pending.clear();
  }
};

} // namespace

expected<std::unique_ptr<projection>> start_state_topic(const kafka_config& cfg, std::string_view ns,
                                                        std::shared_ptr<const aggregate_ops> ops,
                                                        projection_options opts) {
  auto names = topic_names::of(ns, ops->name());
  if (opts.name.empty())
    opts.name = names.state + "-projection";
  if (opts.sources.empty())
    opts.sources.push_back(source_of(ns, ops));
  opts.outputs.push_back(names.state);
  auto f = std::make_shared<fold>();
  f->ops = std::move(ops);
  f->topic = names.state;
  // Every hook and the transform run on the projection's thread, one at a time.
  exactly_once_hooks hooks;
  hooks.assigned = [f, cfg](const std::vector<topic_partition>& parts) -> expected<void> {
    for (auto& tp : parts)
      if (auto ok = f->restore(cfg, tp); !ok)
        return ok;
    return {};
  };
  hooks.revoked = [f](const std::vector<topic_partition>& parts) {
    for (auto& tp : parts)
      f->committed.erase(tp.partition.value());
    f->pending.clear();
  };
  hooks.committed = [f] { f->commit(); };
  hooks.aborted = [f] { f->pending.clear(); };
  hooks.reset = [f](const std::vector<topic_partition>& parts) {
    for (auto& tp : parts)
      f->committed[tp.partition.value()].clear();
    f->pending.clear();
  };
  return projection::exactly_once(
    cfg, std::move(opts), [f](const projected_event& e, projection_output& out) { return f->transform(e, out); },
    std::move(hooks));
}

} // namespace cafes
