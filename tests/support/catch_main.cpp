// The Catch2 main of every test binary, with a watchdog per test case: a test case that runs
// longer than its limit (180 s times CAFES_TIMEOUT_SCALE, read when the test runs) ends the
// process with a message. Every deadline inside a test is shorter, whatever the scale.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <cmath>
#include <csignal>
#include <unistd.h>

#include "process.hpp"
#include "test_env.hpp"

namespace {

constexpr double limit_seconds = 180;

extern "C" void on_watchdog(int) {
  static const char msg[] = "\ntest watchdog: the test case ran longer than 180 s x CAFES_TIMEOUT_SCALE\n";
  (void) !::write(STDERR_FILENO, msg, sizeof msg - 1);
  cafes::test::kill_children();
  ::_exit(124);
}

struct watchdog : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseStarting(const Catch::TestCaseInfo&) override {
    std::signal(SIGALRM, on_watchdog);
    ::alarm(static_cast<unsigned>(std::ceil(limit_seconds * cafes::test::timeout_scale())));
  }
  void testCaseEnded(const Catch::TestCaseStats&) override { ::alarm(0); }
};

} // namespace

CATCH_REGISTER_LISTENER(watchdog)
