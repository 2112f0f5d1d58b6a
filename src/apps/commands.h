#pragma once
// Subcommands of the `larserve` CLI. Each Register* adds its subcommand to the app and sets
// *run to the function that executes it after parsing; the function returns the exit code.
#include <functional>

#include <CLI/CLI.hpp>

namespace larserve::apps {

using RunFn = std::function<int()>;

void RegisterSim(CLI::App& app, RunFn* run);
void RegisterDisplay(CLI::App& app, RunFn* run);
void RegisterPatches(CLI::App& app, RunFn* run);
void RegisterBuild(CLI::App& app, RunFn* run);
void RegisterExec(CLI::App& app, RunFn* run);
void RegisterInfer(CLI::App& app, RunFn* run);
void RegisterReco(CLI::App& app, RunFn* run);
void RegisterServe(CLI::App& app, RunFn* run);  // built with the server (LARSERVE_HAVE_SERVE)

// Prints "larserve <command>: error: <message>" to stderr and returns the exit code 1.
int Fail(const char* command, const std::string& message);

// Checks a --delta-rays value with io::ParseDeltaRays ("track", "em" or "size:E"), so that a
// bad value is refused while parsing, with the parser's message naming it.
CLI::Validator DeltaRaysValidator();

}  // namespace larserve::apps
