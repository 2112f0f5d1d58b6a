#include "larserve/sim/config.h"

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "larserve/sim/particle.h"

namespace larserve::sim {
namespace {

using nlohmann::json;

// Lists every configurable field once; used to read, write and check for unknown keys.
template <typename Visitor, typename Config>
void VisitFields(Config& c, Visitor&& v) {
  auto& d = c.detector;
  v("detector", "apas", d.apas);
  v("detector", "n_ticks", d.n_ticks);
  v("detector", "tick_us", d.tick_us);
  v("detector", "trigger_tick", d.trigger_tick);
  v("detector", "drift_length_cm", d.drift_length_cm);
  v("detector", "apa_height_cm", d.apa_height_cm);
  v("detector", "apa_width_cm", d.apa_width_cm);
  v("detector", "wire_pitch_mm", d.wire_pitch_mm);
  v("detector", "wire_angle_deg", d.wire_angle_deg);
  v("detector", "induction_channels", d.induction_channels);
  v("detector", "collection_wires_per_face", d.collection_wires_per_face);
  v("detector", "plane_spacing_mm", d.plane_spacing_mm);
  auto& a = c.argon;
  v("argon", "density_g_cm3", a.density_g_cm3);
  v("argon", "efield_kv_cm", a.efield_kv_cm);
  v("argon", "drift_speed_mm_us", a.drift_speed_mm_us);
  v("argon", "electron_lifetime_ms", a.electron_lifetime_ms);
  v("argon", "diffusion_long_cm2_s", a.diffusion_long_cm2_s);
  v("argon", "diffusion_trans_cm2_s", a.diffusion_trans_cm2_s);
  v("argon", "w_ion_ev", a.w_ion_ev);
  v("argon", "recomb_a", a.recomb_a);
  v("argon", "recomb_b", a.recomb_b);
  auto& r = c.readout;
  v("readout", "filter_sigma_us", r.filter_sigma_us);
  v("readout", "noise_enc_electrons", r.noise_enc_electrons);
  v("readout", "noise", r.noise);
  v("readout", "electrons_per_adc", r.electrons_per_adc);
  v("readout", "roi_threshold_sigma", r.roi_threshold_sigma);
  v("readout", "roi_pad_ticks", r.roi_pad_ticks);
  v("readout", "truth_min_electrons", r.truth_min_electrons);
  auto& m = c.cosmics;
  v("cosmics", "enabled", m.enabled);
  v("cosmics", "rate_hz_per_m2", m.rate_hz_per_m2);
  v("cosmics", "min_momentum_gev", m.min_momentum_gev);
  v("cosmics", "max_momentum_gev", m.max_momentum_gev);
  v("cosmics", "mu_plus_fraction", m.mu_plus_fraction);
  v("cosmics", "mu_minus_capture_fraction", m.mu_minus_capture_fraction);
  v("cosmics", "generation_margin_cm", m.generation_margin_cm);
  auto& b = c.beam;
  v("beam", "enabled", b.enabled);
  v("beam", "particles_per_event", b.particles_per_event);
  v("beam", "species", b.species);
  v("beam", "weights", b.weights);
  v("beam", "momentum_gev", b.momentum_gev);
  v("beam", "momentum_spread", b.momentum_spread);
  v("beam", "position_cm", b.position_cm);
  v("beam", "direction", b.direction);
  v("beam", "position_spread_cm", b.position_spread_cm);
  v("beam", "angular_spread_deg", b.angular_spread_deg);
  v("beam", "time_us", b.time_us);
  auto& t = c.transport;
  v("transport", "max_step_mm", t.max_step_mm);
  v("transport", "electron_max_step_mm", t.electron_max_step_mm);
  v("transport", "deposit_spacing_mm", t.deposit_spacing_mm);
  v("transport", "delta_cut_mev", t.delta_cut_mev);
  v("transport", "brems_cut_mev", t.brems_cut_mev);
  v("transport", "electron_cut_mev", t.electron_cut_mev);
  v("transport", "photon_cut_mev", t.photon_cut_mev);
  v("transport", "hadron_cut_mev", t.hadron_cut_mev);
  v("transport", "hadronic_interactions", t.hadronic_interactions);
  v("transport", "world_margin_cm", t.world_margin_cm);
}

class Checker {
 public:
  template <typename T>
  void Range(const char* key, T value, T lo, T hi, const char* why = nullptr) {
    if (!status_.ok()) return;
    if (!(value >= lo && value <= hi)) {
      std::ostringstream os;
      os << "config value " << key << " = " << value << " is out of range [" << lo << ", " << hi
         << "]";
      if (why) os << " (" << why << ")";
      status_ = InvalidArgument(os.str());
    }
  }
  void Fail(std::string message) {
    if (status_.ok()) status_ = InvalidArgument(std::move(message));
  }
  Status status() const { return status_; }

