// larserve: one CLI for the whole chain (simulation, display, patches, build, exec; later serve).
#include <cstdio>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "larserve/version.h"

int main(int argc, char** argv) {
  CLI::App app{
      "larserve: LArTPC simulation, hit classification and fast ML inference as a service.\n"
      "Run `larserve <command> --help` for the options of a command."};
  app.set_version_flag("--version", std::string("larserve ") + larserve::kVersion);
  app.require_subcommand(1);
  larserve::apps::RunFn run;
  larserve::apps::RegisterSim(app, &run);
  larserve::apps::RegisterDisplay(app, &run);
  larserve::apps::RegisterPatches(app, &run);
  larserve::apps::RegisterBuild(app, &run);
  larserve::apps::RegisterExec(app, &run);
  larserve::apps::RegisterInfer(app, &run);
  larserve::apps::RegisterReco(app, &run);
#ifdef LARSERVE_HAVE_SERVE
  larserve::apps::RegisterServe(app, &run);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return run ? run() : 1;
}
