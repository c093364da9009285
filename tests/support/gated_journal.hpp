// A journal decorator for tests: holds one command's append back until the test releases it.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cafes/persistence/journal.hpp"

namespace cafes::test {

/// Holds back the journal append that carries the event of command `hold` until release().
class gated_journal final : public journal {
 public:
  gated_journal(std::shared_ptr<journal> inner, std::string hold) : inner_(std::move(inner)), hold_(std::move(hold)) {}

  void append(std::vector<event_envelope> batch, append_callback cb) override {
    {
      std::lock_guard guard{mtx_};
      for (auto& e : batch)
        if (!released_ && e.command_id == hold_) {
          held_.emplace(std::move(batch), std::move(cb));
          return;
        }
    }
    inner_->append(std::move(batch), std::move(cb));
  }

  bool holding() {
    std::lock_guard guard{mtx_};
    return held_.has_value();
  }

  void release() {
    std::optional<std::pair<std::vector<event_envelope>, append_callback>> h;
    {
      std::lock_guard guard{mtx_};
      released_ = true;
      h.swap(held_);
    }
    if (h)
      inner_->append(std::move(h->first), std::move(h->second));
  }

  expected<read_chunk> read(partition_id p, offset from, std::size_t max) override { return inner_->read(p, from, max); }
  expected<offset> end_offset(partition_id p) override { return inner_->end_offset(p); }
  std::int32_t partitions() const noexcept override { return inner_->partitions(); }
  const std::string& topic() const noexcept override { return inner_->topic(); }

 private:
  std::shared_ptr<journal> inner_;
  std::string hold_;
  std::mutex mtx_;
  bool released_ = false;
  std::optional<std::pair<std::vector<event_envelope>, append_callback>> held_;
};

} // namespace cafes::test
