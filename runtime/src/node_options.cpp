// A node's command line: its options on a CLI11 app, parsing argv, and what main returns.
// The library never exits the program: parse errors and --help come back as errors.
#include <cstdio>
#include <map>
#include <memory>

#include <CLI/CLI.hpp>

#include "cafes/runtime/node.hpp"

namespace cafes {

void node_config::add_options(CLI::App& app) {
  // --help shows each option's default: the value this config holds when the options are added.
  const bool captured = app.option_defaults()->get_always_capture_default();
  app.option_defaults()->always_capture_default();
  app.set_config("--config", "", "read options from this INI or TOML file");
  app.add_option("--bootstrap", bootstrap, "Kafka bootstrap servers; none: the embedded mock cluster");
  app.add_option("--namespace", ns, "prefix of every topic")->check([](const std::string& s) {
    return s.empty() || s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                          std::string::npos
             ? std::string{"a namespace is letters, digits, '_' and '-'"}
             : std::string{};
  });
  app.add_option("--node-name", node_name, "name of this node, written into every event");
  app.add_option_function<std::string>(
       "--mode",
       [this](const std::string& s) { mode = parse_journal_mode(s).value(); },
       "journal mode: idempotent or transactional")
    ->default_str(std::string{to_string(mode)})
    ->check(CLI::IsMember({"idempotent", "transactional"}));
  app.add_option_function<std::string>(
       "--storage", [this](const std::string& s) { storage = s == "memory" ? storage_kind::memory : storage_kind::kafka; },
       "kafka or memory")
    ->default_str(storage == storage_kind::memory ? "memory" : "kafka")
    ->check(CLI::IsMember({"kafka", "memory"}));
  app.add_option("--embedded-brokers", embedded_brokers, "brokers of the embedded mock cluster")
    ->check(CLI::Range(1, 9));
  app.add_option("--threads", threads, "actor scheduler threads (0: the machine's cores)");
  app.add_option_function<long>(
       "--command-timeout-ms", [this](long v) { command_timeout = std::chrono::milliseconds{v}; },
       "bound on one command")
    ->default_str(std::to_string(command_timeout.count()))
    ->check(CLI::Range(1L, 3'600'000L));
  app.add_option_function<long>(
       "--delivery-timeout-ms", [this](long v) { delivery_timeout = std::chrono::milliseconds{v}; },
       "bound on one journal append")
    ->default_str(std::to_string(delivery_timeout.count()))
    ->check(CLI::Range(1L, 3'600'000L));
  app.add_option_function<long>(
       "--request-timeout-ms", [this](long v) { request_timeout = std::chrono::milliseconds{v}; },
       "bound on one metadata, admin, read or transaction call")
    ->default_str(std::to_string(request_timeout.count()))
    ->check(CLI::Range(1L, 3'600'000L));
  app.add_flag("--cluster", cluster,
               "share the partitions with the other nodes of the namespace (needs --bootstrap and "
               "--mode transactional)");
  app.add_option_function<long>(
       "--session-timeout-ms", [this](long v) { session_timeout = std::chrono::milliseconds{v}; },
       "cluster mode: a node silent this long loses its partitions")
    ->default_str(std::to_string(session_timeout.count()))
    ->check(CLI::Range(1000L, 3'600'000L));
  app.add_flag("--routing", routing, "route commands between nodes (always on in cluster mode)");
  app.add_option("--advertise-host", advertise_host, "where the other nodes reach this node's gateway");
  app.add_option("--gateway-bind", gateway_bind, "where the gateway listens (default: the advertised host)");
  app.add_option("--gateway-port", gateway_port, "the gateway's port; 0: a free one");
  app.add_option("--directory-replication", directory_replication, "replication factor of the directory topic")
    ->check(CLI::Range(1, 32));
  app.add_option("--max-frame-bytes", max_frame_bytes, "bound on a routed command and its reply")
    ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30));
  app.add_option("--tls-cert", tls_cert,
                 "TLS between nodes: PEM file of this node's certificate (with --tls-key and --tls-ca)");
  app.add_option("--tls-key", tls_key, "TLS between nodes: PEM file of the certificate's private key");
  app.add_option("--tls-ca", tls_ca, "TLS between nodes: PEM file of the CA every node's certificate chains to");
  app.add_option("--tls-key-passphrase-file", tls_key_passphrase_file,
                 "TLS between nodes: file whose first line is the passphrase of an encrypted --tls-key");
  app.add_flag("!--no-metrics", metrics, "do not measure durations (the metrics' histograms stay empty)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
    ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--log-format", log_format, "log lines on stderr: text, or json (one object a line)")
    ->check(CLI::IsMember({"text", "json"}));
  add_kafka_options(app);
  app.option_defaults()->always_capture_default(captured);
}

