// streamrec.kafka_partition(key, partitions): the partition a keyed producer using the Java
// clients' partitioner sends `key` to (core/kafka/partitioner.h). With the partitioning rule of
// streamrec.assign_partitions it tells which server owns a key's state: the one to route a read
// to, or the rows to copy when a partition moves to another server.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/kafka/partitioner.h"

#include "pg/error_boundary.h"

extern "C" {
#include "utils/builtins.h"
}

namespace streamrec {
namespace {

struct KeyBytes {
  const char* data;
  int length;
};

Datum sql_kafka_partition(FunctionCallInfo fcinfo) {
  const std::int32_t partitions = PG_GETARG_INT32(1);
  if (partitions < 1)
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "partitions must be at least 1, not " + std::to_string(partitions), "",
                "Pass the topic's partition count (kcat -L -t <topic> shows it).");
  KeyBytes key{};
  KeyBytes* out = &key;
  pg_call([fcinfo, out] {
    text* value = PG_GETARG_TEXT_PP(0);
    out->data = VARDATA_ANY(value);
    out->length = static_cast<int>(VARSIZE_ANY_EXHDR(value));
  });
  return Int32GetDatum(
      kafka_key_partition(std::string_view(key.data, static_cast<std::size_t>(key.length)), partitions));
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_kafka_partition, streamrec::sql_kafka_partition)
