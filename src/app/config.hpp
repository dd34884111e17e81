// Command line and environment: every flag also reads METERHUB_<FLAG>.
// Parsing lives here so main.cpp is only wiring.
#pragma once

#include <optional>
#include <string>

#include "api/router.hpp"
#include "http/server.hpp"
#include "hub/hub.hpp"
#include "ingest/ingest.hpp"
#include "mqtt/mqtt_options.hpp"

namespace meterhub::app {

struct Config {
  std::string db_path = "./data/meterhub.db";  // or a postgresql:// URL
  std::string node_id;                         // PostgreSQL: empty until parsed (hostname-pid)
  std::size_t pg_connections = 4;              // PostgreSQL: pooled query connections
  std::string log_level = "info";
  std::string log_format = "text";  // text | json (one JSON object per line)
  std::size_t query_threads = 2;
  std::string web_root;  // empty: <directory of the executable>/web
  hub::HubOptions hub;
  http::ServerOptions server;
  api::ApiOptions api;
  ingest::IngestOptions ingest;
  core::CounterRules counter_rules;
  auth::AuthOptions auth;
  std::optional<mqtt::MqttOptions> mqtt;  // --mqtt given
  std::string alert_webhook;              // --alert-webhook URL, empty: none
  // Set when a subcommand (meter …, token …, backup) was given instead of serving.
  struct Command {
    std::string group, verb;  // "meter" add|list|rotate-key|delete, "token" create|list|revoke
    std::string target;       // meter id or token id
    std::string name, location, scope = "read";
    std::optional<std::int64_t> interval_s;
    std::string out;        // backup: the copy to write
    bool force = false;     // backup: replace an existing file
    int step_pages = 1024;  // backup: pages copied per step
  };
  std::optional<Command> command;
};

// Parses argv (and the environment). On --help or a usage error it prints to
// stdout/stderr and returns the exit code to use instead of a Config.
struct ParseOutcome {
  std::optional<Config> config;
  int exit_code = 0;
};
ParseOutcome parse_config(int argc, char** argv);

}  // namespace meterhub::app
