// An event without a msgpack codec.
#include "common.hpp"

struct plain_event {
  static constexpr std::string_view type_name = "counter.plain";
  std::int64_t n = 0; // no MSGPACK_DEFINE_MAP
};

struct counter {
  static constexpr std::string_view name = "counter";
  struct state {
    std::int64_t value = 0;
    MSGPACK_DEFINE_MAP(value);
  };
  using commands = std::variant<add>;
  using events = std::variant<plain_event>;
  static cafes::decision<> handle(const state&, const add& c) { return cafes::emit(plain_event{c.n}); }
  static void apply(state& s, const plain_event& e) { s.value += e.n; }
};

int main() { return cafes::make_ops<counter>() ? 0 : 1; }
