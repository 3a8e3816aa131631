// The pipelines' dispatcher: one statement-level AFTER INSERT trigger per input table
// (streamrec_pipelines, function streamrec._pipeline_dispatch()) reads the statement's rows once,
// into the typed columns of that table's BatchColumns layout, and hands the same batch to every
// pipeline wired to the table (streamrec.pipeline_inputs, kept by enable_pipeline and
// disable_pipeline), in the registry's order, with SPI connected. A pipeline's error is
// recorded against that pipeline and fails the statement.
#pragma once

#include <cstddef>

#include "pg/transition_rows.h"

namespace streamrec {

// The columns each input table's batch carries, in this order.
namespace click_columns {
enum : std::size_t { click_id, user_id, product_id, event_type, event_time };
}
namespace purchase_columns {
enum : std::size_t { user_id, product_id, quantity, purchase_time };
}
namespace checkout_columns {
enum : std::size_t { checkout_id, user_id, product_id, checkout_time };
}

// One pipeline's work on one table's batch. It runs with SPI connected.
using BatchHandler = void (*)(const TransitionRows& batch);

// Each pipeline's handler for each table it reads, defined beside the pipeline.
void similar_products_clicks(const TransitionRows& batch);
void similar_products_purchases(const TransitionRows& batch);
void trending_clicks(const TransitionRows& batch);
void category_affinity_clicks(const TransitionRows& batch);
void attribution_clicks(const TransitionRows& batch);
void attribution_checkouts(const TransitionRows& batch);

}  // namespace streamrec
