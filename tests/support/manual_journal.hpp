// A journal decorator for tests: every append completes only when the test says so, and as it says.
#pragma once

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cafes/persistence/journal.hpp"

namespace cafes::test {

/// Keeps every append until the test completes it: durable, failed after its events were
/// written (an unknown outcome whose events landed), failed with nothing written (an unknown
/// outcome whose events did not land), or refused (not_written). What is written goes to the
/// inner journal, which also serves reads, so a catch-up sees exactly what landed. Safe to
/// use from the test's thread while actors append.
class manual_journal final : public journal {
 public:
  explicit manual_journal(std::shared_ptr<journal> inner = make_memory_journal("manual", 1))
    : inner_(std::move(inner)) {}

  void append(std::vector<event_envelope> batch, append_callback cb) override {
    std::lock_guard guard{mtx_};
    calls_.push_back({std::move(batch), std::move(cb)});
  }

  /// Returns how many appends were made so far.
  std::size_t calls() const {
    std::lock_guard guard{mtx_};
    return calls_.size();
  }

  /// Returns the events of append i.
  std::vector<event_envelope> batch(std::size_t i) const {
    std::lock_guard guard{mtx_};
    return calls_.at(i).batch;
  }

  /// Returns how many events of aggregate `id` were handed to the journal, in all appends.
  std::size_t events_of(const std::string& id) const {
    std::lock_guard guard{mtx_};
    std::size_t n = 0;
    for (auto& c : calls_)
      for (auto& e : c.batch)
        n += e.id.str() == id;
    return n;
  }

  /// Writes append i and reports where its events landed.
  void succeed(std::size_t i) {
    auto c = take(i);
    inner_->append(std::move(c.batch), std::move(c.cb));
  }

  /// Writes append i, yet reports it failed with an unknown outcome (a timeout after the
  /// records reached the log).
  void fail_after_write(std::size_t i) {
    auto c = take(i);
    auto cb = std::move(c.cb);
    inner_->append(std::move(c.batch), [cb](append_result) {
      cb(append_result{cafes::error{errc::timeout, "injected: written, reported as failed"}});
    });
  }

  /// Writes nothing of append i and reports it failed with an unknown outcome (a timeout
  /// before the records reached the log).
  void fail(std::size_t i) { take(i).cb(append_result{cafes::error{errc::timeout, "injected: nothing written"}}); }

  /// Writes nothing of append i and reports it refused (not_written) with `cause`.
  void refuse(std::size_t i, cafes::error cause) {
    take(i).cb(append_result{std::move(cause), event_outcome::not_written});
  }

  expected<read_chunk> read(partition_id p, offset from, std::size_t max) override { return inner_->read(p, from, max); }
  expected<offset> end_offset(partition_id p) override { return inner_->end_offset(p); }
  expected<offset> barrier(partition_id p) override { return inner_->barrier(p); }
  std::int32_t partitions() const noexcept override { return inner_->partitions(); }
  const std::string& topic() const noexcept override { return inner_->topic(); }
  codec_limits limits() const noexcept override { return inner_->limits(); }

 private:
  struct call {
    std::vector<event_envelope> batch;
    append_callback cb;
  };

  // Returns append i for completion; each completes once.
  call take(std::size_t i) {
    std::lock_guard guard{mtx_};
    auto& c = calls_.at(i);
    if (!c.cb)
      throw std::logic_error("append " + std::to_string(i) + " was completed already");
    call out{c.batch, std::move(c.cb)};
    c.cb = nullptr;
    return out;
  }

  std::shared_ptr<journal> inner_;
  mutable std::mutex mtx_;
  std::vector<call> calls_;
};

} // namespace cafes::test
