// Test environment: scaled timeouts, the real broker's address, private names per run.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <unistd.h>

namespace cafes::test {

/// Returns the factor that scales every timeout in tests (env CAFES_TIMEOUT_SCALE, default 1).
inline double timeout_scale() {
  if (const char* s = std::getenv("CAFES_TIMEOUT_SCALE")) {
    try {
      double v = std::stod(s);
      if (v > 0)
        return v;
    } catch (...) {
    }
  }
  return 1.0;
}

/// Returns `base` scaled by timeout_scale().
inline std::chrono::milliseconds scaled(std::chrono::milliseconds base) {
  return std::chrono::milliseconds{static_cast<long>(static_cast<double>(base.count()) * timeout_scale())};
}

/// Polls `done` (a condition the code under test raises; never a fixed sleep) until it holds or a scaled deadline passes.
template <class F>
bool eventually(F done, std::chrono::milliseconds bound = std::chrono::seconds{10}) {
  const auto deadline = std::chrono::steady_clock::now() + scaled(bound);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::yield();
  }
  return true;
}

/// Like eventually(), for a condition that costs a request to another process (an HTTP
/// call): it is checked every `interval` rather than in a tight loop.
template <class F>
bool eventually_every(F done, std::chrono::milliseconds bound, std::chrono::milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + scaled(bound);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(interval); // the poll interval, not a wait for the condition
  }
  return true;
}

/// Returns the real broker's bootstrap servers: env CAFES_BOOTSTRAP, or the file named by
/// env CAFES_BOOTSTRAP_FILE (written by scripts/broker.sh). Throws if neither is set, so an
/// integration test without a broker fails loudly instead of passing.
inline std::string bootstrap() {
  if (const char* s = std::getenv("CAFES_BOOTSTRAP"); s && *s)
    return s;
  if (const char* f = std::getenv("CAFES_BOOTSTRAP_FILE"); f && *f) {
    std::ifstream in{f};
    std::string line;
    if (std::getline(in, line) && !line.empty())
      return line;
    throw std::runtime_error(std::string{"cannot read the bootstrap file "} + f);
  }
  throw std::runtime_error("no broker: set CAFES_BOOTSTRAP or CAFES_BOOTSTRAP_FILE (scripts/test-all.sh does)");
}

/// Returns a namespace unique to this call, so tests never share topics: CTest runs each test
/// case in its own process, so the process id and its start time (ms) tell the runs apart, and
/// a counter the calls within one process.
inline std::string unique_ns(const std::string& what) {
  static std::atomic<int> counter{0};
  static const auto started = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  return "t" + std::to_string(::getpid()) + "-" + std::to_string(started) + "-" + what + "-" +
         std::to_string(++counter);
}

} // namespace cafes::test

#include <catch2/catch.hpp>

#include "cafes/persistence/errc.hpp"

namespace Catch {

/// Prints an expected<T> as "ok" or its error, so failed REQUIREs say why.
template <class T>
struct StringMaker<cafes::expected<T>> {
  static std::string convert(const cafes::expected<T>& x) {
    return x ? std::string{"ok"} : "error " + x.error().to_string();
  }
};

} // namespace Catch