 private:
  Status status_;
};

}  // namespace

Status SimConfig::MergeJson(const std::string& json_text) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::parse_error& e) {
    return InvalidArgument(std::string("config is not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) return InvalidArgument("config must be a JSON object of sections");
  std::map<std::string, std::set<std::string>> known;
  VisitFields(*this,
              [&](const char* section, const char* key, auto&) { known[section].insert(key); });
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    auto sec = known.find(it.key());
    if (sec == known.end()) {
      std::string names;
      for (const auto& [name, _] : known) names += (names.empty() ? "" : ", ") + name;
      return InvalidArgument("unknown config section '" + it.key() + "' (known: " + names + ")");
    }
    if (!it.value().is_object()) {
      return InvalidArgument("config section '" + it.key() + "' must be a JSON object");
    }
    for (auto kv = it.value().begin(); kv != it.value().end(); ++kv) {
      if (!sec->second.count(kv.key())) {
        return InvalidArgument("unknown config key '" + it.key() + "." + kv.key() + "'");
      }
    }
  }
  Status status;
  VisitFields(*this, [&](const char* section, const char* key, auto& field) {
    if (!status.ok() || !doc.contains(section) || !doc[section].contains(key)) return;
    const json& value = doc[section][key];
    using T = std::decay_t<decltype(field)>;
    try {
      // Reject silent conversions that would hide a typo (a string where a number belongs).
      if constexpr (std::is_same_v<T, bool>) {
        if (!value.is_boolean()) throw std::invalid_argument("expected true or false");
      } else if constexpr (std::is_integral_v<T>) {
        if (!value.is_number_integer()) throw std::invalid_argument("expected an integer");
      } else if constexpr (std::is_floating_point_v<T>) {
        if (!value.is_number()) throw std::invalid_argument("expected a number");
      } else {
        if (!value.is_array()) throw std::invalid_argument("expected an array");
      }
      T parsed = value.get<T>();
      field = std::move(parsed);
    } catch (const std::exception& e) {
      status = InvalidArgument(std::string("config key '") + section + "." + key +
                               "' has the wrong type or length: " + e.what());
    }
  });
  return status;
}

std::string SimConfig::ToJson() const {
  json doc = json::object();
  VisitFields(const_cast<SimConfig&>(*this), [&](const char* section, const char* key,
                                                 auto& field) { doc[section][key] = field; });
  return doc.dump(2);
}

Status SimConfig::Validate() const {
  Checker c;
  const auto& d = detector;
  c.Range("detector.apas", d.apas, 1, 12);
  if (d.apas > 3 && d.apas % 2 != 0) {
    c.Fail("config value detector.apas = " + std::to_string(d.apas) +
           " is not allowed: 1-3 APAs form one row, more must be an even number (two rows)");
  }
  c.Range("detector.n_ticks", d.n_ticks, 64, 65535);
  c.Range("detector.tick_us", d.tick_us, 0.01, 10.0);
  c.Range("detector.trigger_tick", d.trigger_tick, 0, d.n_ticks - 1);
  c.Range("detector.drift_length_cm", d.drift_length_cm, 1.0, 2000.0);
  c.Range("detector.apa_height_cm", d.apa_height_cm, 10.0, 2000.0);
  c.Range("detector.apa_width_cm", d.apa_width_cm, 10.0, 1000.0);
  for (int p = 0; p < 3; ++p) {
    c.Range("detector.wire_pitch_mm", d.wire_pitch_mm[p], 0.5, 50.0);
  }
  c.Range("detector.wire_angle_deg[U]", d.wire_angle_deg[0], 5.0, 85.0, "U wires must be inclined");
  c.Range("detector.wire_angle_deg[V]", d.wire_angle_deg[1], -85.0, -5.0,
          "V wires must be inclined");
  c.Range("detector.wire_angle_deg[W]", d.wire_angle_deg[2], 0.0, 0.0,
          "collection wires are vertical");
  c.Range("detector.induction_channels", d.induction_channels, 8, 20000);
  c.Range("detector.collection_wires_per_face", d.collection_wires_per_face, 8, 20000);
  c.Range("detector.plane_spacing_mm", d.plane_spacing_mm, 0.0, 50.0);
  if (c.status().ok()) {
    const double w_span = d.collection_wires_per_face * d.wire_pitch_mm[2] / 10.0;
    if (std::fabs(w_span - d.apa_width_cm) > d.wire_pitch_mm[2] / 10.0) {
      c.Fail("config: detector.collection_wires_per_face x wire_pitch_mm[W] = " +
             std::to_string(w_span) +
             " cm must equal detector.apa_width_cm = " + std::to_string(d.apa_width_cm) + " cm");
    }
  }
  const auto& a = argon;
  c.Range("argon.density_g_cm3", a.density_g_cm3, 1.0, 2.0);
  c.Range("argon.efield_kv_cm", a.efield_kv_cm, 0.05, 5.0);
  c.Range("argon.drift_speed_mm_us", a.drift_speed_mm_us, 0.1, 10.0);
  c.Range("argon.electron_lifetime_ms", a.electron_lifetime_ms, 0.01, 1e6);
  c.Range("argon.diffusion_long_cm2_s", a.diffusion_long_cm2_s, 0.0, 100.0);
  c.Range("argon.diffusion_trans_cm2_s", a.diffusion_trans_cm2_s, 0.0, 100.0);
  c.Range("argon.w_ion_ev", a.w_ion_ev, 10.0, 50.0);
  c.Range("argon.recomb_a", a.recomb_a, 0.5, 1.0);
  c.Range("argon.recomb_b", a.recomb_b, 0.0, 2.0);
  const auto& r = readout;
  c.Range("readout.filter_sigma_us", r.filter_sigma_us, 0.05, 20.0);
  for (int p = 0; p < 3; ++p)
    c.Range("readout.noise_enc_electrons", r.noise_enc_electrons[p], 0.0, 1e5);
  c.Range("readout.electrons_per_adc", r.electrons_per_adc, 1.0, 1e5);
  c.Range("readout.roi_threshold_sigma", r.roi_threshold_sigma, 0.5, 100.0);
  c.Range("readout.roi_pad_ticks", r.roi_pad_ticks, 0, 1000);
  c.Range("readout.truth_min_electrons", r.truth_min_electrons, 0.0, 1e6);
  const auto& m = cosmics;
  c.Range("cosmics.rate_hz_per_m2", m.rate_hz_per_m2, 0.0, 1e5);
  c.Range("cosmics.min_momentum_gev", m.min_momentum_gev, 0.05, 1e4);
  c.Range("cosmics.max_momentum_gev", m.max_momentum_gev, m.min_momentum_gev * 1.01, 1e5,
          "must exceed min_momentum_gev");
  c.Range("cosmics.mu_plus_fraction", m.mu_plus_fraction, 0.0, 1.0);
  c.Range("cosmics.mu_minus_capture_fraction", m.mu_minus_capture_fraction, 0.0, 1.0);
  c.Range("cosmics.generation_margin_cm", m.generation_margin_cm, 0.0, 5000.0);
  const auto& b = beam;
  c.Range("beam.particles_per_event", b.particles_per_event, 0, 1000);
  if (b.enabled && b.particles_per_event > 0) {
    if (b.species.empty()) c.Fail("config beam.species is empty while the beam is enabled");
    if (b.species.size() != b.weights.size()) {
      c.Fail("config beam.weights has " + std::to_string(b.weights.size()) +
             " entries but beam.species has " + std::to_string(b.species.size()));
    }
    double total = 0;
    for (double w : b.weights) {
      c.Range("beam.weights", w, 0.0, 1e9);
      total += w;
    }
    if (c.status().ok() && !(total > 0)) c.Fail("config beam.weights must not all be zero");
    for (const auto& s : b.species) {
      const int code = PdgFromName(s);
      if (code == 0 || code == pdg::kNeutron) {
        c.Fail("config beam.species has '" + s +
               "'; supported: e-, e+, gamma, mu-, mu+, pi+, pi-, pi0, proton");
      }
    }
  }
  c.Range("beam.momentum_gev", b.momentum_gev, 0.001, 1000.0);
  c.Range("beam.momentum_spread", b.momentum_spread, 0.0, 1.0);
  c.Range("beam.position_spread_cm", b.position_spread_cm, 0.0, 1000.0);
  c.Range("beam.angular_spread_deg", b.angular_spread_deg, 0.0, 90.0);
  const double dnorm = std::sqrt(b.direction[0] * b.direction[0] + b.direction[1] * b.direction[1] +
                                 b.direction[2] * b.direction[2]);
  if (!(dnorm > 1e-9)) c.Fail("config beam.direction must be a non-zero vector");
  const auto& t = transport;
  c.Range("transport.max_step_mm", t.max_step_mm, 0.1, 100.0);
  c.Range("transport.electron_max_step_mm", t.electron_max_step_mm, 0.1, 100.0);
  c.Range("transport.deposit_spacing_mm", t.deposit_spacing_mm, 0.1, 100.0);
  c.Range("transport.delta_cut_mev", t.delta_cut_mev, 0.01, 1000.0);
  c.Range("transport.brems_cut_mev", t.brems_cut_mev, 0.01, 1000.0);
  c.Range("transport.electron_cut_mev", t.electron_cut_mev, 0.01, 100.0);
  c.Range("transport.photon_cut_mev", t.photon_cut_mev, 0.001, 100.0);
  c.Range("transport.hadron_cut_mev", t.hadron_cut_mev, 0.01, 100.0);
  c.Range("transport.world_margin_cm", t.world_margin_cm, 0.0, 1000.0);
  return c.status();
}

StatusOr<SimConfig> LoadSimConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot open config file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  SimConfig config;
  Status s = config.MergeJson(ss.str());
  if (!s.ok()) return s.WithContext(path);
  s = config.Validate();
  if (!s.ok()) return s.WithContext(path);
  return config;
}

}  // namespace larserve::sim
