// A program built against the installed cafes package: encodes and decodes one event.
#include <cstdio>

#include <cafes/persistence/envelope.hpp>
#include <cafes/persistence/partitioner.hpp>
#include <cafes/persistence/registry.hpp>

struct opened {
  std::string owner;
  MSGPACK_DEFINE_MAP(owner);
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
  return o.owner == "ann" ? 0 : 1;
}
