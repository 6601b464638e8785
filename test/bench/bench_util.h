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

// Medians of a comparison: the reference's rate, ours, and the per-round ratio.
struct Comparison {
  double reference = 0, ours = 0, ratio = 0;
};

// Rounds of `reference` and `ours` in turn, after a warm-up of each.
template <typename Reference, typename Ours>
Comparison Alternate(Reference &&reference, Ours &&ours, int rounds, double seconds) {
  RunFor(0.2, reference);
  RunFor(0.2, ours);
  std::vector<double> ratios, refs, mine;
  for (int r = 0; r < rounds; ++r) {
    const double a = RunFor(seconds, reference);
    const double b = RunFor(seconds, ours);
    refs.push_back(a);
    mine.push_back(b);
    ratios.push_back(b / a);
  }
  return {Median(refs), Median(mine), Median(ratios)};
}

}  // namespace jnx::bench
