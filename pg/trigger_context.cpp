#include "pg/trigger_context.h"

#include <string>

namespace streamrec {

TriggerData* trigger_data(FunctionCallInfo fcinfo, const char* function, const char* hint) {
  if (!CALLED_AS_TRIGGER(fcinfo))
    throw Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, std::string(function) + " must be called as a trigger", "",
                hint);
  return reinterpret_cast<TriggerData*>(fcinfo->context);
}

TriggerData* insert_statement_trigger_data(FunctionCallInfo fcinfo, const char* function, const char* hint,
                                           int min_args, const char* arguments) {
  TriggerData* trigger = trigger_data(fcinfo, function, hint);
  if (!TRIGGER_FIRED_AFTER(trigger->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(trigger->tg_event) ||
      !TRIGGER_FIRED_BY_INSERT(trigger->tg_event) || trigger->tg_newtable == nullptr ||
      trigger->tg_trigger->tgnargs < min_args)
    throw Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                std::string(function) +
                    " must be an AFTER INSERT ... REFERENCING NEW TABLE ... FOR EACH STATEMENT trigger" + arguments,
                "", hint);
  return trigger;
}

}  // namespace streamrec
