// The baseline: the aggregate every compile-failure case breaks compiles as it is.
#include "common.hpp"

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
  static decision<std::int64_t> handle(const state&, const add& c) {
    return cafes::emit(added{c.n}).reply_with([](const state& next) { return next.value; });
  }
  static void apply(state& s, const added& e) { s.value += e.n; }
};

int main() {
  auto ops = cafes::make_ops<counter>();
  return cafes::testing::given<counter>().when(add{1}).reply == 1 && ops ? 0 : 1;
}
