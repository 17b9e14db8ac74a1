#!/usr/bin/env node
// The fuselm CLI: the compiled lib/cli/run.ts (npm run build:ts makes dist/).
import '../dist/cli/run.js';
