// Standard process metrics from /proc (Linux), written at scrape time under
// the names Prometheus client libraries use: process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds.
// A value /proc cannot give is left out, never made up.
#pragma once

#include "metrics/registry.hpp"

namespace meterhub::metrics {

void write_process_metrics(TextWriter& w);

}  // namespace meterhub::metrics
