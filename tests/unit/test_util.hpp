// Helpers shared by the unit tests: temporary directories and readings.
#pragma once

#include <filesystem>
#include <random>
#include <string>

#include "core/reading.hpp"
#include "core/time.hpp"

namespace meterhub::testing {

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("meterhub-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline core::Reading reading(std::string meter, core::TimeMs ts, double power = 100.0) {
  core::Reading r;
  r.meter_id = std::move(meter);
  r.ts = ts;
  r.voltage = 230.1;
  r.current = power / 230.1;
  r.power = power;
  r.energy = 12.5;
  return r;
}

// 2026-01-01T00:00:00Z: a fixed, valid reading time.
inline constexpr core::TimeMs kT0 = 1767225600000;

}  // namespace meterhub::testing
