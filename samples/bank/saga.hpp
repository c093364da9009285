// The transfer saga: debit, credit, and refund on failure, each step persisted first, driven
// by one process manager actor per node.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "account.hpp"
#include "cafes/runtime/node.hpp"
#include "transfer.hpp"

namespace bank {

/// Hosts the bank's aggregate types on `node`, both with `opts`, and starts its transfer
/// manager.
cafes::expected<void> host_bank(cafes::node& node, const cafes::host_options& opts);

/// Hosts the accounts with `accounts` and the transfers with `transfers` (for example each with
/// a journal of its own injected), and starts the transfer manager.
cafes::expected<void> host_bank(cafes::node& node, const cafes::host_options& accounts,
                                const cafes::host_options& transfers);

/// The same with the default options but these two.
cafes::expected<void> host_bank(cafes::node& node, std::int32_t partitions, std::uint64_t snapshot_every);

/// Receives a transfer's state once it is final (completed, compensated or rejected), or the
/// error that stopped it. Called once, on an actor thread: it must not block.
using transfer_callback = std::function<void(cafes::expected<transfer::state>)>;

/// Asks the node's transfer manager to drive transfer `id` to a final status, starting it
/// first if `start` is given. The manager is an actor that runs at most one drive per
/// transfer id: a request for an id that is being driven joins that drive. Each step is
/// persisted in the transfer aggregate before the manager acts on it, and each account leg
/// is decided once, applied or refused (account.hpp, pending_leg), so driving again after a
/// crash or an unknown outcome, or a second driver on another node, never moves money twice
/// nor after a refusal. After the final status the manager settles the
/// legs (the accounts forget them) and records it; `done` does not wait for that.
void drive_async(cafes::node& node, std::string id, std::optional<start_transfer> start, transfer_callback done);

/// Starts transfer `id` and waits for its final status. Fails only on infrastructure errors
/// (timeouts, persist failures) or a bad request; resume_transfers() finishes such
/// transfers later. From plain C++ threads only, never from an actor.
cafes::expected<transfer_status> run_transfer(cafes::node& node, const std::string& id, const std::string& from,
                                              const std::string& to, std::int64_t amount);

/// Drives an existing transfer from its persisted status to a final one (waits for it).
cafes::expected<transfer_status> drive(cafes::node& node, const std::string& id);

/// Drives every unsettled transfer (after a restart) through the manager, many at once, and
/// waits for them. Returns how many it drove, or the first error.
cafes::expected<std::size_t> resume_transfers(cafes::node& node);

/// What the transfer manager of a node did so far.
struct saga_stats {
  std::uint64_t drives = 0;  ///< drives started
  std::uint64_t joined = 0;  ///< requests that joined a running drive of the same transfer
  std::uint64_t running = 0; ///< drives running now
};

/// Returns the counters of the node's transfer manager.
cafes::expected<saga_stats> transfer_manager_stats(cafes::node& node);

} // namespace bank
