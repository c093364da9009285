// A handler emits an event type that is not in its aggregate's events.
#include "common.hpp"

struct stray {
  static constexpr std::string_view type_name = "counter.stray";
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
  using events = std::variant<added>;
  template <class R = cafes::done>
  using decision = cafes::decision<R, events>;
  static decision<> handle(const state&, const add&) { return cafes::emit(stray{}); }
  static void apply(state& s, const added& e) { s.value += e.n; }
};

int main() { return cafes::testing::given<counter>().when(add{1}).rejection ? 1 : 0; }
