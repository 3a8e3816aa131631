// streamrec-datagen: command-line front end; everything else lives in the streamrec_datagen
// library so it is unit-tested.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "tools/datagen/datagen_options.h"
#include "tools/datagen/datagen_run.h"
#include "tools/datagen/record_encoder.h"

namespace {

std::atomic<bool> stop_requested{false};

// Ctrl-C ends a --rate run cleanly: flush, deliver what was produced, print the summary.
extern "C" void request_stop(int) { stop_requested.store(true); }

}  // namespace

int main(int argc, char** argv) {
  using namespace streamrec::datagen;
  datagen_options options;
  try {
    options = parse_datagen_arguments(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const usage_error& e) {
    std::cerr << "streamrec-datagen: " << e.what() << "\nTry 'streamrec-datagen --help'.\n";
    return 2;
  }
  if (options.help) {
    std::cout << datagen_usage();
    return 0;
  }
  try {
    if (options.print_schema) {
      const record_generator generator(options.generator);
      if (options.format == data_format::protobuf) {
        std::cout << protobuf_schema_text(options.generator.kind, generator.fields());
      } else {
        std::cout << avro_schema_json(options.generator.kind, generator.fields()) << "\n";
      }
      return 0;
    }
    std::signal(SIGINT, request_stop);
    std::signal(SIGTERM, request_stop);
    const run_summary summary = run_datagen(options, &stop_requested);
    if (!options.quiet) std::cerr << describe_summary(options, summary) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "streamrec-datagen: " << e.what() << "\n";
    return 1;
  }
}
