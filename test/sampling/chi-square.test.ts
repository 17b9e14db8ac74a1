// Proves the statistics the sampler tests rely on: the chi-square critical values computed by
// helpers.ts equal the printed table (NIST/SEMATECH e-Handbook 1.3.6.7.4, upper tail 0.001),
// and Pearson's statistic is computed as defined. The Wilson–Hilferty approximation is shown
// for comparison: within 2 % from df 5 on (1.2 % there), but 3 % too lenient at df = 1, so the
// exact value is what the tests use.
import assert from 'node:assert/strict';
import { chiSquare, chiSquareCdf, chiSquareCritical } from './helpers.js';

// upper 0.001 critical values of chi-square(df), from the table
const TABLE_0_001: Record<number, number> = {
  1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 7: 24.322, 8: 26.124,
  9: 27.877, 10: 29.588, 15: 37.697, 19: 43.820, 20: 45.315,
};

/** Wilson–Hilferty: df · (1 − 2/(9 df) + z · √(2/(9 df)))³ with z = 3.0902 (normal upper 0.001). */
const wilsonHilferty = (df: number) => df * (1 - 2 / (9 * df) + 3.0902 * Math.sqrt(2 / (9 * df))) ** 3;

describe('sampling: chi-square helpers', () => {
  it('critical values at p = 0.001 match the table to 3 decimals', () => {
    for (const [df, v] of Object.entries(TABLE_0_001)) {
      const c = chiSquareCritical(Number(df), 0.001);
      assert.ok(Math.abs(c - v) < 0.002, `df ${df}: computed ${c}, table ${v}`);
      if (Number(df) >= 5) assert.ok(Math.abs(wilsonHilferty(Number(df)) - v) / v < 0.02, `Wilson–Hilferty df ${df}`);
    }
  });

  it('the CDF has the known closed forms: df 2 is 1 − e^(−x/2)', () => {
    for (const x of [0.1, 1, 5, 20]) assert.ok(Math.abs(chiSquareCdf(x, 2) - (1 - Math.exp(-x / 2))) < 1e-12);
  });

  it("Pearson's statistic skips zero-probability categories", () => {
    const { stat, df } = chiSquare([30, 70, 0], [0.25, 0.75, 0], 100);
    assert.equal(df, 1);
    assert.ok(Math.abs(stat - (25 / 25 + 25 / 75)) < 1e-12);
  });
});
