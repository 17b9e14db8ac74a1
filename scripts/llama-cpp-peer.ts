/**
 * The llama.cpp peer: node-llama-cpp's prebuilt CPU binary, installed into bench/peers/.deps
 * (ignored by git) by npm with nothing downloaded or built by its own scripts. The one place
 * that says how: `npm run peer:llama-cpp` runs this file (CI does before `npm test`), the
 * benchmarks install through installLlamaCppPeer() on demand, and the tests in test/peers/
 * skip, saying why, when the peer is not there (test/helpers/llama-cpp.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const LLAMA_CPP_PEER = {
  dir: path.join(root, 'bench', 'peers', '.deps'),
  entry: path.join(root, 'bench', 'peers', '.deps', 'node_modules', 'node-llama-cpp', 'dist', 'index.js'),
  /** node-llama-cpp and its prebuilt binaries for this platform (linux x64 only, for now). */
  packages: ['node-llama-cpp@3.22.1', '@node-llama-cpp/linux-x64@3.22.1'],
};

/** Installs the peer unless it is there; undefined when it is, else why it is not. */
export function installLlamaCppPeer(): string | undefined {
  if (existsSync(LLAMA_CPP_PEER.entry)) return undefined;
  if (process.platform !== 'linux' || process.arch !== 'x64') return `no prebuilt binary is installed for ${process.platform}-${process.arch} (linux-x64 only)`;
  process.stderr.write(`llama.cpp peer: installing ${LLAMA_CPP_PEER.packages.join(' ')} into ${LLAMA_CPP_PEER.dir} ...\n`);
  try {
    execFileSync('npm', ['install', '--prefix', LLAMA_CPP_PEER.dir, '--no-save', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund', ...LLAMA_CPP_PEER.packages], {
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  } catch (e) {
    return `npm install failed (${(e as Error).message.split('\n')[0]})`;
  }
  return existsSync(LLAMA_CPP_PEER.entry) ? undefined : `npm install left no ${LLAMA_CPP_PEER.entry}`;
}

/** node-llama-cpp's Llama on the CPU (no GPU, nothing built or downloaded), or why there is none. */
export async function loadLlamaCpp(): Promise<{ llama: any } | { reason: string }> {
  if (!existsSync(LLAMA_CPP_PEER.entry)) return { reason: `node-llama-cpp is not installed at ${LLAMA_CPP_PEER.entry} (npm run peer:llama-cpp installs it)` };
  try {
    const { getLlama } = await import(pathToFileURL(LLAMA_CPP_PEER.entry).href);
    return { llama: await getLlama({ gpu: false, build: 'never', skipDownload: true, logLevel: 'error' }) };
  } catch (e) {
    return { reason: `node-llama-cpp does not load (${(e as Error).message.split('\n')[0]})` };
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const why = installLlamaCppPeer();
  if (why) {
    console.error(`llama.cpp peer not installed: ${why}`);
    process.exit(1);
  }
  console.error(`llama.cpp peer: ${LLAMA_CPP_PEER.entry}`);
}
