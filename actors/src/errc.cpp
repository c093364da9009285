// The actors error category.
#include "cafes/actors/errc.hpp"

#include <string>

namespace cafes {

namespace {

class actors_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "cafes.actors"; }
  std::string message(int v) const override {
    switch (static_cast<actor_errc>(v)) {
      case actor_errc::ok: return "ok";
      case actor_errc::unknown_aggregate_type: return "unknown_aggregate_type";
      case actor_errc::invalid_command: return "invalid_command";
      case actor_errc::overloaded: return "overloaded";
      case actor_errc::persist_failed: return "persist_failed";
      case actor_errc::recovery_failed: return "recovery_failed";
      case actor_errc::timeout: return "timeout";
      case actor_errc::shutting_down: return "shutting_down";
      case actor_errc::not_owner: return "not_owner";
      case actor_errc::handler_failed: return "handler_failed";
    }
    return "unknown(" + std::to_string(v) + ")";
  }
};

} // namespace

const std::error_category& actors_category() noexcept {
  static const actors_category_impl cat;
  return cat;
}

} // namespace cafes
