// Journal decorators for tests: count what recovery reads, inject persist failures.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "cafes/persistence/journal.hpp"

namespace cafes::test {

/// What an injected fault does to one append.
enum class append_fault {
  none,
  fail_before_write, ///< nothing is written; the append fails
  fail_after_write,  ///< everything is written, yet the append fails (an unknown outcome)
};

/// Wraps a journal: counts the events read per partition and injects append faults.
class wrapped_journal final : public journal {
 public:
  explicit wrapped_journal(std::shared_ptr<journal> inner) : inner_(std::move(inner)) {}

  /// Decides the fault of the n-th append (0-based); empty: no faults.
  std::function<append_fault(std::uint64_t)> fault;

  void append(std::vector<event_envelope> batch, append_callback cb) override {
    auto f = fault ? fault(appends_++) : append_fault::none;
    if (f == append_fault::fail_before_write) {
      events_refused += batch.size();
      return cb(append_result{cafes::error{errc::timeout, "injected: nothing written"}, event_outcome::not_written});
    }
    if (f == append_fault::fail_after_write) {
      events_unknown += batch.size();
      return inner_->append(std::move(batch), [cb](append_result) {
        cb(append_result{cafes::error{errc::timeout, "injected: written, reported as failed"}});
      });
    }
    inner_->append(std::move(batch), std::move(cb));
  }

  expected<read_chunk> read(partition_id p, offset from, std::size_t max) override {
    auto r = inner_->read(p, from, max);
    if (r) {
      std::lock_guard guard{mtx_};
      read_[p.value()] += r->events.size();
    }
    return r;
  }

  expected<offset> end_offset(partition_id p) override { return inner_->end_offset(p); }
  std::int32_t partitions() const noexcept override { return inner_->partitions(); }
  const std::string& topic() const noexcept override { return inner_->topic(); }
  codec_limits limits() const noexcept override { return inner_->limits(); }
  bool healthy() const noexcept override { return inner_->healthy(); }
  bool lost(partition_id p) const noexcept override { return inner_->lost(p); }
  bool fenced(partition_id p) const noexcept override { return inner_->fenced(p); }

  /// Returns the events read from partition p since the last reset.
  std::uint64_t events_read(std::int32_t p) {
    std::lock_guard guard{mtx_};
    return read_[p];
  }
  std::uint64_t events_read_total() {
    std::lock_guard guard{mtx_};
    std::uint64_t n = 0;
    for (auto& [p, c] : read_)
      n += c;
    return n;
  }
  void reset_counts() {
    std::lock_guard guard{mtx_};
    read_.clear();
  }

  std::atomic<std::uint64_t> events_refused{0};   ///< events of appends failed before writing
  std::atomic<std::uint64_t> events_unknown{0};   ///< events of appends failed after writing

 private:
  std::shared_ptr<journal> inner_;
  std::atomic<std::uint64_t> appends_{0};
  std::mutex mtx_;
  std::map<std::int32_t, std::uint64_t> read_;
};

/// A journal whose reads block while it is closed: a catch-up or a recovery that stays pending
/// until the test opens it again.
class read_gate final : public journal {
 public:
  explicit read_gate(std::shared_ptr<journal> inner) : inner_(std::move(inner)) {}

  void close() {
    std::lock_guard guard{mtx_};
    closed_ = true;
  }
  void open() {
    {
      std::lock_guard guard{mtx_};
      closed_ = false;
    }
    cv_.notify_all();
  }
  /// Returns the reads blocked now.
  std::size_t waiting() {
    std::lock_guard guard{mtx_};
    return waiting_;
  }

  void append(std::vector<event_envelope> batch, append_callback cb) override {
    inner_->append(std::move(batch), std::move(cb));
  }
  expected<read_chunk> read(partition_id p, offset from, std::size_t max) override {
    {
      std::unique_lock lock{mtx_};
      ++waiting_;
      cv_.wait(lock, [this] { return !closed_; });
      --waiting_;
    }
    return inner_->read(p, from, max);
  }
  expected<offset> end_offset(partition_id p) override { return inner_->end_offset(p); }
  std::int32_t partitions() const noexcept override { return inner_->partitions(); }
  const std::string& topic() const noexcept override { return inner_->topic(); }
  codec_limits limits() const noexcept override { return inner_->limits(); }

 private:
  std::shared_ptr<journal> inner_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool closed_ = false;
  std::size_t waiting_ = 0;
};

} // namespace cafes::test
