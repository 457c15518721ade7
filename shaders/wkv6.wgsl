// wkv6 — the RWKV-6 WKV recurrence (spec §3.3 step 7, §3.5).
//
// Math, per head h, key channel j, value channel i, token t (r, k, v, u reshaped [H, N]; S is [H][key j][value i]):
//   w_t[j] = exp(−exp(δ_t[j]))                                 (δ = decay logit)
//   y_t[i] = Σ_j r_t[j] · (u[j]·k_t[j]·v_t[i] + S[j][i])      (old state + u-weighted current term)
//   S[j][i] ← w_t[j]·S[j][i] + k_t[j]·v_t[i]
// The state is read at the start and written back at the end (in place), so calls chain.
//
// Entry points (both: one workgroup per head, one invocation per value column i, the state column S[·][i] in
// registers; dispatch (H, 1, 1), @workgroup_size(N)):
//   wkv6_seq      the sequential kernel (decode, and the reference kernel): loops over t; r, k, w of token t are
//                 broadcast through workgroup memory. 2 barriers per token.
//   wkv6_chunked  the chunked form of §3.5, chunks of L = CHUNK tokens, 4 barriers per chunk. With ℓ_t = log w_t =
//                 −exp(δ_t) ≤ 0 and c_t = Σ_{τ≤t} ℓ_τ inside the chunk (c_{−1} = 0):
//                   y_t = Σ_j r_t[j] e^{c_{t−1}[j]} S₀[j][·] + Σ_{s<t} A[t][s] v_s + A[t][t] v_t
//                   A[t][s] = Σ_j r_t[j] k_s[j] e^{c_{t−1}[j]−c_s[j]}  (s < t),   A[t][t] = Σ_j r_t[j] u[j] k_t[j]
//                   S_L[j][·] = e^{c_{L−1}[j]} S₀[j][·] + Σ_s e^{c_{L−1}[j]−c_s[j]} k_s[j] v_s
//                 Exactness with extreme decays: every exponent is a sum of ℓ's over the exact token range it spans,
//                 accumulated directly (prefix sums from the chunk start, suffix sums to the chunk end, and for A a
//                 running sum per (s, j) over t), never a difference of cumulative sums: all terms have the same
//                 sign, so each exponent is accurate relative to itself, every factor e^{…} ≤ 1, and nothing
//                 overflows or cancels (a difference c_{t−1} − c_s of large cumulative sums loses the small ℓ's:
//                 with decay logits in [−8, 8] that variant is off by 1e-5…8e-2 relative in tests/gpu/wkv6.test.ts).
//                 Stages per chunk (q = invocation index):
//                   1. load r, k, ℓ of the chunk (column q) into workgroup memory (zero-padded past T);
//                   2. invocation (s = q mod L, key slice q div L of L channels): partial A[t][s] over its slice
//                      for t ≥ s, with the running exponent P[j] += ℓ_t[j] (exp per term, no cancellation);
//                   3. sum the slices of A; column q: r ← r·e^{c_{t−1}}, k ← k·e^{c_{L−1}−c_s}, e^{c_{L−1}}; v → ℓ's slot;
//                   4. invocation i: y_t[i] for the chunk, then S[·][i] ← e^{c_{L−1}} S + Σ_s k̃_s v_s[i].
//                 Workgroup memory: 4·(3·L·(N+1) + N·(L+1)/2 + N) bytes (14.9 KB at L = 16, N = 64; 29 KB at L = 32).
//
// Overrides: N (head size, ≤ 64, default 64); CHUNK (L, default 16; N mod L = 0).
// Bindings (group 0): 0 dims, 1 r, 2 k, 3 v, 4 decay, 5 u, 6 state, 7 y.

override N: u32 = 64u;
override CHUNK: u32 = 16u;

const MAX_N: u32 = 64u;
const MAX_L: u32 = 64u;
// exp(δ) is clamped at δ = 20 so that ℓ and its chunk sums stay finite (WGSL does not promise infinities);
// w = exp(−exp(δ)) is already exactly 0 in f32 for δ > 4.65 (below the smallest subnormal), so the clamp changes
// no result.
const DELTA_MAX: f32 = 20.0;

