#include "pg/outbox_chunks.h"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
}

namespace streamrec {
namespace {

// Numbers the capture keeps as PostgreSQL's output text: to_jsonb made a JSON number of a text
// that is one, and kept NaN and the infinities as strings.
bool is_number_type(uint32_t type) { return type == FLOAT4OID || type == FLOAT8OID || type == NUMERICOID; }

void scalar(const outbox_column& column, const outbox_value& value, JsonbValue* out) {
  switch (value.tag) {
    case outbox_tag::null:
      out->type = jbvNull;
      return;
    case outbox_tag::false_value:
    case outbox_tag::true_value:
      out->type = jbvBool;
      out->val.boolean = value.tag == outbox_tag::true_value;
      return;
    case outbox_tag::integer:
      out->type = jbvNumeric;
      out->val.numeric = int64_to_numeric(value.number);
      return;
    case outbox_tag::timestamp: {
      // A timestamp column's value: to_jsonb's ISO 8601 (a timestamptz in the session's zone).
      Oid type = column.type == TIMESTAMPOID ? TIMESTAMPOID : TIMESTAMPTZOID;
      char* buf = static_cast<char*>(palloc(MAXDATELEN + 1));
      char* text = JsonEncodeDateTime(buf, Int64GetDatum(value.number), type, nullptr);
      out->type = jbvString;
      out->val.string.val = text;
      out->val.string.len = static_cast<int>(strlen(text));
      return;
    }
    case outbox_tag::text: {
      int len = static_cast<int>(value.text.size());
      char* text = pnstrdup(value.text.data(), len);
      if (is_number_type(column.type) && IsValidJsonNumber(text, len)) {
        out->type = jbvNumeric;
        out->val.numeric = DatumGetNumeric(
            DirectFunctionCall3(numeric_in, CStringGetDatum(text), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
        return;
      }
      out->type = jbvString;
      out->val.string.val = text;
      out->val.string.len = len;
      return;
    }
    default:
      // Cannot happen: outbox_chunk::read refuses any other tag in a scalar's place.
      elog(ERROR, "unexpected outbox value tag %d", static_cast<int>(value.tag));
  }
}

// Dimension `dim` of an array from element *index on (as to_jsonb nests them); at the top, the
// array built.
JsonbValue* push_dimension(JsonbParseState** state, const outbox_chunk& chunk, const outbox_column& column,
                           const outbox_value& value, uint32_t dim, uint32_t* index) {
  pushJsonbValue(state, WJB_BEGIN_ARRAY, nullptr);
  uint32_t length = chunk.dimensions()[value.first_dimension + dim];
  for (uint32_t i = 0; i < length; i++) {
    if (dim + 1 == value.dimension_count) {
      JsonbValue element;
      scalar(column, chunk.elements()[value.first + *index], &element);
      pushJsonbValue(state, WJB_ELEM, &element);
      (*index)++;
    } else {
      push_dimension(state, chunk, column, value, dim + 1, index);
    }
  }
  return pushJsonbValue(state, WJB_END_ARRAY, nullptr);
}

// An array value; at the top, the array built.
JsonbValue* push_array(JsonbParseState** state, const outbox_chunk& chunk, const outbox_column& column,
                       const outbox_value& value) {
  if (value.dimension_count == 0) {
    pushJsonbValue(state, WJB_BEGIN_ARRAY, nullptr);
    return pushJsonbValue(state, WJB_END_ARRAY, nullptr);
  }
  uint32_t index = 0;
  return push_dimension(state, chunk, column, value, 0, &index);
}

}  // namespace

JsonbValue* outbox_value_jsonb(const outbox_chunk& chunk, const outbox_column& column, const outbox_value& value) {
  JsonbValue* out = static_cast<JsonbValue*>(palloc(sizeof(JsonbValue)));
  if (value.tag != outbox_tag::array) {
    scalar(column, value, out);
    return out;
  }
  JsonbParseState* state = nullptr;
  Jsonb* array = JsonbValueToJsonb(push_array(&state, chunk, column, value));
  out->type = jbvBinary;
  out->val.binary.data = &array->root;
  out->val.binary.len = static_cast<int>(VARSIZE(array) - VARHDRSZ);
  return out;
}

Jsonb* outbox_row_jsonb(const outbox_chunk& chunk, size_t row) {
  JsonbParseState* state = nullptr;
  pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
  const std::vector<outbox_column>& columns = chunk.columns();
  for (size_t c = 0; c < columns.size(); c++) {
    JsonbValue key;
    key.type = jbvString;
    key.val.string.val = const_cast<char*>(columns[c].name.data());
    key.val.string.len = static_cast<int>(columns[c].name.size());
    pushJsonbValue(&state, WJB_KEY, &key);
    const outbox_value& value = chunk.value(row, c);
    if (value.tag == outbox_tag::array) {
      push_array(&state, chunk, columns[c], value);
    } else {
      JsonbValue v;
      scalar(columns[c], value, &v);
      pushJsonbValue(&state, WJB_VALUE, &v);
    }
  }
  return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, nullptr));
}

bool outbox_takes_binary() {
  Oid schema = get_namespace_oid("streamrec", true);
  Oid outbox = OidIsValid(schema) ? get_relname_relid("sink_outbox", schema) : InvalidOid;
  return OidIsValid(outbox) && get_attnum(outbox, "data") != InvalidAttrNumber;
}

}  // namespace streamrec
