// Text helpers for the sandbox's HTTP endpoints. JSON strings are written with the core's
// append_json_string (core/formats/json_writer.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace streamrec {

// Percent-decodes one path segment ("a%2Fb" -> "a/b"). A '+' stays a '+' in a path. Returns nothing
// for a malformed escape, a NUL byte or invalid UTF-8, none of which can name a subject or topic,
// and which would make the JSON that echoes the name invalid.
std::optional<std::string> decode_path_segment(std::string_view segment);

// Parses a whole decimal integer in [min, max]; nothing for anything else ("", "1x", "-", overflow).
std::optional<long long> parse_bounded_integer(std::string_view text, long long min, long long max);

}  // namespace streamrec
