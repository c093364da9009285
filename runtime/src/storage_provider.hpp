// Where a node's aggregate types keep their events and snapshots (internal).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "cafes/runtime/node.hpp"

namespace cafes::detail {

/// The journal and snapshot store of one aggregate type.
struct type_storage {
  std::shared_ptr<cafes::journal> journal;
  std::shared_ptr<snapshot_store> snapshots;
};

/// The storage of a node: memory, or Kafka (a broker, or the embedded mock cluster). The node
/// chooses it once, when it starts (choose_storage); host() then only asks it for each type's
/// journal and snapshot store.
class storage_provider {
 public:
  virtual ~storage_provider() = default;

  /// Returns the journal and snapshot store of aggregate type `type` in namespace `ns`. What
  /// `opts` injects (host_options::journal, ::snapshots) is used as it is; only the missing
  /// ones are opened, on Kafka after the type's topics are created or checked. Nothing is
  /// provisioned when both are injected.
  expected<type_storage> open(const std::string& ns, const std::string& type, const host_options& opts) {
    if (opts.journal && opts.snapshots)
      return type_storage{opts.journal, opts.snapshots};
    return open_missing(ns, type, opts);
  }

  /// Returns whether what it stores survives the process.
  virtual bool durable() const noexcept = 0;

  /// Names it in logs: "memory", or the Kafka journal's mode.
  virtual std::string_view name() const noexcept = 0;

 protected:
  virtual expected<type_storage> open_missing(const std::string& ns, const std::string& type,
                                              const host_options& opts) = 0;
};

/// Chooses the storage of `cfg`: memory, or Kafka on `kafka`'s brokers. Kafka storage without
/// bootstrap servers runs on an embedded mock cluster (cfg.embedded, or one started here),
/// which it also sets in `kafka`, so that the node's other Kafka clients (routing, the group)
/// use it too.
expected<std::unique_ptr<storage_provider>> choose_storage(const node_config& cfg, kafka_config& kafka);

} // namespace cafes::detail
