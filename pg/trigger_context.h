// The one check of how a C++ trigger function was called: by the trigger manager, and (for the
// pipelines' and the sinks' capture triggers) as the statement-level AFTER INSERT trigger with a
// transition table that the extension installs. A misuse is a clean ERROR (39P01) that says
// what installs the trigger.
#pragma once

#include "pg/error_boundary.h"

extern "C" {
#include "commands/trigger.h"
}

namespace streamrec {

// The trigger data of a call by the trigger manager; `function` names the function in the
// error, `hint` (may be empty) says what installs it.
TriggerData* trigger_data(FunctionCallInfo fcinfo, const char* function, const char* hint);

// The trigger data of an AFTER INSERT ... REFERENCING NEW TABLE ... FOR EACH STATEMENT trigger
// given at least `min_args` arguments; `arguments` ends the error message, saying which.
TriggerData* insert_statement_trigger_data(FunctionCallInfo fcinfo, const char* function, const char* hint,
                                           int min_args = 0, const char* arguments = "");

}  // namespace streamrec
