// The persistence error category and aggregate ids.
#include "cafes/persistence/errc.hpp"

#include "cafes/persistence/types.hpp"

namespace cafes {

namespace {

class persistence_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "cafes.persistence"; }
  std::string message(int v) const override {
    switch (static_cast<errc>(v)) {
      case errc::ok: return "ok";
      case errc::invalid_argument: return "invalid_argument";
      case errc::invalid_aggregate_id: return "invalid_aggregate_id";
      case errc::reserved_aggregate_id: return "reserved_aggregate_id";
      case errc::event_too_large: return "event_too_large";
      case errc::state_too_large: return "state_too_large";
      case errc::help_requested: return "help_requested";
      case errc::malformed_record: return "malformed_record";
      case errc::missing_header: return "missing_header";
      case errc::bad_header: return "bad_header";
      case errc::unsupported_version: return "unsupported_version";
      case errc::unknown_type: return "unknown_type";
      case errc::type_mismatch: return "type_mismatch";
      case errc::duplicate_type: return "duplicate_type";
      case errc::sequence_gap: return "sequence_gap";
      case errc::sequence_repeat: return "sequence_repeat";
      case errc::timeout: return "timeout";
      case errc::broker_unavailable: return "broker_unavailable";
      case errc::fenced: return "fenced";
      case errc::transaction_aborted: return "transaction_aborted";
      case errc::topic_mismatch: return "topic_mismatch";
      case errc::topic_missing: return "topic_missing";
      case errc::kafka_error: return "kafka_error";
      case errc::fatal: return "fatal";
      case errc::closed: return "closed";
      case errc::overloaded: return "overloaded";
      case errc::not_owned: return "not_owned";
      case errc::unauthorized: return "unauthorized";
      case errc::tls_failed: return "tls_failed";
    }
    return "unknown(" + std::to_string(v) + ")";
  }
};

} // namespace

const std::error_category& persistence_category() noexcept {
  static const persistence_category_impl cat;
  return cat;
}

expected<aggregate_id> aggregate_id::make(std::string s) {
  if (s.empty())
    return error{errc::invalid_aggregate_id, "aggregate id is empty"};
  if (s.size() > max_aggregate_id_size)
    return error{errc::invalid_aggregate_id, "aggregate id is longer than " +
                                                 std::to_string(max_aggregate_id_size) + " bytes"};
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return error{errc::invalid_aggregate_id, "aggregate id contains a control character"};
  if (std::string_view{s}.starts_with(reserved_prefix))
    return error{errc::reserved_aggregate_id,
                 "aggregate id '" + s + "' starts with the reserved prefix '" +
                     std::string{reserved_prefix} + "'"};
  return aggregate_id{std::move(s)};
}

} // namespace cafes
