// Deterministic pseudo-random numbers for the data generator.
//
// The standard library's engines are portable but its distributions are not (libstdc++ and
// libc++ turn the same engine output into different values), and the generator promises the
// same bytes for the same --seed everywhere. So both the engine and the mappings to ranges are
// ours: SplitMix64 (Steele, Lea, Flood 2014), a small, fast, well-mixed 64-bit generator.
//
// Records are generated from a counter-based stream: record i of kind k draws from a generator
// seeded with hash(seed, k, i). Any record can be recomputed on its own, which is how a
// checkout finds "its" click and a transaction finds its item's initial stock without either
// stream being generated first.
#pragma once

#include <cstdint>

namespace streamrec::datagen {

// The SplitMix64 output function: a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline constexpr uint64_t golden_gamma = 0x9e3779b97f4a7c15ULL;

// A value determined by (seed, stream, index) alone.
inline uint64_t hash3(uint64_t seed, uint64_t stream, uint64_t index) {
  return mix64(mix64(seed + golden_gamma * (stream + 1)) ^ (index * golden_gamma + stream));
}

class rng {
 public:
  rng(uint64_t seed, uint64_t stream, uint64_t index) : state_(hash3(seed, stream, index)) {}

  uint64_t next() {
    state_ += golden_gamma;
    return mix64(state_);
  }
  // Uniform in [0, n) by multiply-shift (Lemire); the bias for n far below 2^64 is negligible
  // and, unlike modulo, it does not favour small values.
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }
  // Uniform in [lo, hi].
  int64_t between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }
  // Uniform in [0, 1) with 53 random bits.
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return unit() < p; }

 private:
  uint64_t state_;
};

}  // namespace streamrec::datagen
