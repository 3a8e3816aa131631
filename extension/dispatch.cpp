// The dispatcher trigger and the pipelines' former trigger entry points (see dispatch.h).
#include "extension/dispatch.h"

#include <cstring>
#include <string>
#include <vector>

#include "pg/error_boundary.h"
#include "pg/pipeline_stats.h"
#include "pg/spi.h"
#include "pg/trigger_context.h"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace streamrec {
namespace {

// An input table: its name in schema streamrec and the columns its batch carries.
struct InputTable {
  const char* name;
  std::vector<ColumnRequest> columns;
};

const InputTable kClicks{"clicks",
                         {{"click_id", ColumnKind::text},
                          {"user_id", ColumnKind::text},
                          {"product_id", ColumnKind::text},
                          {"event_type", ColumnKind::text},
                          {"event_time", ColumnKind::timestamptz}}};
const InputTable kPurchases{"purchases",
                            {{"user_id", ColumnKind::text},
                             {"product_id", ColumnKind::text},
                             {"quantity", ColumnKind::int32},
                             {"purchase_time", ColumnKind::timestamptz}}};
const InputTable kCheckouts{"checkouts",
                            {{"checkout_id", ColumnKind::text},
                             {"user_id", ColumnKind::text},
                             {"product_id", ColumnKind::text},
                             {"checkout_time", ColumnKind::timestamptz}}};

// Every pipeline's handler per table.
struct Route {
  const char* pipeline;
  const InputTable* table;
  BatchHandler handler;
};

const Route kRoutes[] = {
    {"similar_products", &kClicks, similar_products_clicks},
    {"similar_products", &kPurchases, similar_products_purchases},
    {"trending", &kClicks, trending_clicks},
    {"category_affinity", &kClicks, category_affinity_clicks},
    {"attribution", &kClicks, attribution_clicks},
    {"attribution", &kCheckouts, attribution_checkouts},
};

const InputTable* input_table(TriggerData* trigger) {
  Relation rel = trigger->tg_relation;
  Oid schema = pg_call([] { return get_namespace_oid("streamrec", true); });
  if (RelationGetNamespace(rel) == schema)
    for (const InputTable* table : {&kClicks, &kPurchases, &kCheckouts})
      if (strcmp(RelationGetRelationName(rel), table->name) == 0) return table;
  throw Error(
      ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
      std::string("streamrec._pipeline_dispatch() does not serve table \"") + RelationGetRelationName(rel) + "\"", "",
      "streamrec.enable_pipeline() installs it on the tables its pipelines read.");
}

// Runs one pipeline's handler; its error is recorded against it and fails the statement.
void run_handler(const char* pipeline, BatchHandler handler, const TransitionRows& batch) {
  try {
    handler(batch);
  } catch (const std::exception& e) {
    record_pipeline_error(pipeline, e.what());
    throw;
  }
}

KeptPlan wired_pipelines(
    "SELECT i.pipeline FROM streamrec.pipeline_inputs i JOIN streamrec.pipeline_kinds k ON k.name = i.pipeline"
    " WHERE i.rel = $1 ORDER BY k.list_order",
    {OIDOID});

Datum pipeline_dispatch(FunctionCallInfo fcinfo) {
  TriggerData* trigger =
      insert_statement_trigger_data(fcinfo, "_pipeline_dispatch", "streamrec.enable_pipeline() installs it.");
  const InputTable* table = input_table(trigger);
  spi_connect();
  pg_call([trigger] { return SPI_register_trigger_data(trigger); });
  uint64 n = wired_pipelines.run({ObjectIdGetDatum(RelationGetRelid(trigger->tg_relation))}, true);
  std::vector<std::string> names;
  for (uint64 r = 0; r < n; r++) names.push_back(spi_text(r, 1).value_or(""));
  std::vector<const Route*> routes;
  for (const std::string& name : names)
    for (const Route& route : kRoutes)
      if (route.table == table && name == route.pipeline) routes.push_back(&route);
  if (!routes.empty()) {
    TransitionRows batch(trigger, table->columns);
    for (const Route* route : routes) run_handler(route->pipeline, route->handler, batch);
  }
  spi_finish();
  return PointerGetDatum(nullptr);
}

// A former per-pipeline trigger (bound by the install scripts of 0.1 and 0.2, whose schema
// the library serves until ALTER EXTENSION UPDATE): the one pipeline on the batch.
Datum single_pipeline(FunctionCallInfo fcinfo, const char* pipeline, const InputTable& table, BatchHandler handler) {
  TriggerData* trigger = insert_statement_trigger_data(fcinfo, pipeline, "streamrec.enable_pipeline() installs it.");
  spi_connect();
  pg_call([trigger] { return SPI_register_trigger_data(trigger); });
  TransitionRows batch(trigger, table.columns);
  run_handler(pipeline, handler, batch);
  spi_finish();
  return PointerGetDatum(nullptr);
}

Datum similar_products_trigger(FunctionCallInfo fcinfo) {
  return single_pipeline(fcinfo, "similar_products", kClicks, similar_products_clicks);
}
Datum user_purchases_trigger(FunctionCallInfo fcinfo) {
  return single_pipeline(fcinfo, "similar_products", kPurchases, similar_products_purchases);
}
Datum trending_trigger(FunctionCallInfo fcinfo) {
  return single_pipeline(fcinfo, "trending", kClicks, trending_clicks);
}
Datum category_affinity_trigger(FunctionCallInfo fcinfo) {
  return single_pipeline(fcinfo, "category_affinity", kClicks, category_affinity_clicks);
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_pipeline_dispatch, streamrec::pipeline_dispatch)
STREAMREC_SQL_FUNCTION(streamrec_similar_products_trigger, streamrec::similar_products_trigger)
STREAMREC_SQL_FUNCTION(streamrec_user_purchases_trigger, streamrec::user_purchases_trigger)
STREAMREC_SQL_FUNCTION(streamrec_trending_trigger, streamrec::trending_trigger)
STREAMREC_SQL_FUNCTION(streamrec_category_affinity_trigger, streamrec::category_affinity_trigger)
