// wait_for_shutdown_signal: SIGINT and SIGTERM through a self-pipe.
#include <cerrno>
#include <csignal>
#include <mutex>

#include <fcntl.h>
#include <unistd.h>

#include "cafes/runtime/node.hpp"

namespace cafes {

namespace {

int signal_pipe[2] = {-1, -1};

extern "C" void on_shutdown_signal(int sig) {
  const int saved = errno; // a handler must not change errno
  const auto byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] auto n = ::write(signal_pipe[1], &byte, 1); // async-signal-safe
  errno = saved;
}

} // namespace

int wait_for_shutdown_signal() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (::pipe2(signal_pipe, O_CLOEXEC) != 0)
      signal_pipe[0] = signal_pipe[1] = -1;
  });
  if (signal_pipe[0] < 0)
    return 0;
  struct sigaction sa {};
  sa.sa_handler = on_shutdown_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_RESETHAND; // a second signal takes the default action: the end
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  unsigned char sig = 0;
  while (::read(signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
  }
  // The other signal's handler is still set; restore it so that any second signal ends it.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  return sig;
}

} // namespace cafes
