#include "larserve/sim/particle.h"

#include <cstdlib>

namespace larserve::sim {
namespace {
struct Species {
  int pdg;
  std::string_view name;
  double mass;
  int charge;
};
constexpr Species kSpecies[] = {
    {pdg::kElectron, "e-", 0.51099895, -1},
    {pdg::kPositron, "e+", 0.51099895, 1},
    {pdg::kMuMinus, "mu-", 105.6583755, -1},
    {pdg::kMuPlus, "mu+", 105.6583755, 1},
    {pdg::kGamma, "gamma", 0.0, 0},
    {pdg::kPiZero, "pi0", 134.9768, 0},
    {pdg::kPiPlus, "pi+", 139.57039, 1},
    {pdg::kPiMinus, "pi-", 139.57039, -1},
    {pdg::kProton, "proton", 938.27208816, 1},
    {pdg::kNeutron, "neutron", 939.56542052, 0},
};
const Species* Find(int code) {
  for (const auto& s : kSpecies) {
    if (s.pdg == code) return &s;
  }
  return nullptr;
}
}  // namespace

double MassMeV(int code) {
  const Species* s = Find(code);
  return s ? s->mass : 0.0;
}
int Charge(int code) {
  const Species* s = Find(code);
  return s ? s->charge : 0;
}
bool IsKnownPdg(int code) { return Find(code) != nullptr; }
std::string_view PdgName(int code) {
  const Species* s = Find(code);
  return s ? s->name : std::string_view("unknown");
}
int PdgFromName(std::string_view name) {
  for (const auto& s : kSpecies) {
    if (s.name == name) return s.pdg;
  }
  if (name == "p") return pdg::kProton;
  if (name == "n") return pdg::kNeutron;
  return 0;
}

std::string_view ProcessName(Process p) {
  switch (p) {
    case Process::kPrimary:
      return "primary";
    case Process::kDecay:
      return "decay";
    case Process::kCapture:
      return "capture";
    case Process::kIonisation:
      return "ionisation";
    case Process::kConversion:
      return "conversion";
    case Process::kCompton:
      return "compton";
    case Process::kBrems:
      return "brems";
    case Process::kHadronic:
      return "hadronic";
    case Process::kAnnihilation:
      return "annihilation";
    case Process::kPhotoelectric:
      return "photoelectric";
  }
  return "unknown";
}

std::string_view CategoryName(Category c) {
  switch (c) {
    case Category::kNone:
      return "none";
    case Category::kTrack:
      return "track";
    case Category::kShower:
      return "shower";
    case Category::kMichel:
      return "michel";
    case Category::kDelta:
      return "delta";
  }
  return "unknown";
}

}  // namespace larserve::sim