struct Dims {
  T: u32,
  H: u32,
  C: u32, // H·N
  _pad: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> r: array<f32>;            // (T, C)
@group(0) @binding(2) var<storage, read> k: array<f32>;            // (T, C)
@group(0) @binding(3) var<storage, read> v: array<f32>;            // (T, C)
@group(0) @binding(4) var<storage, read> decay: array<f32>;        // (T, C) decay logit δ
@group(0) @binding(5) var<storage, read> u: array<f32>;            // (H, N) time_faaaa
@group(0) @binding(6) var<storage, read_write> state: array<f32>;  // (H, N, N) [head][key j][value i]
@group(0) @binding(7) var<storage, read_write> y: array<f32>;      // (T, C)

/// ℓ = log w = −exp(δ).
fn log_decay(delta: f32) -> f32 {
  return -exp(min(delta, DELTA_MAX));
}

// ---------------------------------------------------------------------------------------------------------------
// wkv6_seq

var<workgroup> sq_r: array<f32, MAX_N>; // (N) r_t of this head
var<workgroup> sq_k: array<f32, MAX_N>; // (N) k_t
var<workgroup> sq_w: array<f32, MAX_N>; // (N) w_t
var<workgroup> sq_u: array<f32, MAX_N>; // (N) u

@compute @workgroup_size(N)
fn wkv6_seq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) i: u32) {
  let C = dims.C;
  let base = wg.x * N;
  let sbase = wg.x * N * N + i;
  var s: array<f32, MAX_N>; // S[·][i]
  for (var j = 0u; j < N; j++) {
    s[j] = state[sbase + j * N];
  }
  sq_u[i] = u[base + i];
  for (var t = 0u; t < dims.T; t++) {
    let o = t * C + base + i;
    workgroupBarrier();
    sq_r[i] = r[o];
    sq_k[i] = k[o];
    sq_w[i] = exp(log_decay(decay[o]));
    workgroupBarrier();
    let vi = v[o];
    var acc = 0.0;
    for (var j = 0u; j < N; j++) {
      let x = sq_k[j] * vi;
      let sj = s[j];
      acc += sq_r[j] * (sq_u[j] * x + sj);
      s[j] = sj * sq_w[j] + x;
    }
    y[o] = acc;
  }
  for (var j = 0u; j < N; j++) {
    state[sbase + j * N] = s[j];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// wkv6_chunked

// Rows are padded to N + 1 floats: in stage 2 the invocations of one key slice read different rows t at the same
// column, which with a stride of N would all fall into one memory bank.
var<workgroup> ck_r: array<f32, CHUNK * (N + 1u)>; // (L, N+1) r, then r·e^{c_{t−1}}
var<workgroup> ck_k: array<f32, CHUNK * (N + 1u)>; // (L, N+1) k, then k·e^{c_{L−1}−c_s}
var<workgroup> ck_l: array<f32, CHUNK * (N + 1u)>; // (L, N+1) ℓ, then v
var<workgroup> ck_a: array<f32, (N / CHUNK) * (CHUNK * (CHUNK + 1u) / 2u)>; // (N/L, L(L+1)/2) partial A per key slice (lower triangle), then A in slice 0
var<workgroup> ck_w: array<f32, N>; // (N) e^{c_{L−1}}

@compute @workgroup_size(N)
fn wkv6_chunked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) q: u32) {
  let C = dims.C;
  let T = dims.T;
  let L = CHUNK;
  let P1 = N + 1u;
  let tri_n = L * (L + 1u) / 2u;
  let base = wg.x * N;
  let sbase = wg.x * N * N + q;
  var s: array<f32, MAX_N>; // S[·][q]
  for (var j = 0u; j < N; j++) {
    s[j] = state[sbase + j * N];
  }
  // Stage-2 role: A column sa, key slice [j0, j0 + L).
  let sa = q % L;
  let slice = q / L;
  let j0 = slice * L;

  for (var t0 = 0u; t0 < T; t0 += L) {
    let n = min(L, T - t0);
    workgroupBarrier(); // the previous chunk's stage 4 is done with ck_*

    // 1. r, k, ℓ of column q (zero past T: r = k = 0, ℓ = 0 contribute nothing and leave the decay unchanged).
    for (var t = 0u; t < L; t++) {
      var rv = 0.0;
      var kv = 0.0;
      var lv = 0.0;
      if (t < n) {
        let o = (t0 + t) * C + base + q;
        rv = r[o];
        kv = k[o];
        lv = log_decay(decay[o]);
      }
      ck_r[t * P1 + q] = rv;
      ck_k[t * P1 + q] = kv;
      ck_l[t * P1 + q] = lv;
    }
    workgroupBarrier();

    // 2. Partial A over key slice j0..j0+L: column sa, rows t ≥ sa. P[jj] = Σ_{τ=sa+1}^{t−1} ℓ_τ[j0+jj].
    {
      var P: array<f32, MAX_L>;
      var kk: array<f32, MAX_L>;
      var diag = 0.0;
      for (var jj = 0u; jj < L; jj++) {
        let j = j0 + jj;
        P[jj] = 0.0;
        kk[jj] = ck_k[sa * P1 + j];
        diag += ck_r[sa * P1 + j] * u[base + j] * kk[jj];
      }
      let abase = slice * tri_n;
      ck_a[abase + sa * (sa + 1u) / 2u + sa] = diag;
      for (var t = sa + 1u; t < n; t++) {
        var acc = 0.0;
        for (var jj = 0u; jj < L; jj++) {
          let o = t * P1 + j0 + jj;
          acc += ck_r[o] * kk[jj] * exp(P[jj]);
          P[jj] += ck_l[o];
        }
        ck_a[abase + t * (t + 1u) / 2u + sa] = acc;
      }
    }
    workgroupBarrier();

    // 3. Sum the slices of A (each element by one invocation, in place into slice 0) and decay column q of r, k.
    for (var e = q; e < n * (n + 1u) / 2u; e += N) {
      var acc = ck_a[e];
      for (var sl = 1u; sl < N / L; sl++) {
        acc += ck_a[sl * tri_n + e];
      }
      ck_a[e] = acc;
    }
    {
      var c = 0.0; // c_{t−1}
      for (var t = 0u; t < n; t++) {
        let o = t * P1 + q;
        ck_r[o] *= exp(c);
        c += ck_l[o];
      }
      ck_w[q] = exp(c);
      var sf = 0.0; // c_{L−1} − c_s
      for (var t = n; t > 0u; t--) {
        let o = (t - 1u) * P1 + q;
        ck_k[o] *= exp(sf);
        sf += ck_l[o];
      }
      for (var t = 0u; t < L; t++) {
        var vv = 0.0;
        if (t < n) {
          vv = v[(t0 + t) * C + base + q];
        }
        ck_l[t * P1 + q] = vv;
      }
    }
    workgroupBarrier();

    // 4. Outputs of value column q, then its state column.
    var vq: array<f32, MAX_L>;
    for (var t = 0u; t < n; t++) {
      vq[t] = ck_l[t * P1 + q];
    }
    for (var t = 0u; t < n; t++) {
      var acc = 0.0;
      let ro = t * P1;
      for (var j = 0u; j < N; j++) {
        acc += ck_r[ro + j] * s[j];
      }
      let ab = t * (t + 1u) / 2u;
      for (var s2 = 0u; s2 <= t; s2++) {
        acc += ck_a[ab + s2] * vq[s2];
      }
      y[(t0 + t) * C + base + q] = acc;
    }
    for (var j = 0u; j < N; j++) {
      var acc = ck_w[j] * s[j];
      for (var t = 0u; t < n; t++) {
        acc += ck_k[t * P1 + j] * vq[t];
      }
      s[j] = acc;
    }
  }
  for (var j = 0u; j < N; j++) {
    state[sbase + j * N] = s[j];
  }
}
