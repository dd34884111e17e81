// Bucketed series computed from raw readings: the reference computation of
// GET /api/v1/meters/{id}/series (history/energy issue). Rollups, when they
// come, must give exactly these answers; this is the oracle their tests
// compare against, and the path for steps too small for any rollup.
//
// Buckets are aligned to the Unix epoch (UTC): a bucket of step s starts at
// a multiple of s. Buckets without readings are omitted.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/aggregate.hpp"
#include "core/energy.hpp"
#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::query {

using SeriesBucket = core::Aggregate;

// The ladder `step=auto` chooses from, smallest first.
inline constexpr core::TimeMs kStepLadder[] = {1'000,   10'000,    60'000,     300'000,
                                               900'000, 3'600'000, 21'600'000, 86'400'000};

// "1s", "10s", "1m", "15m", "1h", "6h", "1d" ... : any whole number of s, m, h
// or d from 1 s to 1 d.
core::Result<core::TimeMs> parse_step(std::string_view text);

// The smallest ladder step whose epoch-aligned grid covers [from, to) in at
// most `points` buckets (the largest step if none does).
core::TimeMs auto_step(core::TimeMs from, core::TimeMs to, std::size_t points);

// `readings`: one meter's readings in [from, to), sorted by ts. `before`: up
// to core::kContextBefore readings right before them (oldest first); `after`:
// the first reading at or after `to`, if any. They only decide counter outliers and
// the consumption of the first reading, as in core::attribute_consumption.
std::vector<SeriesBucket> bucketize(std::span<const core::Reading> readings,
                                    std::span<const core::Reading> before,
                                    std::optional<core::Reading> after, core::TimeMs step_ms,
                                    const core::CounterRules& rules);

// Merges buckets of a finer step (rollup rows, sorted by start) into buckets
// of `step_ms`, a multiple of theirs: the series answer from a rollup table.
std::vector<SeriesBucket> regroup(std::span<const SeriesBucket> rows, core::TimeMs step_ms);

}  // namespace meterhub::query
