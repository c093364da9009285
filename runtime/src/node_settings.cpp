// The settings of a node that are checked before it starts anything.
#include "node_settings.hpp"

#include <fstream>
#include <string_view>
#include <utility>

namespace cafes::detail {

expected<std::optional<tls_settings>> tls_of(const node_config& c, bool routing) {
  const bool any = !c.tls_cert.empty() || !c.tls_key.empty() || !c.tls_ca.empty();
  if (!any) {
    if (!c.tls_key_passphrase_file.empty())
      return cafes::error{errc::invalid_argument,
                          "--tls-key-passphrase-file is set, but TLS between nodes is not (--tls-cert, --tls-key "
                          "and --tls-ca)"};
    return std::optional<tls_settings>{};
  }
  std::string missing;
  for (auto& [name, v] : {std::pair<const char*, const std::string*>{"--tls-cert", &c.tls_cert},
                          {"--tls-key", &c.tls_key},
                          {"--tls-ca", &c.tls_ca}})
    if (v->empty())
      missing += std::string{missing.empty() ? "" : " and "} + name;
  if (!missing.empty()) {
    const bool several = missing.find(" and ") != std::string::npos;
    return cafes::error{errc::invalid_argument, "TLS between nodes needs --tls-cert, --tls-key and --tls-ca "
                                                "together: " +
                                                  missing + (several ? " are" : " is") + " missing"};
  }
  if (!routing)
    return cafes::error{errc::invalid_argument, "TLS between nodes (--tls-cert, --tls-key, --tls-ca) needs routing "
                                                "(cluster mode or --routing)"};
  tls_settings t{c.tls_cert, c.tls_key, c.tls_ca, {}};
  if (!c.tls_key_passphrase_file.empty()) {
    auto p = read_passphrase_file(c.tls_key_passphrase_file);
    if (!p)
      return p.error();
    t.passphrase = std::move(*p);
  }
  if (auto ok = check_tls(t); !ok)
    return ok.error();
  return std::optional<tls_settings>{std::move(t)};
}

namespace {

// librdkafka properties that cafes sets per client itself: one value for every client would
// break what they guarantee (fencing, ownership, read-committed recovery).
constexpr std::string_view reserved_kafka_properties[] = {
  "bootstrap.servers", "metadata.broker.list", "group.id",           "group.instance.id",       "transactional.id",
  "enable.idempotence", "isolation.level",     "enable.auto.commit", "enable.auto.offset.store",
};

} // namespace

expected<std::map<std::string, std::string>> kafka_properties(const node_config& cfg) {
  auto props = cfg.kafka_properties;
  for (auto& [key, value] : props) {
    if (key.empty())
      return cafes::error{errc::invalid_argument, "a kafka property has an empty name"};
    for (auto reserved : reserved_kafka_properties)
      if (key == reserved)
        return cafes::error{errc::invalid_argument,
                            "kafka property " + key + " is set by cafes for each client and cannot be given" +
                                (key == "bootstrap.servers" || key == "metadata.broker.list" ? " (use --bootstrap)" : "")};
  }
  if (!cfg.sasl_password_file.empty()) {
    if (props.count("sasl.password"))
      return cafes::error{errc::invalid_argument, "the SASL password is given twice: as kafka property sasl.password "
                                                  "and in the file " + cfg.sasl_password_file};
    std::ifstream in{cfg.sasl_password_file};
    std::string line;
    if (!in || !std::getline(in, line))
      return cafes::error{errc::invalid_argument, "cannot read the SASL password file " + cfg.sasl_password_file};
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.empty())
      return cafes::error{errc::invalid_argument, "the SASL password file " + cfg.sasl_password_file +
                                                      " starts with an empty line (its first line is the password)"};
    props["sasl.password"] = std::move(line);
  }
  return props;
}

} // namespace cafes::detail
