// Shared by the libFuzzer targets: running one input through a decoder and checking what every
// decoder promises (decoder.h), so a fuzz target finds wrong output as well as crashes.
//
// A decoder may return a line or throw format_error; anything else (another exception, a
// sanitizer report, an invariant below broken) aborts, which libFuzzer reports as a crash with
// the input that caused it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/formats/decoder.h"
#include "core/formats/typed_cells.h"

namespace streamrec::fuzzing {

[[noreturn]] inline void violated(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz invariant violated: %s\n%.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

inline void require(bool condition, const char* what, std::string_view detail = {}) {
  if (!condition) violated(what, detail);
}

inline column_binding column(std::string name, column_kind kind = column_kind::text, std::string field = {}) {
  column_binding binding;
  binding.column = std::move(name);
  binding.kind = kind;
  binding.field = std::move(field);
  return binding;
}

inline column_binding metadata_column(std::string name, metadata_field field) {
  column_binding binding;
  binding.column = std::move(name);
  binding.metadata = field;
  return binding;
}

// The message every target decodes: the fuzz input as its value, fixed metadata.
inline message_view message_of(const uint8_t* data, size_t size) {
  message_view message;
  message.topic = "fuzz";
  message.partition = 7;
  message.offset = 4242;
  message.timestamp_ms = 1719579715123;
  message.key = std::string_view("k\t\\y");
  message.payload = std::string_view(reinterpret_cast<const char*>(data), size);
  return message;
}

// One COPY text field read back (\N is nullopt), as COPY FROM reads the escapes decoders write.
// Aborts on an escape no decoder writes or a raw tab, line break or NUL.
inline std::optional<std::string> unescape_copy_field(std::string_view raw) {
  if (raw == "\\N") return std::nullopt;
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    require(c != '\n' && c != '\r' && c != '\0', "raw line break or NUL inside a COPY field", raw);
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    require(i + 1 < raw.size(), "COPY field ends in a lone backslash", raw);
    switch (raw[++i]) {
      case '\\':
        out.push_back('\\');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      default:
        violated("unexpected escape in a COPY field", raw);
    }
  }
  return out;
}

// The fields of a COPY text line (without its '\n'), split at tabs.
inline std::vector<std::optional<std::string>> copy_fields(std::string_view line) {
  require(!line.empty() && line.back() == '\n', "a decoded line must end in a line break", line);
  line.remove_suffix(1);
  std::vector<std::optional<std::string>> fields;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    fields.push_back(unescape_copy_field(line.substr(start, tab == std::string_view::npos ? line.npos : tab - start)));
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  return fields;
}

// The cell types a source worker could pick for a binding's column: the natural one, and a
// second set that makes typed_rows try its integer and timestamp fast forms on every field.
inline std::vector<cell_type> natural_cell_types(const std::vector<column_binding>& bindings) {
  std::vector<cell_type> types;
  for (const column_binding& b : bindings) {
    switch (b.kind) {
      case column_kind::boolean:
        types.push_back(cell_type::boolean);
        break;
      case column_kind::timestamp:
        types.push_back(cell_type::timestamptz);
        break;
      case column_kind::date:
        types.push_back(cell_type::date);
        break;
      case column_kind::text:
        types.push_back(b.metadata == metadata_field::offset ? cell_type::int8 : cell_type::text);
        break;
      default:
        types.push_back(cell_type::input);
        break;
    }
  }
  return types;
}

inline std::vector<cell_type> eager_cell_types(size_t count) {
  static constexpr cell_type cycle[] = {cell_type::int2, cell_type::int4,      cell_type::int8,
                                        cell_type::date, cell_type::timestamp, cell_type::timestamptz};
  std::vector<cell_type> types;
  for (size_t i = 0; i < count; ++i) types.push_back(cycle[i % 6]);
  return types;
}

// The decoded values of one message, by binding (absent bindings are left out of the line).
struct decoded_row {
  bool stored = false;
  column_mask present;
  std::vector<std::optional<std::string>> fields;  // present bindings only, in order
};

// Decodes `message` with `d` and checks the contract of decode(): a line appended after what
// the buffer held (left untouched on an error), one field per present binding, only the
// escapes COPY text needs, no more than max_decoded_bytes, and cells typed_rows accepts.
// Returns nullopt when the decoder threw format_error (or transient_error, if allowed).
// STREAMREC_FUZZ_VERBOSE=1 in the environment prints each outcome (to see what seeds decode to:
// `STREAMREC_FUZZ_VERBOSE=1 build-fuzz/fuzz/fuzz_json -runs=0 tests/fuzz/corpus/fuzz_json`).
inline bool verbose() {
  static const bool on = std::getenv("STREAMREC_FUZZ_VERBOSE") != nullptr;
  return on;
}

inline std::optional<decoded_row> decode_checked(decoder& d, const std::vector<column_binding>& bindings,
                                                 const message_view& message, bool transient_allowed = false) {
  static const std::string prefix = "earlier\tline\n";
  std::string line = prefix;
  decoded_row row;
  try {
    row.stored = d.decode(message, line, row.present);
  } catch (const format_error& e) {
    if (verbose()) std::fprintf(stderr, "format_error: %s\n", e.what());
    require(line == prefix, "a failed decode changed the line buffer", line);
    return std::nullopt;
  } catch (const transient_error& e) {
    if (verbose()) std::fprintf(stderr, "transient_error: %s\n", e.what());
    require(transient_allowed, "transient_error without a registry outage", e.what());
    require(line == prefix, "a failed decode changed the line buffer", line);
    return std::nullopt;
  }
  require(line.compare(0, prefix.size(), prefix) == 0, "decode() changed what the buffer held before");
  const std::string_view appended = std::string_view(line).substr(prefix.size());
  if (verbose())
    std::fprintf(stderr, "%s: %.*s", row.stored ? "line" : "skipped", static_cast<int>(appended.size()),
                 appended.data());
  if (verbose() && !row.stored) std::fprintf(stderr, "\n");
  if (!row.stored) {
    require(appended.empty(), "a skipped message appended text", appended);
    return row;
  }
  require(row.present.size() == bindings.size(), "present has not one entry per binding");
  require(appended.size() <= d.max_decoded_bytes() + 1, "line longer than max_decoded_bytes", appended);
  size_t present_count = 0;
  for (const bool p : row.present) present_count += p ? 1 : 0;
  if (present_count == 0) {
    require(appended == "\n", "a line without fields must be empty", appended);
  } else {
    row.fields = copy_fields(appended);
    require(row.fields.size() == present_count, "field count differs from the present bindings", appended);
  }
  for (size_t b = 0; b < bindings.size(); ++b) {
    if (bindings[b].metadata != metadata_field::none) require(row.present[b], "a metadata column is absent");
  }
  // The source worker's typed path splits the same line into cells.
  try {
    typed_rows cells;
    cells.append_line(appended, row.present, natural_cell_types(bindings));
    cells.append_line(appended, row.present, eager_cell_types(bindings.size()));
  } catch (const format_error& e) {
    violated("typed_rows refused a decoded line", e.what());
  }
  return row;
}

}  // namespace streamrec::fuzzing
