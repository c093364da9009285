// The transfer saga: debit, credit, and refund on failure, each step persisted first.
#pragma once

#include <string>

#include "account.hpp"
#include "cafes/runtime/node.hpp"
#include "transfer.hpp"

namespace bank {

/// Hosts the bank's aggregate types on `node`.
cafes::expected<void> host_bank(cafes::node& node, std::int32_t partitions, std::uint64_t snapshot_every,
                                std::uint64_t max_replay = 10'000, std::int16_t replication = 1,
                                std::int16_t min_insync_replicas = 0);

/// Starts transfer `id` and drives it to a final status (completed, compensated or
/// rejected). Each step is persisted in the transfer aggregate before the saga acts on it,
/// and every account command carries a reference derived from the transfer id, so running
/// it again after a crash never moves money twice. Fails only on infrastructure errors
/// (timeouts, persist failures); resume() finishes such transfers later.
cafes::expected<transfer_status> run_transfer(cafes::node& node, const std::string& id, const std::string& from,
                                              const std::string& to, std::int64_t amount);

/// Drives an existing transfer from its persisted status to a final one.
cafes::expected<transfer_status> drive(cafes::node& node, const std::string& id);

/// Drives every pending transfer (after a restart). Returns how many it finished.
cafes::expected<std::size_t> resume_transfers(cafes::node& node);

/// Returns true if an error is a business rejection (bank_errc), as opposed to an
/// infrastructure failure whose outcome is unknown.
bool is_rejection(const cafes::error& e);

} // namespace bank
