#include "metrics/process.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace meterhub::metrics {
namespace {

// Fields of /proc/self/stat after the command name (which may hold spaces).
std::vector<std::string> stat_fields() {
  std::ifstream f("/proc/self/stat");
  std::string line;
  if (!std::getline(f, line)) return {};
  auto close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> out;
  for (std::string s; rest >> s;) out.push_back(s);
  return out;  // out[0] is field 3 (state)
}

double boot_time_seconds() {
  std::ifstream f("/proc/stat");
  for (std::string key; f >> key;) {
    if (key == "btime") {
      double v = 0;
      f >> v;
      return v;
    }
    std::string skip;
    std::getline(f, skip);
  }
  return -1;
}

}  // namespace

void write_process_metrics(TextWriter& w) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  auto st = stat_fields();
  // Field n of stat(5) is st[n - 3].
  if (st.size() > 21 && ticks > 0) {
    const double cpu = (std::stod(st[14 - 3]) + std::stod(st[15 - 3])) / ticks;
    w.header("process_cpu_seconds_total", "User and system CPU time spent, in seconds", "counter");
    w.sample("process_cpu_seconds_total", cpu);
    w.header("process_virtual_memory_bytes", "Virtual memory size in bytes", "gauge");
    w.sample("process_virtual_memory_bytes", std::stod(st[23 - 3]));
    w.header("process_resident_memory_bytes", "Resident memory size in bytes", "gauge");
    w.sample("process_resident_memory_bytes", std::stod(st[24 - 3]) * page);
    const double boot = boot_time_seconds();
    if (boot >= 0) {
      w.header("process_start_time_seconds",
               "Start time of the process since the Unix epoch, in seconds", "gauge");
      w.sample("process_start_time_seconds", boot + std::stod(st[22 - 3]) / ticks);
    }
  }
  std::error_code ec;
  std::size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++fds;
  if (!ec) {
    // The iterator's own descriptor is counted too, as in other clients.
    w.header("process_open_fds", "Open file descriptors", "gauge");
    w.sample("process_open_fds", static_cast<double>(fds));
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    w.header("process_max_fds", "Limit of open file descriptors", "gauge");
    w.sample("process_max_fds", static_cast<double>(rl.rlim_cur));
  }
}

}  // namespace meterhub::metrics
