// Datums of decoded cells (see cell_datums.h).
#include "pg/cell_datums.h"

extern "C" {
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
}

namespace streamrec {

namespace {

// PostgreSQL's epoch (2000-01-01) after the Unix epoch (1970-01-01), in days and microseconds:
// cells count from the Unix epoch, Datums from PostgreSQL's.
constexpr int64 kPostgresEpochDays = POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE;
constexpr int64 kPostgresEpochMicros = kPostgresEpochDays * SECS_PER_DAY * USECS_PER_SEC;

// A wall clock without zone placed in the session's time zone, exactly as timestamptz_in places
// it (DetermineTimeZoneOffset on its fields, then tm2timestamp). Consecutive events mostly share
// their second, so the offset of the last second is kept.
Datum local_timestamptz(int64 unix_local_micros) {
  static int64 cached_second = PG_INT64_MIN;
  static pg_tz* cached_zone = nullptr;
  static int cached_offset = 0;
  Timestamp local = unix_local_micros - kPostgresEpochMicros;
  struct pg_tm tm;
  fsec_t fsec;
  if (timestamp2tm(local, nullptr, &tm, &fsec, nullptr, nullptr) != 0)
    ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
  int64 second = local / USECS_PER_SEC - (local % USECS_PER_SEC < 0 ? 1 : 0);
  int tz;
  if (second == cached_second && session_timezone == cached_zone) {
    tz = cached_offset;
  } else {
    tz = DetermineTimeZoneOffset(&tm, session_timezone);
    cached_second = second;
    cached_zone = session_timezone;
    cached_offset = tz;
  }
  TimestampTz result;
  if (tm2timestamp(&tm, fsec, &tz, &result) != 0 || !IS_VALID_TIMESTAMP(result))
    ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
  return TimestampTzGetDatum(result);
}

// True when every byte is ASCII and none is NUL: text every server encoding accepts as it is,
// so pg_verify_mbstr (which would say the same) is skipped. Eight bytes at a time.
bool plain_ascii(const char* bytes, uint32 length) {
  constexpr uint64 ones = UINT64CONST(0x0101010101010101);
  constexpr uint64 highs = UINT64CONST(0x8080808080808080);
  uint32 i = 0;
  for (; i + 8 <= length; i += 8) {
    uint64 word;
    memcpy(&word, bytes + i, sizeof word);
    if (((word - ones) & ~word & highs) != 0 || (word & highs) != 0) return false;
  }
  for (; i < length; i++)
    if (bytes[i] == '\0' || (bytes[i] & 0x80) != 0) return false;
  return true;
}

// As COPY FROM checks its input: bytes invalid in the database encoding (or a NUL) are an error.
void verify_encoding(const char* bytes, uint32 length) {
  if (!plain_ascii(bytes, length)) pg_verify_mbstr(GetDatabaseEncoding(), bytes, static_cast<int>(length), false);
}

}  // namespace

cell_type cell_type_of(Oid type, int32 typmod) {
  switch (type) {
    case TEXTOID:
      return cell_type::text;
    case VARCHAROID:
      return typmod < 0 ? cell_type::text : cell_type::input;
    case INT2OID:
      return cell_type::int2;
    case INT4OID:
      return cell_type::int4;
    case INT8OID:
      return cell_type::int8;
    case BOOLOID:
      return cell_type::boolean;
    case DATEOID:
      return cell_type::date;
    case TIMESTAMPOID:
      return typmod < 0 ? cell_type::timestamp : cell_type::input;
    case TIMESTAMPTZOID:
      return typmod < 0 ? cell_type::timestamptz : cell_type::input;
    default:
      return cell_type::input;
  }
}

void prepare_cell_column(Form_pg_attribute att, CellColumn* column) {
  column->attnum = att->attnum;
  column->type = att->atttypid;
  column->typmod = att->atttypmod;
  column->fast = cell_type_of(att->atttypid, att->atttypmod);
  Oid function;
  getTypeInputInfo(att->atttypid, &function, &column->ioparam);
  fmgr_info(function, &column->input);
}

Datum cell_datum(const CellColumn* column, const typed_cell& cell, const char* text, bool* isnull) {
  *isnull = false;
  switch (cell.kind) {
    case cell_kind::null:
      *isnull = true;
      return (Datum)0;
    case cell_kind::text: {
      const char* bytes = text + cell.value;
      verify_encoding(bytes, cell.length);
      return PointerGetDatum(cstring_to_text_with_len(bytes, static_cast<int>(cell.length)));
    }
    case cell_kind::input: {
      const char* bytes = text + cell.value;
      verify_encoding(bytes, cell.length);
      char* string = pnstrdup(bytes, cell.length);
      // The same call COPY FROM makes; strict input functions are not called for NULL.
      return InputFunctionCall(const_cast<FmgrInfo*>(&column->input), string, column->ioparam, column->typmod);
    }
    case cell_kind::integer:
      if (column->fast == cell_type::int2) return Int16GetDatum(static_cast<int16>(cell.value));
      if (column->fast == cell_type::int4) return Int32GetDatum(static_cast<int32>(cell.value));
      return Int64GetDatum(cell.value);
    case cell_kind::boolean:
      return BoolGetDatum(cell.value != 0);
    case cell_kind::date:
      return DateADTGetDatum(static_cast<DateADT>(cell.value - kPostgresEpochDays));
    case cell_kind::timestamp:
      return TimestampGetDatum(cell.value - kPostgresEpochMicros);
    case cell_kind::local_timestamp:
      return local_timestamptz(cell.value);
  }
  ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("unknown decoded cell")));
  return (Datum)0;
}

}  // namespace streamrec
