/**
 * Float64 reference of the RWKV-6 WKV recurrence (spec §3.3 step 7), sequential over t.
 * State layout [head][key j][value i] (ChatRWKV RWKV-6).
 */

export interface Wkv6RefArgs {
  /** (T, C) receptance, key, value and decay logit δ (w = exp(−exp(δ))). */
  r: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  decay: ArrayLike<number>;
  /** (H, N) time_faaaa. */
  u: ArrayLike<number>;
  /** (H, N, N) initial state; not modified. */
  state: ArrayLike<number>;
  T: number;
  H: number;
  N: number;
}

/** Returns y (T, C) and the final state (H, N, N), both in float64. */
export function wkv6Ref(a: Wkv6RefArgs): { y: Float64Array; state: Float64Array } {
  const { T, H, N } = a;
  const C = H * N;
  const S = Float64Array.from(a.state);
  const y = new Float64Array(T * C);
  const w = new Float64Array(N);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const o = t * C + h * N;
      for (let j = 0; j < N; j++) w[j] = Math.exp(-Math.exp(a.decay[o + j]!));
      for (let i = 0; i < N; i++) {
        const vi = a.v[o + i]!;
        let acc = 0;
        for (let j = 0; j < N; j++) {
          const sIdx = (h * N + j) * N + i;
          const x = a.k[o + j]! * vi;
          acc += a.r[o + j]! * (a.u[h * N + j]! * x + S[sIdx]!);
          S[sIdx] = w[j]! * S[sIdx]! + x;
        }
        y[o + i] = acc;
      }
    }
  }
  return { y, state: S };
}
