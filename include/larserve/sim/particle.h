#pragma once
// Particle species, creation processes and truth categories of the simulation.
#include <cstdint>
#include <string_view>

namespace larserve::sim {

namespace pdg {
inline constexpr int kElectron = 11;
inline constexpr int kPositron = -11;
inline constexpr int kMuMinus = 13;
inline constexpr int kMuPlus = -13;
inline constexpr int kGamma = 22;
inline constexpr int kPiZero = 111;
inline constexpr int kPiPlus = 211;
inline constexpr int kPiMinus = -211;
inline constexpr int kProton = 2212;
inline constexpr int kNeutron = 2112;
}  // namespace pdg

// Masses in MeV/c^2 (PDG 2024).
double MassMeV(int pdg_code);
// Charge in units of e.
int Charge(int pdg_code);
bool IsKnownPdg(int pdg_code);
// "e-", "mu+", "gamma", "pi0", "proton", ... and the reverse; 0 if unknown.
std::string_view PdgName(int pdg_code);
int PdgFromName(std::string_view name);

// How a particle came to be (stored per particle in the events file).
enum class Process : uint8_t {
  kPrimary = 0,       // generator (cosmic or beam)
  kDecay = 1,         // decay (mu -> e nu nu, pi -> mu nu, pi0 -> gamma gamma)
  kCapture = 2,       // nuclear capture at rest (mu- or pi- on argon)
  kIonisation = 3,    // knock-on electron (delta ray)
  kConversion = 4,    // gamma -> e+ e-
  kCompton = 5,       // Compton-scattered electron
  kBrems = 6,         // bremsstrahlung photon
  kHadronic = 7,      // hadronic inelastic interaction product
  kAnnihilation = 8,  // e+ e- -> gamma gamma
  kPhotoelectric = 9,
};
std::string_view ProcessName(Process p);

// What the CNN learns, per particle. The 3-class target of EmTrackMichelId is derived from it:
// track and delta -> "track" (our choice, as in the original 3-class scheme), shower and
// michel -> "em", plus the separate Michel flag. kNone marks pixels with no deposit.
enum class Category : uint8_t { kNone = 0, kTrack = 1, kShower = 2, kMichel = 3, kDelta = 4 };
std::string_view CategoryName(Category c);
inline constexpr int kNumCategories = 5;

}  // namespace larserve::sim
