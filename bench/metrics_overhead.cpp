// What counting costs on the hot path (src/metrics): nanoseconds per
// increment of the instruments a request touches, on 1 and 2 threads, and
// the time of one full /metrics exposition. Run: build/bench/meterhub-metricsbench
// (numbers in bench/RESULTS.md, "Metrics overhead").
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "metrics/instruments.hpp"
#include "metrics/process.hpp"
#include "metrics/registry.hpp"

using namespace meterhub::metrics;
using Clock = std::chrono::steady_clock;

template <class F>
double ns_per_op(int threads, long iters, F f) {
  std::vector<std::thread> ts;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (long i = 0; i < iters; ++i) f(t, i);
    });
  for (auto& t : ts) t.join();
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  return ns / static_cast<double>(iters);  // wall time per op on each thread
}

int main() {
  Instruments& m = instruments();
  const char* routes[] = {"/api/v1/readings", "/api/v1/meters/{meter_id}/series", "/healthz",
                          "/api/v1/meters/{meter_id}/latest"};
  const char* statuses[] = {"201", "200", "400", "404"};
  constexpr long kIters = 5'000'000;
  for (int threads : {1, 2}) {
    std::printf("threads=%d\n", threads);
    std::printf("  counter inc                      %6.1f ns\n",
                ns_per_op(threads, kIters, [&](int, long) { m.ws_connections_total.inc(); }));
    std::printf("  labelled counter with(3 labels)  %6.1f ns\n",
                ns_per_op(threads, kIters, [&](int, long i) {
                  m.http_requests.with({routes[i & 3], "POST", statuses[(i >> 2) & 3]}).inc();
                }));
    std::printf("  histogram observe                %6.1f ns\n",
                ns_per_op(threads, kIters,
                          [&](int, long i) { m.commit_seconds.observe(0.0001 * (i & 63)); }));
    std::printf("  one request's counting           %6.1f ns\n",
                ns_per_op(threads, kIters, [&](int, long i) {
                  m.http_requests.with({routes[i & 3], "POST", statuses[(i >> 2) & 3]}).inc();
                  m.http_duration.with({routes[i & 3]}).observe(0.0001 * (i & 63));
                }));
  }
  m.registry.add_collector([](TextWriter& w) { write_process_metrics(w); });
  std::string text;
  const auto start = Clock::now();
  constexpr int kScrapes = 1000;
  for (int i = 0; i < kScrapes; ++i) text = m.registry.expose();
  const double us =
      std::chrono::duration<double, std::micro>(Clock::now() - start).count() / kScrapes;
  std::printf("exposition: %.1f us for %zu bytes\n", us, text.size());
}
