// SQL access to the librdkafka property policy (core/kafka/property_policy.h):
//  * streamrec._check_kafka_properties(jsonb) refuses a "kafka" option the calling role may not
//    set (the option checkers of sources, sinks and pipelines call it);
//  * streamrec._kafka_property_is_secret(text) tells the views which values to show as ***.
#include <map>
#include <string>

#include "core/kafka/property_policy.h"

#include "pg/error_boundary.h"

extern "C" {
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
}

namespace streamrec {
namespace {

// The object's members as palloc'd C strings (numbers and booleans as their JSON text, what
// `value #>> '{}'` gives the workers). Only PostgreSQL C calls: runs inside one pg_call.
struct PropertyArrays {
  int count;
  char** names;
  char** values;
  bool object;
};

void read_properties(Jsonb* json, PropertyArrays* out) {
  out->count = 0;
  out->object = JB_ROOT_IS_OBJECT(json) && !JB_ROOT_IS_SCALAR(json);
  if (!out->object) return;
  const int size = static_cast<int>(JB_ROOT_COUNT(json));
  out->names = static_cast<char**>(palloc0(sizeof(char*) * (size + 1)));
  out->values = static_cast<char**>(palloc0(sizeof(char*) * (size + 1)));
  JsonbIterator* it = JsonbIteratorInit(&json->root);
  JsonbValue v;
  JsonbIteratorToken token;
  char* name = nullptr;
  while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
    if (token == WJB_KEY) {
      name = pnstrdup(v.val.string.val, v.val.string.len);
    } else if (token == WJB_VALUE && name != nullptr && out->count < size) {
      char* value;
      switch (v.type) {
        case jbvString:
          value = pnstrdup(v.val.string.val, v.val.string.len);
          break;
        case jbvNumeric:
          value = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
          break;
        case jbvBool:
          value = pstrdup(v.val.boolean ? "true" : "false");
          break;
        default:
          value = pstrdup("");
          break;
      }
      out->names[out->count] = name;
      out->values[out->count] = value;
      out->count++;
      name = nullptr;
    }
  }
}

Datum sql_check_kafka_properties(FunctionCallInfo fcinfo) {
  PropertyArrays arrays{};
  PropertyArrays* target = &arrays;
  pg_call([fcinfo, target] { read_properties(PG_GETARG_JSONB_P(0), target); });
  if (!arrays.object)
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "option \"kafka\" must map librdkafka property names to values", "",
                "Example: {\"kafka\": {\"security.protocol\": \"SASL_SSL\", \"sasl.mechanism\": \"PLAIN\"}}.");
  std::map<std::string, std::string> properties;
  for (int i = 0; i < arrays.count; i++) properties[arrays.names[i]] = arrays.values[i];
  // The calling role, not a SECURITY DEFINER owner: the option checkers run with the caller's rights.
  const bool superuser = pg_call([] { return superuser_arg(GetUserId()); });
  const auto problem = check_kafka_properties(properties, superuser);
  if (!problem) return static_cast<Datum>(0);
  // Raised through pg_call so the hint (the full list of allowed properties) is not cut short.
  const int sqlstate = problem->access == kafka_property_access::superuser ? ERRCODE_INSUFFICIENT_PRIVILEGE
                                                                           : ERRCODE_INVALID_PARAMETER_VALUE;
  const char* message = problem->message.c_str();
  const char* detail = problem->detail.c_str();
  const char* hint = problem->hint.c_str();
  pg_call([sqlstate, message, detail, hint] {
    ereport(ERROR, (errcode(sqlstate), errmsg("%s", message), detail[0] != '\0' ? errdetail("%s", detail) : 0,
                    errhint("%s", hint)));
  });
  return static_cast<Datum>(0);
}

Datum sql_kafka_property_is_secret(FunctionCallInfo fcinfo) {
  const char* name = pg_call([fcinfo] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
  return BoolGetDatum(kafka_property_is_secret(std::string_view(name)));
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_check_kafka_properties, streamrec::sql_check_kafka_properties)
STREAMREC_SQL_FUNCTION(streamrec_kafka_property_is_secret, streamrec::sql_kafka_property_is_secret)
