// A program built against the installed cafes package: encodes and decodes one event, then
// hosts an aggregate on an in-memory node and asks it through the installed public headers
// (the actors' internal protocol is not installed: this builds without it).
#include <cstdio>

#include <cafes/persistence/envelope.hpp>
#include <cafes/persistence/partitioner.hpp>
#include <cafes/persistence/registry.hpp>
#include <cafes/runtime/node.hpp>

struct opened {
  std::string owner;
  MSGPACK_DEFINE_MAP(owner);
};

struct counter {
  static constexpr std::string_view name = "counter";
  struct state {
    std::int64_t n = 0;
    MSGPACK_DEFINE_MAP(n);
  };
  struct add {
    std::int64_t by = 0;
  };
  struct added {
    static constexpr std::string_view type_name = "counter.added";
    std::int64_t by = 0;
    MSGPACK_DEFINE_MAP(by);
  };
  using commands = std::variant<add>;
  using events = std::variant<added>;
  static cafes::decision<std::int64_t> handle(const state& s, const add& c) {
    return cafes::emit(added{c.by}).reply(s.n + c.by);
  }
  static void apply(state& s, const added& e) { s.n += e.by; }
};

int main() {
  cafes::type_registry reg;
  if (!reg.add<opened>("opened"))
    return 1;
  auto enc = reg.encode(opened{"ann"}).value();
  cafes::event_envelope e;
  e.id = cafes::aggregate_id::make("acc-1").value();
  e.seq = cafes::seq_nr{1};
  e.type = enc.type;
  e.payload = enc.bytes;
  auto rec = cafes::encode_event(e, "demo.account.events").value();
  auto back = cafes::decode_event(rec).value();
  auto o = reg.decode<opened>(back.type, back.schema_version, back.payload).value();
  std::printf("consumer: %s owns %s in partition %d of 12\n", o.owner.c_str(), back.id.str().c_str(),
              cafes::partition_for(back.id.str(), 12).value());

  cafes::node_config cfg;
  cfg.storage = cafes::storage_kind::memory;
  cfg.log_level = "warn";
  cafes::node n{cfg};
  if (!n.host<counter>({.partitions = 2}) || !n.wait_ready(std::chrono::seconds{30}))
    return 1;
  n.ask<counter>("c-1", counter::add{40}).value();
  auto total = n.ask<counter>("c-1", counter::add{2}).value();
  std::printf("consumer: counter c-1 is %lld\n", static_cast<long long>(total));
  return o.owner == "ann" && total == 42 ? 0 : 1;
}
