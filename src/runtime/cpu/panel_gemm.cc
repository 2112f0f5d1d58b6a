#include "panel_gemm.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <utility>

// GCC 12 reports the undefined vector behind the masked intrinsics (_mm512_undefined_ps) as
// "may be used uninitialized"; masked-off lanes are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace larserve::runtime::cpu {
namespace {

struct Epilogue {
  const float* bias = nullptr;  // at the tile's first column, or null
  PanelActivation act = PanelActivation::kNone;
  float alpha = 0, beta = 0;
};

#define LARSERVE_AVX512 __attribute__((target("avx512f,fma")))

LARSERVE_AVX512 inline __m512 Activate(__m512 v, const Epilogue& ep) {
  switch (ep.act) {
    case PanelActivation::kNone:
      return v;
    case PanelActivation::kRelu:
      if (ep.alpha == 0) return _mm512_max_ps(v, _mm512_setzero_ps());
      return _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v,
                                _mm512_set1_ps(ep.alpha));
    case PanelActivation::kClip:
      return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(ep.alpha)), _mm512_set1_ps(ep.beta));
  }
  return v;
}

// One C tile of MR rows x 32 columns (masks m0, m1 for the columns that exist): acc = (first ?
// 0 : C) + sum over kc of A[i, k] B[k, :]; stored through the epilogue when `last`.
template <int MR>
LARSERVE_AVX512 void MicroKernel(int64_t kc, const float* a, int64_t lda, const float* bp, float* c,
                                 int64_t ldc, bool first, bool last, __mmask16 m0, __mmask16 m1,
                                 const Epilogue& ep) {
  __m512 acc0[MR], acc1[MR];
  const float* row[MR];
  for (int i = 0; i < MR; ++i) row[i] = a + i * lda;
  if (first) {
    for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  } else {
    for (int i = 0; i < MR; ++i) {
      acc0[i] = _mm512_maskz_loadu_ps(m0, c + i * ldc);
      acc1[i] = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(bp + k * PanelGemm::kNr);
    const __m512 b1 = _mm512_load_ps(bp + k * PanelGemm::kNr + 16);
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(row[i][k]);
      acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
  }
  if (last) {
    if (ep.bias) {
      const __m512 bias0 = _mm512_maskz_loadu_ps(m0, ep.bias);
      const __m512 bias1 = _mm512_maskz_loadu_ps(m1, ep.bias + 16);
      for (int i = 0; i < MR; ++i) {
        acc0[i] = _mm512_add_ps(acc0[i], bias0);
        acc1[i] = _mm512_add_ps(acc1[i], bias1);
      }
    }
    for (int i = 0; i < MR; ++i) {
      acc0[i] = Activate(acc0[i], ep);
      acc1[i] = Activate(acc1[i], ep);
    }
  }
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(c + i * ldc, m0, acc0[i]);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc1[i]);
  }
}

using MicroKernelFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, bool,
                               bool, __mmask16, __mmask16, const Epilogue&);

template <int... MR>
constexpr auto MakeTable(std::integer_sequence<int, MR...>) {
  return std::array<MicroKernelFn, sizeof...(MR)>{&MicroKernel<MR + 1>...};
}
// kMicroKernels[r - 1]: the kernel for tiles of r rows.
constexpr auto kMicroKernels = MakeTable(std::make_integer_sequence<int, PanelGemm::kMr>());

}  // namespace

void PanelGemm::Free::operator()(float* p) const { std::free(p); }

bool PanelGemm::Available() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
}

PanelGemm::PanelGemm(const float* b, int64_t k, int64_t n, bool trans_b, int64_t kc)
    : k_(k), n_(n), kc_(kc), panels_((n + kNr - 1) / kNr) {
  if (k < 1 || n < 1 || kc < 1) throw std::invalid_argument("PanelGemm: empty product or block");
  const std::size_t count = static_cast<std::size_t>(panels_ * k * kNr);
  packed_.reset(static_cast<float*>(std::aligned_alloc(64, count * sizeof(float))));
  if (!packed_) throw std::bad_alloc();
  std::fill(packed_.get(), packed_.get() + count, 0.0f);
  for (int64_t p = 0; p < panels_; ++p) {
    float* dst = packed_.get() + p * k * kNr;
    const int64_t cols = std::min<int64_t>(kNr, n - p * kNr);
    for (int64_t kk = 0; kk < k; ++kk) {
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t col = p * kNr + j;
        dst[kk * kNr + j] = trans_b ? b[col * k + kk] : b[kk * n + col];
      }
    }
  }
}

void PanelGemm::Run(const float* a, int64_t m, int64_t lda, const float* bias, float* c,
                    int64_t ldc, PanelActivation act, float alpha, float beta, int threads) const {
  if (!Available()) throw std::runtime_error("PanelGemm: this CPU lacks AVX-512F");
  if (m <= 0) return;
  const int64_t row_tiles = (m + kMr - 1) / kMr;
  const int64_t tiles = row_tiles * panels_;
  auto block = [&](int64_t k0, int64_t t_begin, int64_t t_end) {
    const int64_t kc = std::min(kc_, k_ - k0);
    const bool first = k0 == 0, last = k0 + kc == k_;
    // Tiles row-major (row tile, then panel): consecutive tiles reuse an A panel from L1.
    for (int64_t t = t_begin; t < t_end; ++t) {
      const int64_t rt = t / panels_, p = t % panels_;
      const int64_t r0 = rt * kMr, rows = std::min<int64_t>(kMr, m - r0);
      const int64_t cols = std::min<int64_t>(kNr, n_ - p * kNr);
      const __mmask16 m0 = cols >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
      const __mmask16 m1 = cols >= 32   ? 0xFFFF
                           : cols <= 16 ? 0
                                        : static_cast<__mmask16>((1u << (cols - 16)) - 1);
      Epilogue ep{bias ? bias + p * kNr : nullptr, act, alpha, beta};
      kMicroKernels[rows - 1](kc, a + r0 * lda + k0, lda, packed_.get() + (p * k_ + k0) * kNr,
                              c + r0 * ldc + p * kNr, ldc, first, last, m0, m1, ep);
    }
  };
  if (threads <= 1 || tiles == 1) {
    for (int64_t k0 = 0; k0 < k_; k0 += kc_) block(k0, 0, tiles);
    return;
  }
  const int nt = static_cast<int>(std::min<int64_t>(threads, tiles));
#pragma omp parallel num_threads(nt)
  {
    const int64_t id = omp_get_thread_num(), count = omp_get_num_threads();
    const int64_t t_begin = tiles * id / count, t_end = tiles * (id + 1) / count;
    for (int64_t k0 = 0; k0 < k_; k0 += kc_) {
      block(k0, t_begin, t_end);
      // The next block accumulates into the tiles this one stored; a thread keeps its tiles,
      // so no barrier is needed between blocks.
    }
  }
}

}  // namespace larserve::runtime::cpu
