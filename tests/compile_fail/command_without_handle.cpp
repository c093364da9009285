// A command that is neither in the aggregate's commands nor handled, sent to the testing helper.
#include "common.hpp"

struct renew {};

struct counter {
  static constexpr std::string_view name = "counter";
  struct state {
    std::int64_t value = 0;
    MSGPACK_DEFINE_MAP(value);
  };
  using commands = std::variant<add>;
  using events = std::variant<added>;
  static cafes::decision<> handle(const state&, const add& c) { return cafes::emit(added{c.n}); }
  static void apply(state& s, const added& e) { s.value += e.n; }
};

int main() {
  cafes::testing::given<counter>().when(renew{});
  return 0;
}
