// Online backup of a meterhub SQLite database: a consistent copy taken with
// SQLite's online backup API while a server may be writing to the source.
//
// Contract:
//  - The copy is one snapshot of the source: every transaction committed
//    before the backup began is in it, and no half of any transaction. (A
//    read transaction is held on the source for the whole copy, so the
//    backup never restarts however busy the writer is; in WAL mode a reader
//    never blocks the writer, it only keeps the WAL from being rewound
//    until the copy is done.)
//  - Pages are copied `pages_per_step` at a time with `pause` in between,
//    so the copy's disk I/O does not starve the server's fsyncs.
//  - The copy is written to "<out>.tmp", checked with PRAGMA
//    integrity_check, fsynced, and only then renamed to `out` (and the
//    directory fsynced): `out` is either absent, the old file, or a whole,
//    checked copy — never a partial one.
//  - An existing `out` is refused unless `force`.
//  - The source must exist and be a meterhub database; nothing in it changes.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/error.hpp"

namespace meterhub::store {

struct BackupOptions {
  int pages_per_step = 1024;  // 4 MiB with the default 4 KiB pages
  std::chrono::milliseconds pause{2};
  bool force = false;
  int busy_timeout_ms = 10'000;
};

struct BackupReport {
  std::int64_t pages = 0;
  std::int64_t bytes = 0;
  int schema_version = 0;
  std::chrono::milliseconds copy_time{0};
  std::chrono::milliseconds check_time{0};
};

core::Result<BackupReport> backup_database(const std::string& db_path, const std::string& out,
                                           const BackupOptions& opts = {});

}  // namespace meterhub::store
