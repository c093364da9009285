// Captures what the process writes to stderr (file descriptor 2, so librdkafka's own prints
// too) while one lives; optionally still passes it on to the real stderr.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace cafes::test {

class stderr_capture {
 public:
  /// Redirects fd 2 into a pipe read by a thread; with `tee`, the bytes go on to the real
  /// stderr as well (the test's log stays complete).
  explicit stderr_capture(bool tee = true) : tee_(tee) {
    std::fflush(stderr);
    int fds[2];
    if (pipe(fds) != 0)
      throw std::runtime_error("pipe failed");
    saved_ = dup(2);
    fcntl(saved_, F_SETFD, FD_CLOEXEC);
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    dup2(fds[1], 2);
    close(fds[1]);
    read_ = fds[0];
    reader_ = std::thread{[this] { pump(); }};
  }

  ~stderr_capture() { stop(); }
  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;

  /// Puts stderr back and reads what is left; idempotent.
  void stop() {
    if (read_ < 0)
      return;
    std::fflush(stderr);
    dup2(saved_, 2); // the pipe's last writer of this process is gone: the reader sees the end
    stop_ = true;   // (a child that inherited fd 2 may keep it open: the reader stops anyway)
    reader_.join();
    close(read_);
    close(saved_);
    read_ = -1;
  }

  /// Returns everything captured so far.
  std::string text() const {
    std::lock_guard guard{mtx_};
    return buf_;
  }

  /// Returns the captured lines that match `re`.
  std::vector<std::string> lines_matching(const std::regex& re) const {
    std::vector<std::string> out;
    std::istringstream in{text()};
    for (std::string line; std::getline(in, line);)
      if (std::regex_search(line, re))
        out.push_back(line);
    return out;
  }

  /// Returns the captured lines that librdkafka printed itself ("%3|1700000000.123|FAIL|…").
  std::vector<std::string> raw_librdkafka_lines() const { return lines_matching(std::regex{R"(^%\d+\|)"}); }

 private:
  void pump() {
    char tmp[4096];
    for (;;) {
      pollfd p{read_, POLLIN, 0};
      const int r = poll(&p, 1, 50);
      if (r > 0) {
        const auto n = read(read_, tmp, sizeof tmp);
        if (n <= 0)
          return;
        {
          std::lock_guard guard{mtx_};
          buf_.append(tmp, static_cast<std::size_t>(n));
        }
        if (tee_)
          (void)!write(saved_, tmp, static_cast<std::size_t>(n));
        continue;
      }
      if (stop_)
        return; // nothing more to read and stderr is back
    }
  }

  bool tee_;
  int saved_ = -1;
  int read_ = -1;
  std::atomic<bool> stop_{false};
  std::thread reader_;
  mutable std::mutex mtx_;
  std::string buf_;
};

} // namespace cafes::test