void node_config::add_kafka_options(CLI::App& app) {
  // --kafka-property and the named options below all write into kafka_properties. A key given
  // twice with two values is refused, whichever option came first; a value set in code before
  // the options were added is overridden.
  auto given = std::make_shared<std::map<std::string, std::string>>();
  auto put = [this, given](const std::string& key, const std::string& value) {
    auto [it, fresh] = given->emplace(key, value);
    if (!fresh && it->second != value)
      throw CLI::ValidationError("kafka property " + key, "given twice, with two different values");
    kafka_properties[key] = value;
  };
  app.add_option_function<std::vector<std::string>>(
       "--kafka-property",
       [put](const std::vector<std::string>& props) {
         for (auto& kv : props) {
           auto eq = kv.find('=');
           if (eq == std::string::npos || eq == 0)
             throw CLI::ValidationError("--kafka-property", "takes KEY=VALUE (an argument has no key)");
           put(kv.substr(0, eq), kv.substr(eq + 1));
         }
       },
       "a librdkafka property for every Kafka client of the node, KEY=VALUE; repeatable")
    ->type_name("KEY=VALUE")
    ->allow_extra_args(false);
  auto property = [&app, put](const std::string& name, const std::string& key, const std::string& what) {
    return app.add_option_function<std::string>(
      name, [put, key](const std::string& v) { put(key, v); }, what + " (" + key + ")");
  };
  property("--security-protocol", "security.protocol", "how the Kafka clients connect: plaintext, ssl, sasl_plaintext or sasl_ssl")
    ->transform(CLI::IsMember({"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"}, CLI::ignore_case));
  property("--ssl-ca", "ssl.ca.location", "PEM file of the CA that signed the brokers' certificates")
    ->check(CLI::ExistingFile);
  property("--ssl-certificate", "ssl.certificate.location",
           "the client's certificate (PEM) for brokers that authenticate clients by TLS")
    ->check(CLI::ExistingFile);
  property("--ssl-key", "ssl.key.location", "the private key (PEM) of --ssl-certificate")->check(CLI::ExistingFile);
  property("--sasl-mechanism", "sasl.mechanism", "SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, ...");
  property("--sasl-username", "sasl.username", "SASL user name");
  app.add_option("--sasl-password-file", sasl_password_file,
                 "file whose first line is the SASL password (sasl.password), read at start")
    ->check(CLI::ExistingFile);
  app.add_flag("!--no-broker-check", check_brokers,
               "start without checking that a Kafka broker answers (with the TLS and SASL settings)");
}

expected<node_config> node_config::from_args(int argc, char** argv, std::string_view program) {
  node_config cfg;
  CLI::App app{"", std::string{program}};
  cfg.add_options(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return cafes::error{errc::help_requested, app.help()};
  } catch (const CLI::ParseError& e) {
    return cafes::error{errc::invalid_argument, std::string{program} + ": " + e.what() + " (--help lists the options)"};
  }
  return cfg;
}

int exit_code(const error& e) {
  if (e == errc::help_requested) {
    std::fputs(e.message.c_str(), stdout);
    return 0;
  }
  std::fprintf(stderr, "%s\n", e.to_string().c_str());
  return 2;
}

} // namespace cafes
