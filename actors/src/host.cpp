// Spawning the actors that host one aggregate type, and routing ids to partitions.
#include "cafes/actors/host.hpp"

#include "cafes/persistence/partitioner.hpp"
#include "internal.hpp"

namespace cafes {

hosted spawn_host(caf::actor_system& sys, host_config cfg) {
  if (!cfg.stats)
    cfg.stats = std::make_shared<host_stats>();
  hosted h;
  h.stats = cfg.stats;
  h.ops = cfg.ops;
  h.journal_actor = spawn_journal_actor(sys, cfg.journal, cfg.batching, cfg.stats);
  auto ctx = std::make_shared<detail::host_context>();
  ctx->source = "/cafes/" + cfg.journal->topic();
  ctx->journal_actor = h.journal_actor;
  ctx->cfg = std::move(cfg);
  for (std::int32_t p = 0; p < ctx->cfg.journal->partitions(); ++p)
    h.partitions.push_back(detail::spawn_partition(sys, ctx, partition_id{p}));
  caf::anon_send(h.journal_actor, partitions_msg{h.partitions});
  return h;
}

const caf::actor& route(const hosted& h, std::string_view id) {
  return h.partitions[static_cast<std::size_t>(partition_for(id, static_cast<std::int32_t>(h.partitions.size())).value())];
}

} // namespace cafes
