/** devices(): what this machine offers fuselm — the CPU always, CUDA devices when present. */
import { native } from './native.js';

export interface DeviceInfo {
  cpu: { physicalCores: number; kernels: string; features: string[] };
  cuda: { compiled: boolean; devices: { index: number; name: string; totalMemory: number; computeCapability: string }[]; reason?: string };
}

export function devices(): DeviceInfo {
  const cpu = native().cpuInfo();
  const cuda = native().cudaInfo();
  return {
    cpu: {
      physicalCores: cpu.physicalCores,
      kernels: cpu.bestImpl,
      features: Object.entries(cpu.features).filter(([, v]) => v).map(([k]) => k),
    },
    cuda,
  };
}
