// COPY text escaping, array literals and bytea hex: the exact bytes COPY FROM will read.
#include <gtest/gtest.h>

#include <string>

#include "core/formats/copy_text.h"
#include "core/formats/format_error.h"

namespace streamrec {
namespace {

std::string escaped(std::string_view value) {
  std::string out;
  append_copy_escaped(out, value);
  return out;
}

TEST(CopyText, EscapesBackslashTabNewlineAndCarriageReturn) {
  EXPECT_EQ(escaped("a\\b\tc\nd\re"), "a\\\\b\\tc\\nd\\re");
  EXPECT_EQ(escaped("\\"), "\\\\");
  EXPECT_EQ(escaped("\\N"), "\\\\N");  // the text "\N" is not NULL
  EXPECT_EQ(escaped("\\."), "\\\\.");  // nor the end-of-data marker
  EXPECT_EQ(escaped("\n\n"), "\\n\\n");
}

TEST(CopyText, PassesEverythingElseThrough) {
  EXPECT_EQ(escaped(""), "");
  EXPECT_EQ(escaped("plain text, \"quotes\" 'and' {braces}"), "plain text, \"quotes\" 'and' {braces}");
  EXPECT_EQ(escaped("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");
  EXPECT_EQ(escaped("\b\f\v"), "\b\f\v");
}

TEST(CopyText, RejectsNulBytes) {
  try {
    escaped(std::string("ab\0c", 4));
    FAIL() << "expected format_error";
  } catch (const format_error& e) {
    EXPECT_NE(std::string(e.what()).find("NUL byte at offset 2"), std::string::npos) << e.what();
  }
}

TEST(CopyText, LineJoinsFieldsWithTabs) {
  std::string out = "earlier\n";
  copy_line line(out);
  line.text("a\tb");
  line.null();
  line.raw("42");
  line.bytea(std::string("\x0a\xff", 2));
  line.text("");
  line.finish();
  EXPECT_EQ(out, "earlier\na\\tb\t\\N\t42\t\\\\x0aff\t\n");
}

TEST(CopyText, EmptyLineHasOnlyTheTerminator) {
  std::string out;
  copy_line line(out);
  line.finish();
  EXPECT_EQ(out, "\n");
}

TEST(CopyText, ByteaHex) {
  std::string out;
  append_copy_bytea(out, "");
  EXPECT_EQ(out, "\\\\x");
  out.clear();
  append_bytea_hex(out, std::string("\x00\x01\xab\xcd\xef", 5));
  EXPECT_EQ(out, "\\x0001abcdef");
}

TEST(CopyText, ArrayElementQuotingFollowsArrayOut) {
  EXPECT_FALSE(pg_array_element_needs_quotes("abc"));
  EXPECT_FALSE(pg_array_element_needs_quotes("1.5e3"));
  EXPECT_FALSE(pg_array_element_needs_quotes("NULLS"));
  EXPECT_TRUE(pg_array_element_needs_quotes(""));
  EXPECT_TRUE(pg_array_element_needs_quotes("NULL"));
  EXPECT_TRUE(pg_array_element_needs_quotes("nUlL"));
  for (const char* special : {"a,b", "a b", "a\tb", "a\nb", "{", "}", "\"", "\\", "a\vb", "a\fb", "a\rb"}) {
    EXPECT_TRUE(pg_array_element_needs_quotes(special)) << special;
  }
}

TEST(CopyText, ArrayLiteral) {
  std::string out;
  pg_array_literal literal(out);
  literal.begin_array();
  literal.element("a");
  literal.element("b,c");
  literal.null_element();
  literal.element("NULL");
  literal.element("");
  literal.element("say \"hi\"");
  literal.element("back\\slash");
  literal.element("two words");
  literal.plain_element("42");
  literal.end_array();
  EXPECT_EQ(out, R"({a,"b,c",NULL,"NULL","","say \"hi\"","back\\slash","two words",42})");
}

TEST(CopyText, NestedAndEmptyArrays) {
  std::string out;
  pg_array_literal literal(out);
  literal.begin_array();
  literal.begin_array();
  literal.plain_element("1");
  literal.plain_element("2");
  literal.end_array();
  literal.begin_array();
  literal.end_array();
  literal.begin_array();
  literal.null_element();
  literal.end_array();
  literal.end_array();
  EXPECT_EQ(out, "{{1,2},{},{NULL}}");

  std::string empty;
  pg_array_literal none(empty);
  none.begin_array();
  none.end_array();
  EXPECT_EQ(empty, "{}");
}

TEST(CopyText, ArrayLiteralAppendsAfterExistingText) {
  std::string out = "prefix:";
  pg_array_literal literal(out);
  literal.begin_array();
  literal.element("x");
  literal.end_array();
  EXPECT_EQ(out, "prefix:{x}");
}

TEST(CopyText, ArrayLiteralIsCopyEscapedAsAWhole) {
  std::string literal_text;
  pg_array_literal literal(literal_text);
  literal.begin_array();
  literal.element("back\\slash");
  literal.element("tab\there");
  literal.end_array();
  // Array quoting first, then COPY's own escaping doubles every backslash.
  EXPECT_EQ(escaped(literal_text), R"({"back\\\\slash","tab\there"})");
}

}  // namespace
}  // namespace streamrec
