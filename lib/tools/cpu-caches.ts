/** The CPU's data caches (L1d, L2, L3 of cpu0) as Linux's sysfs lists them; none elsewhere. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface CpuCache {
  name: string;
  bytes: number;
}

const SYSFS = '/sys/devices/system/cpu/cpu0/cache';

/** Smallest first; [] where sysfs is absent or unreadable. */
export function cpuDataCaches(): CpuCache[] {
  try {
    const out: CpuCache[] = [];
    for (const entry of readdirSync(SYSFS).filter((e) => e.startsWith('index'))) {
      const read = (f: string) => readFileSync(path.join(SYSFS, entry, f), 'utf8').trim();
      if (read('type') === 'Instruction') continue;
      const m = /^(\d+)([KMG]?)$/.exec(read('size'));
      if (!m) continue;
      out.push({ name: `L${read('level')}`, bytes: Number(m[1]) * { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2] as '' | 'K' | 'M' | 'G'] });
    }
    return out.sort((a, b) => a.bytes - b.bytes);
  } catch {
    return [];
  }
}
