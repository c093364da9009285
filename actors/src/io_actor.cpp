// The I/O actor of a partition: blocking journal and snapshot-store calls, off CAF's workers.
#include "internal.hpp"
#include "logger.hpp"

namespace cafes::detail {

namespace {

// Whether a record could be read but not decoded (as opposed to Kafka being unreachable).
bool undecodable(const cafes::error& e) {
  return e == errc::malformed_record || e == errc::missing_header || e == errc::bad_header ||
         e == errc::unsupported_version || e == errc::unknown_type || e == errc::type_mismatch;
}

io_actor::behavior_type io_impl(io_actor::pointer, context_ptr ctx, partition_id p) {
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
      auto cp = ctx->cfg.snapshots->load_mark(p);
      if (cp) {
        out.mark = *cp;
      } else if (undecodable(cp.error())) {
        // Like a corrupt snapshot: the partition is replayed from its start, never lost.
        ++out.corrupt;
        actors_log().error("corrupt checkpoint of partition {}: {}; the partition is replayed from offset 0",
                           p.value(), cp.error().to_string());
      } else {
        out.err = cp.error();
      }
      return out;
    },
    [=](mark_atom) {
      mark_result out;
      auto m = ctx->cfg.snapshots->load_mark(p);
      if (m)
        out.mark = *m;
      else if (undecodable(m.error()))
        actors_log().error("corrupt checkpoint of partition {}: {}; the new owner stores one from offset 0", p.value(),
                           m.error().to_string());
      else
        out.err = m.error();
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
    [=](catchup_atom, const std::string& id, offset from) -> catch_up_result {
      catch_up_result out;
      // Past the barrier nothing of an earlier failed append can land any more.
      auto barrier = ctx->cfg.journal->barrier(p);
      if (!barrier) {
        out.err = barrier.error();
        return out;
      }
      if (from.value() < 0) { // a restart: from the latest snapshot
        from = offset{0};
        auto snap = ctx->cfg.snapshots->load(aggregate_id::unchecked(id));
        if (!snap && !undecodable(snap.error())) {
          out.err = snap.error();
          return out;
        }
        expected<std::any> state{std::any{}}; // empty: no snapshot
        if (!snap)
          state = snap.error();
        else if (*snap)
          state = ctx->cfg.ops->decode_state((*snap)->state_type, (*snap)->state_version, (*snap)->state);
        if (!state) {
          // As in recovery: a snapshot that does not decode is counted, and the aggregate is
          // rebuilt from its first event, never loses one.
          ++ctx->cfg.stats->corrupt_snapshots;
          actors_log().error("snapshot of '{}' does not decode ({}); it restarts from the journal", id,
                             state.error().to_string());
        } else if (state->has_value()) {
          out.state = std::move(*state);
          out.seq = (*snap)->seq;
          out.last = (*snap)->journal_offset;
          from = offset{out.last.value() + 1};
        }
      }
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
        if (c->next.value() >= barrier->value() || (c->end && c->next.value() == from.value()))
          return out;
        from = c->next;
      }
    },
    [=](checkpt_atom, offset o, std::uint64_t epoch) {
      checkpoint_result out{std::nullopt, o};
      if (auto ok = ctx->cfg.snapshots->save_mark(p, partition_mark{o, epoch}); !ok)
        out.err = ok.error();
      return out;
    },
    [=](open_atom) {
      auto ok = ctx->cfg.journal->open(p);
      return io_result{ok ? std::nullopt : std::optional{ok.error()}};
    },
    [=](close_atom) {
      auto ok = ctx->cfg.journal->close(p);
      return io_result{ok ? std::nullopt : std::optional{ok.error()}};
    },
  };
}

} // namespace

io_actor spawn_io(caf::local_actor* parent, context_ptr ctx, partition_id p) {
  return parent->spawn<caf::detached + caf::linked>(io_impl, std::move(ctx), p);
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
