/**
 * The deployment files: the Kubernetes manifests parse, fit together (the Service selects the
 * Deployment's pods and targets its port, the autoscaler scales that Deployment), and their
 * probes ask real routes that a ready server answers with 200; the Dockerfiles run `fuselm
 * serve` as a non-root user on the port the manifests use, with flags the command knows.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { type Model, loadModel } from '../../lib/model/model.js';
import { createServer } from '../../lib/server/server.js';
import { buildCli } from '../../lib/cli/main.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

const deploy = (f: string) => fileURLToPath(new URL(`../../deploy/${f}`, import.meta.url));

function manifest(file: string): any {
  const docs = parseAllDocuments(readFileSync(deploy(file), 'utf8'));
  assert.equal(docs.length, 1, file);
  assert.deepEqual(docs[0].errors, [], file);
  return docs[0].toJS();
}

describe('deployment files', function () {
  const dep = manifest('k8s/deployment.yaml');
  const svc = manifest('k8s/service.yaml');
  const hpa = manifest('k8s/hpa.yaml');
  const container = dep.spec.template.spec.containers[0];
  const probes = ['startupProbe', 'readinessProbe', 'livenessProbe'].map((p) => container[p]);

  it('the manifests fit together', () => {
    assert.deepEqual([dep.kind, svc.kind, hpa.kind], ['Deployment', 'Service', 'HorizontalPodAutoscaler']);
    assert.deepEqual(dep.spec.selector.matchLabels, dep.spec.template.metadata.labels);
    assert.deepEqual(svc.spec.selector, dep.spec.template.metadata.labels);
    const port = container.ports.find((p: { name: string }) => p.name === svc.spec.ports[0].targetPort);
    assert.ok(port, 'the Service targets a named container port');
    assert.equal(port.containerPort, 8080);
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: dep.apiVersion, kind: 'Deployment', name: dep.metadata.name });
    assert.ok(dep.spec.template.spec.securityContext.runAsNonRoot);
    for (const p of probes) assert.equal(p.httpGet.port, port.name);
  });

  it('the container args and the Dockerfiles use flags `fuselm serve` knows', () => {
    const serve = buildCli().commands.find((c) => c.name() === 'serve')!;
    const known = new Set(serve.options.flatMap((o) => [o.long, o.short].filter(Boolean)));
    const flags = (args: string[]) => args.filter((a) => a.startsWith('-'));
    for (const f of flags(container.args)) assert.ok(known.has(f), `deployment.yaml: ${f}`);
    for (const file of ['Dockerfile', 'Dockerfile.cuda']) {
      const text = readFileSync(deploy(file), 'utf8');
      const entry = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(text)![1]) as string[];
      assert.deepEqual(entry.slice(0, 3), ['node', 'bin/fuselm.js', 'serve']);
      for (const f of flags(entry)) assert.ok(known.has(f), `${file}: ${f}`);
      assert.equal(entry[entry.indexOf('--port') + 1], '8080');
      assert.match(text, /^USER node$/m, `${file} runs as a non-root user`);
      assert.match(text, /^FROM .* AS build$/m, `${file} is multi-stage`);
    }
  });

  it('every probe asks a route a ready server answers with 200 (503 before the model is there)', async function () {
    requireShared(this, 'models/stories260K.gguf');
    let give!: (m: Model) => void;
    const server = createServer(new Promise<Model>((r) => (give = r)), { apiKeys: ['secret'] });
    const base = await server.listen({ port: 0 });
    await using model = await loadModel(sharedPath('models/stories260K.gguf'), { threads: 1 });
    try {
      for (const p of probes) assert.equal((await fetch(base + p.httpGet.path)).status, 503);
      give(model);
      await server.ready;
      for (const p of probes) assert.equal((await fetch(base + p.httpGet.path)).status, 200, p.httpGet.path);
    } finally {
      await server.close();
    }
  });
});
