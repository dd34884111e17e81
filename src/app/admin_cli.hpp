// `meterhub meter …` and `meterhub token …`: registry administration on the
// database file, with the server stopped or running (a running server sees
// the change within a second). Keys go to stdout alone, so that
// KEY=$(meterhub meter add kitchen) works; everything else to stderr.
// `meterhub backup --out FILE`: an online, checked copy of the database
// (store/sqlite/backup.hpp), safe beside a running server.
#pragma once

#include "app/config.hpp"

namespace meterhub::app {

// The process exit code.
int run_admin_command(const Config& cfg);

}  // namespace meterhub::app
