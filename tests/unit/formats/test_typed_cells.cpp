// Typed cells from COPY text lines: fields split and unescaped as COPY FROM reads them, fast
// forms converted exactly, everything else left to the column type's input function.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/formats/format_error.h"
#include "core/formats/timestamp_text.h"
#include "core/formats/typed_cells.h"

namespace streamrec {
namespace {

std::vector<typed_cell> cells_of(typed_rows& rows, const std::string& line, const std::vector<cell_type>& types,
                                 column_mask present = {}) {
  if (present.empty()) present.assign(types.size(), true);
  const size_t first = rows.append_line(line, present, types);
  return std::vector<typed_cell>(rows.cells(first), rows.cells(first) + (rows.cell_count() - first));
}

int64_t micros(const char* iso) { return *parse_iso8601(iso); }

TEST(TypedCells, SplitsAndUnescapesFieldsAsCopyReadsThem) {
  typed_rows rows;
  const auto cells = cells_of(rows, "a\\tb\\\\c\t\\N\t\\\\N\t\\x41\\101\\q\t\n",
                              {cell_type::text, cell_type::text, cell_type::text, cell_type::text, cell_type::input});
  ASSERT_EQ(cells.size(), 5u);
  EXPECT_EQ(cells[0].kind, cell_kind::text);
  EXPECT_EQ(rows.text_of(cells[0]), "a\tb\\c");
  EXPECT_EQ(cells[1].kind, cell_kind::null);
  EXPECT_EQ(rows.text_of(cells[2]), "\\N");  // an escaped backslash: the text, not NULL
  EXPECT_EQ(rows.text_of(cells[3]), "AAq");
  EXPECT_EQ(cells[4].kind, cell_kind::input);
  EXPECT_EQ(rows.text_of(cells[4]), "");
}

TEST(TypedCells, OnlyPresentBindingsHaveFields) {
  typed_rows rows;
  const auto cells = cells_of(rows, "1\tx\n", {cell_type::int4, cell_type::text, cell_type::text}, {true, false, true});
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(cells[0].kind, cell_kind::integer);
  EXPECT_EQ(cells[0].value, 1);
  EXPECT_EQ(rows.text_of(cells[1]), "x");
  EXPECT_THROW(rows.append_line("1\n", {true, true}, {cell_type::int4, cell_type::int4}), format_error);
  EXPECT_THROW(rows.append_line("1\t2\t3\n", {true, true}, {cell_type::int4, cell_type::int4}), format_error);
  EXPECT_NO_THROW(rows.append_line("\n", {false}, {cell_type::int4}));
}

TEST(TypedCells, IntegersInRangeAreValuesTheRestGoesToTheInputFunction) {
  typed_rows rows;
  const auto cells = cells_of(rows, "-32768\t32768\t2147483647\t-2147483649\t123456789012345678\t+1\t 1\t1.0\t\n",
                              {cell_type::int2, cell_type::int2, cell_type::int4, cell_type::int4, cell_type::int8,
                               cell_type::int4, cell_type::int4, cell_type::int8, cell_type::int8});
  EXPECT_EQ(cells[0].kind, cell_kind::integer);
  EXPECT_EQ(cells[0].value, -32768);
  EXPECT_EQ(cells[1].kind, cell_kind::input);  // int2in reports the overflow
  EXPECT_EQ(cells[2].value, 2147483647);
  EXPECT_EQ(cells[3].kind, cell_kind::input);
  EXPECT_EQ(cells[4].value, 123456789012345678);
  for (int i = 5; i < 9; ++i) EXPECT_EQ(cells[i].kind, cell_kind::input) << i;
}

TEST(TypedCells, BooleansAndDates) {
  typed_rows rows;
  const auto cells = cells_of(rows, "t\tfalse\tyes\t2024-02-29\t2023-02-29\t0000-01-01\t2024-6-28\n",
                              {cell_type::boolean, cell_type::boolean, cell_type::boolean, cell_type::date,
                               cell_type::date, cell_type::date, cell_type::date});
  EXPECT_EQ(cells[0].kind, cell_kind::boolean);
  EXPECT_EQ(cells[0].value, 1);
  EXPECT_EQ(cells[1].value, 0);
  EXPECT_EQ(cells[2].kind, cell_kind::input);
  EXPECT_EQ(cells[3].kind, cell_kind::date);
  EXPECT_EQ(cells[3].value, days_from_civil(2024, 2, 29));
  EXPECT_EQ(cells[4].kind, cell_kind::input);  // date_in reports the day out of range
  EXPECT_EQ(cells[5].kind, cell_kind::input);
  EXPECT_EQ(cells[6].kind, cell_kind::input);
}

TEST(TypedCells, TimestampsWithAZoneAreInstantsWithoutOneAreWallClocks) {
  typed_rows rows;
  auto one = [&](const std::string& text, cell_type type = cell_type::timestamptz) {
    return cells_of(rows, text + "\n", {type})[0];
  };
  typed_cell c = one("2024-06-28T13:00:00.100Z");
  EXPECT_EQ(c.kind, cell_kind::timestamp);
  EXPECT_EQ(c.value, micros("2024-06-28T13:00:00.100Z"));
  c = one("2024-06-28 15:30:00.123456+02:30");
  EXPECT_EQ(c.kind, cell_kind::timestamp);
  EXPECT_EQ(c.value, micros("2024-06-28T13:00:00.123456Z"));
  c = one("2024-06-28 10:00:00-03");
  EXPECT_EQ(c.value, micros("2024-06-28T13:00:00Z"));
  c = one("2024-06-28 13:00:00");
  EXPECT_EQ(c.kind, cell_kind::local_timestamp);
  EXPECT_EQ(c.value, micros("2024-06-28T13:00:00Z"));
  // timestamp without time zone ignores a zone, as timestamp_in does.
  c = one("2024-06-28T15:00:00+02:00", cell_type::timestamp);
  EXPECT_EQ(c.kind, cell_kind::timestamp);
  EXPECT_EQ(c.value, micros("2024-06-28T15:00:00Z"));
  // Anything else is PostgreSQL's to read (or refuse).
  for (const char* other :
       {"2024-06-28", "2024-06-28 13:00", "2024-06-28 24:00:00", "2024-06-28 13:00:60", "2024-06-28 13:00:00.1234567Z",
        "2024-06-28 13:00:00 UTC", "2024-06-28 13:00:00+15", "2024-06-28T13:00:00.Z", "now", "epoch", "1719579600000",
        "2024-13-01 00:00:00Z", "2024-06-28 13:00:00+02:0", "0000-06-28 13:00:00Z"}) {
    EXPECT_EQ(one(other).kind, cell_kind::input) << other;
  }
}

}  // namespace
}  // namespace streamrec
