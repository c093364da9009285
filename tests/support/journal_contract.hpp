// The journal contract: one set of checks that every journal implementation must pass.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "test_env.hpp"

namespace cafes::test {

struct sample_event {
  std::int64_t amount = 0;
  std::string note;
  MSGPACK_DEFINE_MAP(amount, note);
};

/// Returns a fully populated envelope (every field set, so round trips compare exactly).
inline event_envelope make_event(const std::string& id, std::uint64_t seq, std::int64_t amount = 1) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, sample_event{amount, "note-" + std::to_string(seq)});
  event_envelope e;
  e.id = aggregate_id::make(id).value();
  e.seq = seq_nr{seq};
  e.type = "deposited";
  e.schema_version = 2;
  e.source = "/cafes/test/account";
  e.event_id = id + "/" + std::to_string(seq);
  e.time_ms = 1'790'000'000'123 + static_cast<std::int64_t>(seq);
  e.command_id = "cmd-" + id + "-" + std::to_string(seq);
  e.writer_node = "node-a";
  e.writer_epoch = 7;
  e.payload.assign(buf.data(), buf.size());
  return e;
}

/// Reads all of partition `p` from `from` in chunks of `chunk` events.
inline std::vector<event_envelope> read_all(journal& j, partition_id p, offset from, std::size_t chunk) {
  std::vector<event_envelope> out;
  for (int guard = 0; guard < 100000; ++guard) {
    auto c = j.read(p, from, chunk);
    REQUIRE(c);
    REQUIRE(c->events.size() <= chunk);
    REQUIRE(c->events.size() == c->offsets.size());
    for (auto& e : c->events)
      out.push_back(e);
    if (c->end)
      return out;
    REQUIRE(c->next.value() > from.value());
    from = c->next;
  }
  FAIL("read did not reach the end");
  return out;
}

/// Runs the journal contract on `j` (empty, with at least 3 partitions). `exact_end` is false
/// for transactional journals, whose commit markers take offsets too.
inline void check_journal_contract(journal& j, bool exact_end) {
  const auto parts = j.partitions();
  REQUIRE(parts >= 3);

  SECTION("an append spanning aggregates and partitions completes with every position") {
    std::vector<event_envelope> batch;
    std::map<std::string, std::uint64_t> seqs;
    for (int round = 0; round < 3; ++round)
      for (int a = 0; a < 8; ++a) {
        auto id = "acc-" + std::to_string(a);
        batch.push_back(make_event(id, ++seqs[id], a * 10 + round));
      }
    auto pos = j.append_sync(batch);
    REQUIRE(pos);
    REQUIRE(pos->size() == batch.size());
    std::map<std::int32_t, std::vector<event_envelope>> want;
    std::map<std::int32_t, std::int64_t> last;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto p = partition_for(batch[i].id.str(), parts);
      CHECK((*pos)[i].partition == p);
      if (last.count(p.value()))
        CHECK((*pos)[i].off.value() > last[p.value()]);
      last[p.value()] = (*pos)[i].off.value();
      want[p.value()].push_back(batch[i]);
    }
    REQUIRE(want.size() >= 2); // the batch really spans partitions
    for (auto& [p, events] : want) {
      // A transactional commit returns before its markers land: a read sees it after a
      // barrier (which, in an idempotent journal, writes a record of its own).
      if (!exact_end)
        REQUIRE(j.barrier(partition_id{p}));
      auto got = read_all(j, partition_id{p}, offset{0}, 3);
      CHECK(got == events);
      auto end = j.end_offset(partition_id{p});
      REQUIRE(end);
      if (exact_end)
        CHECK(end->value() == last[p] + 1);
      else
        CHECK(end->value() >= last[p] + 1);
    }
  }

  SECTION("reads come in bounded chunks and resume where they stopped") {
    std::vector<event_envelope> batch;
    for (std::uint64_t s = 1; s <= 10; ++s)
      batch.push_back(make_event("hot", s));
    auto pos = j.append_sync(batch);
    REQUIRE(pos);
    auto p = partition_for("hot", parts);
    if (!exact_end)
      REQUIRE(j.barrier(p));
    auto c = j.read(p, offset{0}, 4);
    REQUIRE(c);
    CHECK(c->events.size() == 4);
    CHECK(c->events.front().seq == seq_nr{1});
    auto c2 = j.read(p, c->next, 4);
    REQUIRE(c2);
    REQUIRE_FALSE(c2->events.empty());
    CHECK(c2->events.front().seq == seq_nr{5});
    auto rest = read_all(j, p, c2->next, 100);
    CHECK(c->events.size() + c2->events.size() + rest.size() == 10);
  }

  SECTION("a batch with an invalid event writes nothing") {
    std::vector<event_envelope> batch{make_event("ok-1", 1), make_event("ok-2", 1)};
    batch[1].seq = seq_nr{0};
    auto r = j.append_sync(batch);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_argument);
    auto reserved = make_event("x", 1);
    reserved.id = aggregate_id::unchecked("__cafes.checkpoint");
    auto r2 = j.append_sync({make_event("ok-3", 1), reserved});
    REQUIRE_FALSE(r2);
    CHECK(r2.error() == errc::reserved_aggregate_id);
    for (std::int32_t p = 0; p < parts; ++p) {
      auto e = j.end_offset(partition_id{p});
      REQUIRE(e);
      CHECK(e->value() == 0);
    }
  }

  SECTION("reading an empty partition ends at once; a bad partition is an error") {
    auto c = j.read(partition_id{0}, offset{0}, 10);
    REQUIRE(c);
    CHECK(c->events.empty());
    CHECK(c->end);
    auto bad = j.read(partition_id{parts}, offset{0}, 10);
    REQUIRE_FALSE(bad);
    CHECK(bad.error() == errc::invalid_argument);
    auto neg = j.read(partition_id{0}, offset{-5}, 10);
    REQUIRE_FALSE(neg);
  }

  SECTION("an empty batch succeeds with no positions") {
    auto r = j.append_sync({});
    REQUIRE(r);
    CHECK(r->empty());
  }
}

} // namespace cafes::test
