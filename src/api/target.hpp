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

}  // namespace meterhub::api
