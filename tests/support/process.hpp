// Child processes for tests: spawn, read stdout lines with a deadline, kill, reap.
#pragma once

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <optional>
#include <regex>
#include <string>
#include <vector>

extern char** environ;

namespace cafes::test {

/// The children alive, so that the test watchdog can kill them before it ends the process
/// (a killed test must not leave nodes running).
inline std::atomic<pid_t> live_children[64];

inline void register_child(pid_t pid, bool alive) {
  for (auto& slot : live_children) {
    pid_t expected = alive ? 0 : pid;
    if (slot.compare_exchange_strong(expected, alive ? pid : 0))
      return;
  }
}

/// Kills every registered child (async-signal-safe).
inline void kill_children() {
  for (auto& slot : live_children)
    if (pid_t pid = slot.load(); pid > 0)
      ::kill(pid, SIGKILL);
}

/// A child process whose stdout the test reads; stderr goes to `log_path`.
class child {
 public:
  child(const std::vector<std::string>& argv, const std::string& log_path) {
    int fds[2];
    if (pipe(fds) != 0)
      throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addopen(&fa, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0)
      throw std::runtime_error("cannot start " + argv[0]);
    posix_spawn_file_actions_destroy(&fa);
    register_child(pid_, true);
    close(fds[1]);
    out_ = fds[0];
  }
  ~child() {
    kill(SIGKILL);
    if (out_ >= 0)
      close(out_);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  /// Waits (up to `timeout`) for a stdout line matching `re`; returns its first group.
  std::optional<std::string> wait_for(const std::regex& re, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (auto nl = buf_.find('\n'); nl != std::string::npos; nl = buf_.find('\n')) {
        auto line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        std::smatch m;
        if (std::regex_search(line, m, re))
          return m.size() > 1 ? m[1].str() : line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0)
        return std::nullopt;
      char tmp[4096];
      auto n = read(out_, tmp, sizeof tmp);
      if (n <= 0)
        return std::nullopt; // the child closed stdout: it died
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

  /// Sends `sig` (SIGSTOP, SIGCONT) and leaves the child running or paused.
  void signal(int sig) {
    if (pid_ > 0)
      ::kill(pid_, sig);
  }

  /// Sends `sig` and reaps the child (SIGKILL: immediately; others: waits for it).
  void kill(int sig) {
    if (pid_ <= 0)
      return;
    ::kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    register_child(pid_, false);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buf_;
};

/// What a program run to its end printed, and how it ended.
struct run_result {
  int exit_code = -1;      ///< its exit code; -1 if a signal ended it or it was killed
  std::string out;         ///< all it wrote to stdout
  std::string err;         ///< all it wrote to stderr
  bool timed_out = false;  ///< it was killed at the deadline
  std::chrono::milliseconds took{0}; ///< from start to end
};

/// Runs `argv` to its end, collecting stdout and stderr; kills it after `timeout`.
inline run_result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  int out[2], err[2];
  if (pipe(out) != 0 || pipe(err) != 0)
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  posix_spawn_file_actions_addclose(&fa, err[0]);
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  close(err[1]);
  if (spawned != 0) {
    close(out[0]);
    close(err[0]);
    throw std::runtime_error("cannot start " + argv[0]);
  }
  register_child(pid, true);
  run_result res;
  const auto deadline = start + timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* into[2] = {&res.out, &res.err};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      res.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    if (poll(fds, 2, static_cast<int>(left.count())) < 0)
      break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char tmp[4096];
      const auto n = read(fds[i].fd, tmp, sizeof tmp);
      if (n > 0) {
        into[i]->append(tmp, static_cast<std::size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0)
      close(f.fd);
  int status = 0;
  waitpid(pid, &status, 0);
  register_child(pid, false);
  if (WIFEXITED(status))
    res.exit_code = WEXITSTATUS(status);
  res.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  return res;
}

} // namespace cafes::test
