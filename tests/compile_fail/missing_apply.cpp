// An event in the aggregate's events without an apply.
#include "common.hpp"

struct removed {
  static constexpr std::string_view type_name = "counter.removed";
  std::int64_t n = 0;
  MSGPACK_DEFINE_MAP(n);
};

struct counter {
  static constexpr std::string_view name = "counter";
  struct state {
    std::int64_t value = 0;
    MSGPACK_DEFINE_MAP(value);
  };
  using commands = std::variant<add>;
  using events = std::variant<added, removed>;
  static cafes::decision<> handle(const state&, const add& c) { return cafes::emit(added{c.n}); }
  static void apply(state& s, const added& e) { s.value += e.n; }
};

int main() { return cafes::make_ops<counter>() ? 0 : 1; }
