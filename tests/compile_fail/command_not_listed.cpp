// A command with a handle that is missing from the aggregate's commands.
#include "common.hpp"

struct reset {};

struct counter {
  static constexpr std::string_view name = "counter";
  struct state {
    std::int64_t value = 0;
    MSGPACK_DEFINE_MAP(value);
  };
  using commands = std::variant<add>;
  using events = std::variant<added>;
  static cafes::decision<> handle(const state&, const add& c) { return cafes::emit(added{c.n}); }
  static cafes::decision<> handle(const state& s, const reset&) { return cafes::emit(added{-s.value}); }
  static void apply(state& s, const added& e) { s.value += e.n; }
};

int main() { return cafes::testing::given<counter>().when(reset{}).rejection ? 1 : 0; }
