// Errors as values. Expected failures (bad input, unknown meter, store down)
// travel as core::Error inside core::Result; exceptions are for bugs and
// start-up failures only. `code` is a stable machine-readable token that API
// clients may switch on; `message` is for people.
#pragma once

#include <cstddef>
#include <expected>
#include <optional>
#include <string>

namespace meterhub::core {

struct Error {
  std::string code;                  // e.g. "invalid_reading", "store_unavailable"
  std::string message;               // human-readable, names the offending field/value
  std::optional<std::size_t> index;  // position in a batch, when it applies
  std::string field;                 // offending field name, when it applies
};

template <class T>
using Result = std::expected<T, Error>;

std::unexpected<Error> fail(std::string code, std::string message);

}  // namespace meterhub::core
