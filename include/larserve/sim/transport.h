#pragma once
// Transport of particles through liquid argon: condensed-history stepping of charged particles
// (restricted Bethe loss with Moyal fluctuations, explicit delta rays, Highland scattering),
// an explicit electromagnetic cascade (bremsstrahlung, pair production, Compton scattering,
// photoabsorption, annihilation), muon decay and capture at rest, pion decay, pi0 decay, and a
// crude hadronic interaction model. Energy loss becomes Deposits with charge after recombination.
//
// Truth bookkeeping follows LArSoft with KeepEMShowerDaughters = false: daughters of an e/gamma
// inside an electromagnetic cascade are not saved; their deposits belong to the first e/gamma
// of the cascade. Every other particle is saved.
//
// Stateless apart from configuration: one Transporter may be used from many threads, each call
// with its own Rng and output.
#include <vector>

#include "larserve/core/rng.h"
#include "larserve/sim/config.h"
#include "larserve/sim/event.h"
#include "larserve/sim/geometry.h"

namespace larserve::sim {

class Transporter {
 public:
  Transporter(const SimConfig& config, const Geometry& geometry);

  // Transports `primary` and all its descendants. Appends saved particles (ids counted from
  // particles->size(); the primary first, with parent -1) and deposits.
  void Run(const Primary& primary, Rng& rng, std::vector<TruthParticle>* particles,
           std::vector<Deposit>* deposits) const;

 private:
  struct Track;
  struct Context;
  void TransportCharged(Track& track, Context& ctx) const;
  // One condensed-history step of length s: fluctuating energy loss, charge deposits along
  // the step, multiple scattering at its end. s shrinks if the particle stops inside it.
  void ContinuousStep(Track& track, double s, double dedx, double xi, double p, double beta,
                      Context& ctx) const;
  void TransportElectron(Track& track, Context& ctx) const;
  void TransportPhoton(Track& track, Context& ctx) const;
  void AtRest(const Track& track, Context& ctx) const;
  void Hadronic(Track& track, Context& ctx, bool* survives) const;
  void Deposit(const Track& track, const double from[3], const double to[3], double energy,
               double dedx, double t0, double t1, Context& ctx) const;
  void LocalDeposit(const Track& track, double energy, Context& ctx) const;
  int NewSecondary(const Track& parent, int pdg, const double pos[3], const double dir[3],
                   double kinetic, double t_ns, Process process, Context& ctx) const;
  bool InWorld(const double pos[3]) const;

  SimConfig config_;
  const Geometry* geometry_;
  Box world_;
  double density_;
};

}  // namespace larserve::sim
