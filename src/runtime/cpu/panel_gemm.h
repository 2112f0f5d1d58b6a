// Our own fp32 GEMM for products with constant weights: C[M, N] = act(A[M, K] x B[K, N] + bias).
//
// Made for the shape that dominates EmTrackMichelId (M = batch, N = 128, K = 92,928: a long
// inner dimension and a small output), where oneDNN's implementations leave single-core speed on
// the table. B is packed once into panels of 32 columns ([N/32][K][32], zero-padded), A is read
// in place (row-major, any leading dimension). The product runs in K blocks of `kc` columns: for
// each block, every (12-row, 32-column) tile of C is updated by an AVX-512 micro-kernel holding
// the tile in 24 registers, so the B block stays in L2 and each A panel in L1 while it is reused.
// The bias and the activation are applied when the last K block is stored. Threads split the
// tiles of each K block (OpenMP, one barrier per block).
//
// It is a tactic of the cpu backend (onednn_dense.cc: "panel-kcN"), offered only on CPUs with
// AVX-512F and timed against oneDNN's like the others; tests/runtime compare it with the
// reference kernels.
#pragma once

#include <cstdint>
#include <memory>

namespace larserve::runtime::cpu {

// The activations the micro-kernel's store applies: max(x, 0) (kRelu with alpha 0), x < 0 ? a x :
// x (kRelu, LeakyRelu), clamp to [alpha, beta] (kClip).
enum class PanelActivation { kNone, kRelu, kClip };

class PanelGemm {
 public:
  static constexpr int kMr = 12;  // rows of a C tile
  static constexpr int kNr = 32;  // columns of a C tile (two AVX-512 vectors)

  // Whether this CPU runs the micro-kernel (AVX-512F).
  static bool Available();

  // Packs B: [K, N] row-major, or [N, K] row-major read transposed (trans_b). kc: columns of A
  // per K block (>= 1).
  PanelGemm(const float* b, int64_t k, int64_t n, bool trans_b, int64_t kc);

  // C = act(A x B + bias) for A [m, k] with row stride lda, C [m, n] with row stride ldc; bias
  // [n] or null. threads >= 1: OpenMP threads of this call.
  void Run(const float* a, int64_t m, int64_t lda, const float* bias, float* c, int64_t ldc,
           PanelActivation act, float alpha, float beta, int threads) const;

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  int64_t kc() const { return kc_; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  int64_t k_, n_, kc_, panels_;
  std::unique_ptr<float[], Free> packed_;  // [panels][k][kNr], 64-byte aligned
};

}  // namespace larserve::runtime::cpu
