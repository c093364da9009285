// The cart sample: shoppers fill carts on a cafes node; then it drains and stops.
#include <cafes/runtime/node.hpp>
#include <cstdio>
#include <unistd.h>

#include "cart.hpp"

using shop::cart;

template <class R>
void show(const char* what, const cafes::expected<R>& r) {
  std::printf("%-32s -> %s\n", what, (r ? std::to_string(*r) : r.error().to_string()).c_str());
}

int main(int argc, char** argv) {
  auto cfg = cafes::node_config::from_args(argc, argv, "cart");
  if (!cfg)
    return cafes::exit_code(cfg.error()); // --help, or a bad option: never an abort
  auto node = cafes::node::start(*cfg);
  if (!node || !(*node)->host<cart>() || !(*node)->wait_ready(std::chrono::seconds{10}))
    return 2;
  auto& n = **node;
  show("ann adds 2 tea", n.ask<cart>("ann", cart::add_item{"tea", 2}));
  show("ann adds 1 jam (2 s deadline)", n.ask<cart>("ann", cart::add_item{"jam"}, {.timeout = std::chrono::seconds{2}}));
  show("ann adds 0 jam", n.ask<cart>("ann", cart::add_item{"jam", 0}));
  show("ann removes socks", n.ask<cart>("ann", cart::remove_item{"socks"}));
  show("ann adds an item with no sku", n.ask<cart>("ann", cart::add_item{""}));
  show("ann checks out", n.ask<cart>("ann", cart::checkout{}));
  show("ann adds 1 tea", n.ask<cart>("ann", cart::add_item{"tea"}));
  n.ask_then<cart>("bob", cart::add_item{"tea", 3}, [](auto r) { show("bob adds 3 tea (callback)", r); });
  if (isatty(STDIN_FILENO)) { // interactive: serve until SIGINT or SIGTERM
    std::puts("Ctrl-C drains and stops the node");
    cafes::wait_for_shutdown_signal();
  }
  auto stopped = n.shutdown(std::chrono::seconds{5}); // bob's command is answered first
  std::printf("stopped: %s\n", stopped ? "drained" : stopped.error().to_string().c_str());
  return stopped ? 0 : 1;
}
