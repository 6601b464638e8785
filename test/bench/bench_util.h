// Timing helpers shared by the in-process benchmarks: run an operation for a
// while and report its rate; the median of a set of measurements.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace jnx::bench {

// Operations per second of `op` over about `seconds`; exits if op fails.
template <typename Op>
double RunFor(double seconds, Op &&op) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  long ops = 0;
  do {
    for (int i = 0; i < 64; ++i) {
      if (!op()) {
        std::fprintf(stderr, "benchmark operation failed\n");
        std::exit(1);
      }
    }
    ops += 64;
  } while (Clock::now() < end);
  return static_cast<double>(ops) / std::chrono::duration<double>(Clock::now() - start).count();
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace jnx::bench
