// Splits an origin-form request-target ("/api/v1/meters/m1?limit=5") into
// percent-decoded path segments and query parameters (Boost.URL).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace meterhub::api {

struct Target {
  std::vector<std::string> segments;  // "/a/b%2Fc" -> {"a", "b/c"}
  std::vector<std::pair<std::string, std::string>> params;

  // The first value of a query parameter, if present.
  std::optional<std::string> param(std::string_view key) const;
};

// Fails with code "bad_target" for anything that is not origin-form.
core::Result<Target> parse_target(std::string_view target);

// As parse_target, but the query is split leniently: Emoncms firmware sends
// raw JSON in it (?fulljson={"power":100}), which RFC 3986 does not allow.
// "%XX" is decoded, a malformed escape is kept as is, and '+' is a space (as
// PHP, i.e. Emoncms itself, decodes queries).
core::Result<Target> parse_target_lenient(std::string_view target);

// An application/x-www-form-urlencoded body ('+' is a space), split as
// leniently as parse_target_lenient's query.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view body);

}  // namespace meterhub::api
