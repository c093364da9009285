// The I/O actor of a partition: blocking journal and snapshot-store calls, off CAF's workers.
#include "internal.hpp"
#include "logger.hpp"

namespace cafes::detail {

namespace {

caf::behavior io_actor(caf::event_based_actor*, context_ptr ctx, partition_id p) {
  return {
    [=](scan_atom) {
      scan_result out;
      auto ok = ctx->cfg.snapshots->scan(
        p, [&](snapshot s) { out.snapshots.push_back(std::move(s)); },
        [&](const record& r, const cafes::error& e) {
          ++out.corrupt;
          actors_log().error("corrupt snapshot at {}: {}; its aggregate recovers from the journal", where(r),
                             e.to_string());
        });
      if (!ok) {
        out.err = ok.error();
        return out;
      }
      auto cp = ctx->cfg.snapshots->load_checkpoint(p);
      if (!cp)
        out.err = cp.error();
      else
        out.checkpoint = *cp;
      return out;
    },
    [=](read_atom, offset from, std::size_t max) {
      read_result out;
      auto c = ctx->cfg.journal->read(p, from, max);
      if (c)
        out.chunk = std::move(*c);
      else
        out.err = c.error();
      return out;
    },
    [=](catchup_atom, const std::string& id, offset from) {
      catch_up_result out;
      for (;;) {
        auto c = ctx->cfg.journal->read(p, from, ctx->cfg.replay_chunk);
        if (!c) {
          out.err = c.error();
          return out;
        }
        for (std::size_t i = 0; i < c->events.size(); ++i)
          if (c->events[i].id.str() == id) {
            out.events.push_back(std::move(c->events[i]));
            out.offsets.push_back(c->offsets[i]);
          }
        if (c->end)
          return out;
        from = c->next;
      }
    },
    [=](checkpt_atom, offset o) {
      checkpoint_result out{std::nullopt, o};
      if (auto ok = ctx->cfg.snapshots->save_checkpoint(p, o); !ok)
        out.err = ok.error();
      return out;
    },
  };
}

} // namespace

caf::actor spawn_io(caf::local_actor* parent, context_ptr ctx, partition_id p) {
  return parent->spawn<caf::detached + caf::linked>(io_actor, std::move(ctx), p);
}

void save_snapshot(const host_context& ctx, const caf::actor& partition, const std::string& id,
                   const std::any& state, seq_nr seq, offset last) {
  auto enc = ctx.cfg.ops->encode_state(state);
  if (!enc) {
    caf::anon_send(partition, snapshot_done_msg{id, seq, last, enc.error()});
    return;
  }
  snapshot s{aggregate_id::unchecked(id), seq, last, enc->type, enc->version, std::move(enc->bytes)};
  ctx.cfg.snapshots->save(std::move(s), [partition, id, seq, last](expected<void> r) {
    caf::anon_send(partition, snapshot_done_msg{id, seq, last, r ? std::nullopt : std::optional{r.error()}});
  });
}

} // namespace cafes::detail
