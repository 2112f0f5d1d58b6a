#pragma once
// Liquid-argon physics used by the transport. Units: MeV, cm, ns, g/cm^3.
// Sources: PDG "Passage of particles through matter" (Bethe formula, density effect with the
// Sternheimer parameters of liquid argon, Highland formula, radiation length), Rohrlich-Carlson
// electron stopping power (as in ESTAR), NIST XCOM photon attenuation of argon (tabulated,
// rounded), ArgoNeuT Modified Box recombination.
#include "larserve/core/rng.h"

namespace larserve::sim::lar {

inline constexpr double kElectronMass = 0.51099895;  // MeV
inline constexpr double kK = 0.307075;               // MeV cm^2 / mol
inline constexpr double kZoverA = 18.0 / 39.948;
inline constexpr double kMeanExcitationMeV = 188.0e-6;
inline constexpr double kRadiationLengthGcm2 = 19.55;           // -> 14.0 cm at 1.396 g/cm^3
inline constexpr double kNuclearInteractionLengthGcm2 = 119.7;  // -> 85.8 cm
inline constexpr double kCriticalEnergyMeV = 32.84;             // e-, Rossi definition (PDG)
inline constexpr double kMichelEndpointMeV = 52.83;             // (m_mu^2 + m_e^2) / (2 m_mu)
inline constexpr double kSpeedOfLightCmPerNs = 29.9792458;
inline constexpr double kMuPlusLifetimeNs = 2196.98;
inline constexpr double kMuMinusArgonLifetimeNs = 567.0;  // bound mu- in argon (capture + decay)
inline constexpr double kPiPlusRestMuonKineticMeV = 4.12;

double RadiationLengthCm(double density);
// Density-effect correction delta(beta gamma) for liquid argon (Sternheimer).
double DensityEffect(double beta_gamma);
// Maximum energy transfer to a free electron by a particle of mass M (MeV) with kinetic T.
double MaxEnergyTransfer(double mass, double kinetic);
// Mean dE/dx (MeV/cm) of a heavy charged particle (|z| = 1), Bethe with density effect.
double BetheDedx(double mass, double kinetic, double density);
// Restricted mean dE/dx: only energy transfers below t_cut.
double BetheRestrictedDedx(double mass, double kinetic, double t_cut, double density);
// Number of knock-on electrons above t_cut per cm (spin-0 cross-section).
double DeltaRayRate(double mass, double kinetic, double t_cut, double density);
// Samples a knock-on kinetic energy in [t_cut, t_max] from 1/T^2 (1 - beta^2 T / T_max).
double SampleDeltaEnergy(double mass, double kinetic, double t_cut, Rng& rng);
// Electron collision stopping power (MeV/cm), Rohrlich-Carlson.
double ElectronCollisionDedx(double kinetic, double density);
// Bremsstrahlung photons above k_cut per cm (complete screening, PDG eq. 34.29).
double BremsRate(double kinetic, double k_cut, double density);
// Radiative energy loss carried by photons below k_cut (MeV/cm).
double BremsSoftLoss(double kinetic, double k_cut, double density);
double SampleBremsEnergy(double kinetic, double k_cut, Rng& rng);
// Photon total attenuation (1/cm) and the fractions of pair production and photoabsorption.
double PhotonAttenuation(double energy, double density);
double PairFraction(double energy);
double PhotoelectricFraction(double energy);
// Compton: returns the scattered photon energy fraction eps and cos(theta) (Klein-Nishina).
void SampleCompton(double energy, Rng& rng, double* eps, double* cos_theta);
// Bethe-Heitler energy fraction of the electron in a pair conversion.
double SamplePairFraction(double energy, Rng& rng);
// Michel electron total energy (MeV), spectrum x^2 (3 - 2x) (no radiative corrections).
double SampleMichelEnergy(Rng& rng);
// Fraction of ionisation electrons escaping recombination (Modified Box).
double RecombinationFactor(double dedx_mev_cm, double efield_kv_cm, double density, double a,
                           double b);
// Highland multiple-scattering width (rad) for a step x (cm) of a |z|=1 particle.
double HighlandTheta0(double momentum, double beta, double step_cm, double density);
// Standard Moyal variable (an approximation of the Landau distribution), mode at 0.
double SampleMoyal(Rng& rng);

}  // namespace larserve::sim::lar
