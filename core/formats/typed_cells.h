// Decoded rows as typed cells: what a source worker hands to PostgreSQL instead of COPY text.
//
// A decoder writes one COPY text line per message (decoder.h). On the decoding thread that line
// is split once into cells, and each field whose target column has a fast form is converted
// right there: integers, booleans, dates and timestamps become binary values, text becomes its
// unescaped bytes. Only fields a fast form cannot take exactly (numerics, jsonb, arrays,
// domains, a timestamp spelled in a form not listed below, ...) stay text for the column type's
// own input function. The PostgreSQL side then builds Datums from cells without COPY's parser.
//
// Every fast form is a strict subset of what PostgreSQL's input function accepts, with the same
// meaning: anything else falls back to the input function, so the stored values and the errors
// are PostgreSQL's own.
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/formats/decoder.h"

namespace streamrec {

// How a target column takes its field (chosen by the PostgreSQL side from the column's type).
enum class cell_type : uint8_t {
  input,  // the type's input function reads the text
  text,   // text, or varchar without a length: the bytes are the value
  int2,   // -?[0-9]+ within range
  int4,
  int8,
  boolean,      // t, f, true, false
  date,         // YYYY-MM-DD (years 1..9999)
  timestamp,    // timestamp without time zone (no typmod): the ISO forms below, zone ignored
  timestamptz,  // timestamptz (no typmod): the ISO forms below
};

// What a cell holds.
enum class cell_kind : uint8_t {
  null,
  text,             // bytes in typed_rows::text(), the value as is
  input,            // bytes in typed_rows::text(), for the column's input function
  integer,          // value
  boolean,          // value 0 or 1
  date,             // value: days since 1970-01-01
  timestamp,        // value: microseconds since 1970-01-01 00:00 UTC (an instant, or a
                    // timestamp without time zone's wall clock read as UTC)
  local_timestamp,  // value: a wall clock without zone, as microseconds since 1970-01-01 00:00
                    // read as UTC, for a timestamptz: placed in the session's time zone
};

struct typed_cell {
  cell_kind kind;
  uint32_t length;  // text, input: bytes
  int64_t value;    // text, input: offset in typed_rows::text(); else as cell_kind says
};

// Parses "YYYY-MM-DD(T| )HH:MM:SS[.f{1,6}][Z|(+|-)HH[:MM]]" with years 1..9999, a valid
// calendar day, hours below 24, minutes and seconds below 60 and zone offsets up to 14:59.
// Returns false for anything else. `local` is the wall clock as microseconds since the Unix
// epoch read as UTC; `offset_seconds` is the zone's offset east of UTC when `has_zone`.
bool parse_iso_timestamp(std::string_view text, int64_t& local, bool& has_zone, int32_t& offset_seconds);

// Cells of many rows, appended from COPY text lines.
class typed_rows {
 public:
  void clear() {
    cells_.clear();
    text_.clear();
  }
  // Appends the cells of one line a decoder wrote (tab-separated fields of the present bindings
  // in binding order, ending in '\n'), converting each field for its binding's cell_type
  // (`types` has one entry per binding). Returns the index of the row's first cell. Throws
  // format_error when the line does not hold one field per present binding.
  size_t append_line(std::string_view line, const column_mask& present, const std::vector<cell_type>& types);

  const typed_cell* cells(size_t first) const { return cells_.data() + first; }
  size_t cell_count() const { return cells_.size(); }
  const char* text() const { return text_.data(); }
  std::string_view text_of(const typed_cell& cell) const {
    return std::string_view(text_.data() + cell.value, cell.length);
  }

 private:
  // Unescapes one COPY text field (raw, between separators) onto text_, as COPY FROM reads it.
  void unescape(std::string_view raw);
  void add_text(cell_kind kind, std::string_view raw);
  // Writes the cell in place: a cell built on the stack and copied in stalls on store forwarding.
  void push(cell_kind kind, uint32_t length, int64_t value) {
    typed_cell& cell = cells_.emplace_back();
    cell.kind = kind;
    cell.length = length;
    cell.value = value;
  }

  std::vector<typed_cell> cells_;
  std::string text_;
};

}  // namespace streamrec
