// PostgreSQL COPY text format (the default format, not CSV) and the literal forms that travel
// inside it: array literals and bytea hex.
//
// Source workers hand decoded rows to BeginCopyFrom as text lines, so these helpers are the only
// place that decides how a value is spelled for COPY: a line is tab-separated fields ending in
// '\n', NULL is \N, and backslash, tab, newline and carriage return inside a value are written
// as \\ \t \n \r. Everything else passes through byte for byte (COPY reads the rest literally).
#pragma once

#include "core/postgres_free.h"

#include <string>
#include <string_view>

namespace streamrec {

inline constexpr std::string_view copy_null_marker = "\\N";

// Appends `value` escaped for one COPY text field. Throws format_error when the value holds a
// NUL byte: no PostgreSQL text type can store one, and saying so here names the cause instead of
// an "invalid byte sequence" from the server.
void append_copy_escaped(std::string& out, std::string_view value);

// Appends `bytes` as a bytea hex literal, already escaped for COPY: the field text is "\\x0aff",
// which COPY reads as \x0aff and byteain as the two bytes 0a ff.
void append_copy_bytea(std::string& out, std::string_view bytes);

// Appends "\x" and the hex digits of `bytes`, unescaped (for array elements and JSON strings).
void append_bytea_hex(std::string& out, std::string_view bytes);

// Builds one COPY text line: fields joined by tabs, ended by '\n'. Holds no buffer of its own so
// many lines can be appended to one batch buffer.
class copy_line {
 public:
  explicit copy_line(std::string& out) : out_(&out) {}

  // A text value, escaped.
  void text(std::string_view value) {
    separate();
    append_copy_escaped(*out_, value);
  }
  // SQL NULL.
  void null() {
    separate();
    out_->append(copy_null_marker);
  }
  // Text the caller already escaped, or knows needs no escaping (numbers, t/f, timestamps).
  void raw(std::string_view escaped) {
    separate();
    out_->append(escaped);
  }
  // bytea as \x hex.
  void bytea(std::string_view bytes) {
    separate();
    append_copy_bytea(*out_, bytes);
  }
  // Starts a field whose text the caller appends to the returned buffer (escaped or safe).
  std::string& begin_field() {
    separate();
    return *out_;
  }
  // Ends the line. A line without fields is legal (zero-column COPY).
  void finish() { out_->push_back('\n'); }

 private:
  void separate() {
    if (!first_) out_->push_back('\t');
    first_ = false;
  }

  std::string* out_;
  bool first_ = true;
};

// True when an array element must be double-quoted to read back as itself: it is empty, equals
// NULL in any case, or holds braces, a comma, a double quote, a backslash or white space.
bool pg_array_element_needs_quotes(std::string_view element);

// Builds a PostgreSQL array literal such as {a,"b,c",NULL,{1,2}} (unescaped; the finished
// literal goes through append_copy_escaped like any other text value). Separators are derived
// from the text already written, so nested arrays need no bookkeeping by the caller.
class pg_array_literal {
 public:
  // Appends to `out`, which must outlive the builder.
  explicit pg_array_literal(std::string& out) : out_(&out), start_(out.size()) {}

  void begin_array() {
    separate();
    out_->push_back('{');
  }
  void end_array() { out_->push_back('}'); }
  // A text element, quoted and escaped when needed.
  void element(std::string_view text);
  // An element known to need no quotes (numbers, t/f, ISO timestamps): skips the scan.
  void plain_element(std::string_view text) {
    separate();
    out_->append(text);
  }
  void null_element() {
    separate();
    out_->append("NULL");
  }
  std::string& output() { return *out_; }

 private:
  // A comma goes before anything that does not directly follow an opening brace.
  void separate() {
    if (out_->size() > start_ && out_->back() != '{') out_->push_back(',');
  }

  std::string* out_;
  size_t start_;
};

}  // namespace streamrec
